//! The NDN server: the Mini App (Leptos SSR + hydration), its server functions and Telegram's
//! webhook on one axum server.

pub mod api;
pub mod assets;
pub mod bot_api;
pub mod bot_text;
pub mod clock;
mod commands;
pub mod config;
pub mod console;
pub mod events;
pub mod export;
pub mod fake_telegram;
mod health;
pub mod hooks;
pub mod init_data;
pub mod ledger;
pub mod metrics;
mod mini_app;
pub mod notifier;
pub mod ops;
mod page_cache;
mod pages;
mod poller;
pub mod sandbox;
pub mod security;
pub mod shop;
pub mod state;
pub mod store;
pub mod untrusted;
pub mod updates;
pub mod wallet;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, header};
use axum::response::Response;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::bot_api::BotApi;
use crate::config::{Config, Mode};
use crate::events::{LiveEvents, StreamTokens};
use crate::fake_telegram::FakeTelegram;
use crate::init_data::InitDataValidator;
use crate::ledger::{Effects, Ledger};
use crate::sandbox::{Delivery, Sandbox};
use crate::state::{AppState, Shared};
use crate::store::Store;

const TELEGRAM_SCRIPT: &str = "https://telegram.org/js/telegram-web-app.js";

/// A server started by [`start`].
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `METRICS_ADDR` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    /// Telegram's stand-in, in sandbox mode.
    pub sandbox: Option<Sandbox>,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    /// The notification worker, the poller and the reconciler, as configured.
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops the worker, closes the pool.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        for worker in self.workers {
            let _ = worker.await;
        }
        self.state.store.close().await;
    }

    /// Ends everything at once, as a crash would: no request or delivery is finished, no lease
    /// released (for tests of what other instances do then).
    pub fn kill(self) {
        self.server.abort();
        for worker in self.workers {
            worker.abort();
        }
    }

    /// Resolves when the server stops by itself (it should not) or `stop` was requested.
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Opens the database, applies migrations and serves on `listener` until stopped.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let store = Store::connect_with(
        &config.database_url,
        config.db_max_connections,
        config.statement_timeout,
    )
    .await?;
    store.migrate().await?;

    let sandbox = (config.mode == Mode::Sandbox).then(|| {
        let telegram = FakeTelegram::new(&config.bot_token);
        let webhook = format!("http://{}/webhook/telegram", config::loopback(addr));
        let delivery = Delivery::new(webhook, config.webhook_secret.clone(), telegram.clone());
        let receiver = sandbox::Receiver::new(
            store.clone(),
            format!(
                "http://{}{}",
                config::loopback(addr),
                sandbox::RECEIVER_ROUTE
            ),
        );
        Sandbox::new(telegram, delivery, receiver, &config.bot_token)
    });
    if let Some(sandbox) = &sandbox {
        if config.endpoints_allow_private {
            sandbox.receiver.subscribe().await?;
        } else {
            tracing::warn!(
                "ENDPOINTS_ALLOW_PRIVATE=false: the sandbox's receiver is not subscribed"
            );
        }
    }
    let api_url = match &config.api_url {
        Some(url) => url.clone(),
        None => format!("http://{}/sandbox/bot-api", config::loopback(addr)),
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let bot = BotApi::with_timeout(
        &api_url,
        &config.bot_token,
        config.test_env,
        config.api_timeout,
    )
    .with_metrics(metrics.clone());

    // cargo-leptos passes the site's settings in the environment; without them (tests, a bare
    // binary) the defaults serve `target/site`.
    let from_cargo_leptos = std::env::var_os("LEPTOS_OUTPUT_NAME").is_some()
        || option_env!("LEPTOS_OUTPUT_NAME").is_some();
    let mut leptos = from_cargo_leptos
        .then(|| leptos::config::get_configuration(None).ok())
        .flatten()
        .map(|conf| conf.leptos_options)
        .unwrap_or_else(|| {
            leptos::config::LeptosOptions::builder()
                .output_name("ndn")
                .site_root("target/site")
                .build()
        });
    if leptos.output_name.is_empty() {
        leptos.output_name = "ndn".into();
    }
    leptos.site_addr = addr;
    if let Some(root) = &config.site_root {
        leptos.site_root = root.to_string_lossy().into_owned().into();
    }
    let bundle = bundle(&leptos, config.hash_file.as_deref());
    // A real bot serves production pages whatever LEPTOS_ENV says: Leptos defaults to its
    // development settings, whose policy lets pages open live-reload sockets anywhere.
    if config.mode == Mode::Production {
        leptos.env = leptos::config::Env::PROD;
    }
    let metrics_listener = match config.metrics_addr {
        Some(metrics_addr) => Some(TcpListener::bind(metrics_addr).await.map_err(|error| {
            anyhow::anyhow!("cannot listen on METRICS_ADDR {metrics_addr}: {error}")
        })?),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;

    let events = LiveEvents::default();
    let outbox = Arc::new(Notify::new());
    let hooks = Arc::new(Notify::new());
    let effects = Effects::serving(
        metrics.clone(),
        store.engine(),
        events.clone(),
        outbox.clone(),
    )
    .waking_hooks(hooks.clone());
    let state = AppState::new(Shared {
        validator: InitDataValidator::new(&config.bot_token, config.init_data_max_age),
        tokens: StreamTokens::new(&config.bot_token, config.init_data_max_age),
        events,
        metrics,
        outbox,
        hooks,
        bot,
        ledger: Ledger::new(store.clone(), effects),
        store,
        leptos,
        bundle,
        telegram_script: if sandbox.is_some() {
            sandbox::TELEGRAM_SCRIPT_ROUTE
        } else {
            TELEGRAM_SCRIPT
        }
        .to_owned(),
        bot_username: std::sync::OnceLock::new(),
        api_keys: api::keys::KeyBook::default(),
        shutdown: CancellationToken::new(),
        config,
    });

    let router = router(state.clone(), sandbox.as_ref());
    let shutdown = state.shutdown.clone();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        }
    });
    let mut workers = vec![
        tokio::spawn(notifier::run(state.clone(), shutdown.clone())),
        tokio::spawn(hooks::worker::run(state.clone(), shutdown.clone())),
        tokio::spawn(state::learn_bot_username(state.clone())),
        tokio::spawn(ledger::keep_up(
            state.ledger.clone(),
            state.config.events.retention,
            shutdown.clone(),
        )),
    ];
    if let Some(listener) = metrics_listener {
        let metrics = metrics::router().with_state(state.clone());
        let shutdown = shutdown.clone();
        workers.push(tokio::spawn(async move {
            let served = axum::serve(listener, metrics)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics listener stopped");
            }
        }));
    }
    workers.push(tokio::spawn(match state.store.engine() {
        store::Engine::Postgres => events::listen(state.clone(), shutdown.clone()).boxed(),
        store::Engine::Sqlite => events::relay(state.clone(), shutdown.clone()).boxed(),
    }));
    if state.config.poll_updates {
        workers.push(tokio::spawn(poller::run(state.clone(), shutdown.clone())));
    }
    if let Some(interval) = state.config.reconcile_interval {
        workers.push(tokio::spawn(reconcile_every(
            interval,
            state.clone(),
            shutdown.clone(),
        )));
    }
    Ok(Running {
        addr,
        metrics_addr,
        state,
        sandbox,
        shutdown,
        server,
        workers,
    })
}

