//! What every answer passes through: the security headers and checks, the health and
//! readiness probes, the metrics, and log text made safe.

pub mod effects;
pub(crate) mod health;
pub mod metrics;
pub mod security;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, header};
use axum::response::Response;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Mode;
use crate::sandbox::Sandbox;
use crate::state::AppState;

/// Every resource's routes, merged, with the layers every answer passes through.
pub(crate) fn router(state: AppState, sandbox: Option<&Sandbox>) -> Router {
    let dev = state.leptos.env == leptos::config::Env::DEV && state.config.mode == Mode::Sandbox;
    // The Mini App's page, its files, its server functions and the plain pages: revalidated
    // with an ETag and compressed (br or gzip) when the browser accepts it; the event stream and
    // the APIs are outside this.
    let pages = crate::mini_app::page_cache::PageCache::new(dev);
    let site = crate::mini_app::router(&state)
        .merge(crate::mini_app::pages::router())
        .layer(axum::middleware::from_fn(move |request, next| {
            crate::mini_app::page_cache::page_headers(pages.clone(), request, next)
        }))
        .layer(CompressionLayer::new());
    let mut router = site
        .merge(crate::bot::webhook::router())
        .merge(crate::mini_app::stream::router())
        .merge(crate::console::router())
        .merge(health::router())
        .merge(crate::api::router());
    if metrics::served_beside_the_app(&state.config) {
        router = router.merge(metrics::router());
    }
    if let Some(sandbox) = sandbox {
        router = router
            .merge(sandbox.router())
            .layer(axum::middleware::from_fn(security::this_machine_only));
    }
    let ids = RequestIds::new();
    let default_policy = HeaderValue::from_str(
        &crate::mini_app::page_cache::content_security_policy(&[], dev),
    )
    .expect("the policy is a valid header value");
    router
        .layer(axum::middleware::from_fn(security::client_errors_are_4xx))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            default_policy,
        ))
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
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|id| id.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = %loggable_path(request.uri().path()),
                        request_id = %crate::telemetry::untrusted::Untrusted(id),
                    )
                })
                .on_response(
                    |response: &Response, latency: std::time::Duration, _span: &tracing::Span| {
                        tracing::info!(
                            status = response.status().as_u16(),
                            latency_ms = latency.as_secs_f64() * 1000.0,
                            "served"
                        );
                    },
                ),
        )
        .layer(axum::middleware::from_fn(move |request, next| {
            request_id(ids.clone(), request, next)
        }))
        .with_state(state)
}

/// The header a request's id arrives in (from the proxy in front, or the caller).
const REQUEST_ID: &str = "x-request-id";

/// Gives the request its id and the answer the same one, as `X-Request-Id` and `Request-Id`:
/// the caller's when well-formed, else one made here. Every log line of the request carries it
/// (the `http` span reads the header this sets).
async fn request_id(
    ids: RequestIds,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|id| well_formed(id.as_bytes()))
        .cloned()
        .unwrap_or_else(|| ids.make());
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID, id.clone());
    headers.insert("request-id", id);
    response
}

/// A request id worth keeping: 1 to 128 of `A-Z a-z 0-9 . _ - :` (a UUID, a proxy's
/// `$request_id`, a trace id); anything else is replaced, never echoed.
fn well_formed(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// Request ids: this process's random prefix and a counter (`7f3a9c2e-42`), unique across
/// instances and restarts without a random draw per request.
#[derive(Clone)]
struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: random[..8].into(),
            next: std::sync::Arc::default(),
        }
    }

    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .expect("hex digits, a hyphen and a number")
    }
}

/// The fake Bot API's paths contain the (sandbox) token; log them without it. Any other path
/// is the client's text: escaped and capped.
fn loggable_path(path: &str) -> crate::telemetry::untrusted::Untrusted<'_> {
    if path.starts_with("/sandbox/bot-api/") {
        crate::telemetry::untrusted::Untrusted("/sandbox/bot-api/…")
    } else {
        crate::telemetry::untrusted::Untrusted(path)
    }
}
