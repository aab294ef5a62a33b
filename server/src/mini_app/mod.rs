//! The Mini App over HTTP: its server-rendered page and its server functions (Leptos), the
//! buyer of each server-function call authenticated once from `Authorization: tma <initData>`,
//! and the build's files under `/pkg/` (see `assets`).

pub mod assets;
pub(crate) mod history;
pub(crate) mod page_cache;
pub(crate) mod pages;
pub mod shop;
pub(crate) mod stream;

use std::sync::Arc;

use app::api::AuthFailure;
use app::backend::{Backend, Caller, Console, SignedBuyer};
use app::{App, ShellConfig, shell};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::clock::now_ms;
use crate::console::OperatorConsole;
use crate::mini_app::page_cache::NONCE_HEADER;
use crate::mini_app::shop::Shop;
use crate::state::AppState;
use crate::telegram::init_data::InitDataError;

/// The page, the server functions (`/api/wallet`, …), and the static files as the fallback.
pub fn router(state: &AppState) -> Router<AppState> {
    let shell_config = ShellConfig {
        telegram_script: state.telegram_script.clone(),
        stylesheet: state.bundle.stylesheet(),
        script: state.bundle.script(),
        wasm: state.bundle.wasm(),
    };
    let backend = Backend(Arc::new(Shop::new(state.clone())));
    let console = Console(Arc::new(OperatorConsole::new(state.clone())));
    let app_shell = {
        let leptos = state.leptos.clone();
        let shell_config = shell_config.clone();
        move || shell(leptos.clone(), shell_config.clone())
    };
    let fallback_shell = move |options| shell(options, shell_config.clone());
    Router::new()
        .leptos_routes_with_context(
            state,
            generate_route_list(App),
            move || {
                provide_context(backend.clone());
                provide_context(console.clone());
                // The page's policy lists its inline scripts by hash (`page_cache`), which takes
                // out the nonce Leptos writes into it: say which one.
                if let (Some(nonce), Some(response)) = (
                    leptos::nonce::use_nonce(),
                    leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
                ) && let Ok(nonce) = HeaderValue::from_str(&nonce.to_string())
                {
                    response.insert_header(HeaderName::from_static(NONCE_HEADER), nonce);
                }
            },
            app_shell,
        )
        .merge(assets::router(&state.bundle))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            fallback_shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
}

/// Checks a server-function call's `Authorization: tma <initData>` once, and hands the server
/// functions the buyer Telegram signed (or why there is none) in the request's extensions.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/") {
        let caller = caller(&state, request.headers().get(header::AUTHORIZATION));
        request.extensions_mut().insert(caller);
    }
    next.run(request).await
}

fn caller(state: &AppState, authorization: Option<&HeaderValue>) -> Caller {
    let Some(raw) = authorization
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("tma "))
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
    else {
        return Caller(Err(AuthFailure::Missing));
    };
    Caller(match state.validator.validate(raw, now_ms() / 1000) {
        Ok(data) => Ok(SignedBuyer {
            id: data.user.id,
            first_name: data.user.first_name,
            username: data.user.username,
            language_code: data.user.language_code,
            auth_date: data.auth_date,
        }),
        Err(error) => {
            tracing::info!(%error, "initData refused");
            Err(match error {
                InitDataError::Expired => AuthFailure::Expired,
                _ => AuthFailure::Invalid,
            })
        }
    })
}