/// Every resource's routes, merged, with the layers every answer passes through.
fn router(state: AppState, sandbox: Option<&Sandbox>) -> Router {
    let dev = state.leptos.env == leptos::config::Env::DEV && state.config.mode == Mode::Sandbox;
    // The Mini App's page, its files, its server functions and the plain pages: revalidated
    // with an ETag and compressed (br or gzip) when the browser accepts it; the event stream and
    // the APIs are outside this.
    let pages = page_cache::PageCache::new(dev);
    let site = mini_app::router(&state)
        .merge(pages::router())
        .layer(axum::middleware::from_fn(move |request, next| {
            page_cache::page_headers(pages.clone(), request, next)
        }))
        .layer(CompressionLayer::new());
    let mut router = site
        .merge(webhook::router())
        .merge(events::router())
        .merge(console::router())
        .merge(health::router())
        .merge(api::router());
    if metrics::served_beside_the_app(&state.config) {
        router = router.merge(metrics::router());
    }
    if let Some(sandbox) = sandbox {
        router = router
            .merge(sandbox.router())
            .layer(axum::middleware::from_fn(security::this_machine_only));
    }
    let default_policy = HeaderValue::from_str(&security::content_security_policy(&[], dev))
        .expect("the policy is a valid header value");
    router
        .layer(axum::middleware::from_fn(security::client_errors_are_4xx))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, default_policy))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(
            // Paths only: query strings carry stream tokens, and no token belongs in a log.
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    tracing::info_span!("http", method = %request.method(), path = %loggable_path(request.uri().path()))
                })
                .on_response(
                    |response: &Response, latency: std::time::Duration, _span: &tracing::Span| {
                        tracing::info!(status = response.status().as_u16(), latency_ms = latency.as_secs_f64() * 1000.0, "served");
                    },
                ),
        )
        .with_state(state)
}

/// The build's file names: hashed when cargo-leptos wrote its hash file (beside this program, or
/// at `hash_file`), plain otherwise.
fn bundle(
    leptos: &leptos::config::LeptosOptions,
    hash_file: Option<&std::path::Path>,
) -> assets::Bundle {
    let path = hash_file.map_or_else(
        || std::path::PathBuf::from(leptos.hash_file.as_ref()),
        std::path::Path::to_owned,
    );
    let path = if path.is_absolute() {
        path
    } else {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(&path)))
            .unwrap_or(path)
    };
    let pkg = std::path::Path::new(leptos.site_root.as_ref()).join(leptos.site_pkg_dir.as_ref());
    let bundle = assets::Bundle::load(&pkg, &leptos.output_name, &path);
    if pkg.exists() && !pkg.join(&bundle.wasm).exists() {
        if bundle.hashed {
            tracing::warn!(hash_file = %path.display(), site = %pkg.display(), "the hash file names files the site does not have: was the site built with this server?");
        } else {
            tracing::warn!(hash_file = %path.display(), site = %pkg.display(), "no hash file, and the site has no {}: copy the build's hash.txt beside the server (or set LEPTOS_HASH_FILE_NAME)", bundle.wasm);
        }
    }
    bundle
}

/// The advisory lock key of periodic reconciliation.
const RECONCILE_LOCK: i64 = 0x4e44_4e52;

/// Finds payments whose webhook never arrived (and refunds), every `interval`.
async fn reconcile_every(
    interval: std::time::Duration,
    state: AppState,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        // One instance at a time: the others skip this round.
        let outcome = state
            .store
            .exclusively(RECONCILE_LOCK, ops::reconcile(&state.bot, &state.ledger))
            .await;
        let outcome = match outcome {
            Ok(Some(result)) => result,
            Ok(None) => continue,
            Err(error) => Err(error.into()),
        };
        match outcome {
            Ok(report)
                if report.credited.is_empty()
                    && report.held.is_empty()
                    && report.refunded.is_empty() =>
            {
                tracing::debug!(
                    transactions = report.transactions,
                    "reconciled: nothing missing"
                );
            }
            Ok(report) => {
                tracing::warn!(credited = ?report.credited, held = ?report.held, refunded = ?report.refunded, "reconciled missing payments");
            }
            Err(error) => tracing::warn!(%error, "reconciliation failed"),
        }
    }
}

/// The fake Bot API's paths contain the (sandbox) token; log them without it. Any other path
/// is the client's text: escaped and capped.
fn loggable_path(path: &str) -> untrusted::Untrusted<'_> {
    if path.starts_with("/sandbox/bot-api/") {
        untrusted::Untrusted("/sandbox/bot-api/…")
    } else {
        untrusted::Untrusted(path)
    }
}
