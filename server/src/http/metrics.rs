//! `GET /metrics`: the metrics' text, beside the app or on `METRICS_ADDR`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::config::{Config, Mode};
use crate::state::AppState;

/// `GET /metrics`, beside the app or on `METRICS_ADDR`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", axum::routing::get(serve))
}

/// Whether `/metrics` is on the app's own port: not when it has an address of its own, and
/// with a real bot only behind `METRICS_TOKEN` (it tells anyone the shop's sales).
pub fn served_beside_the_app(config: &Config) -> bool {
    config.http.metrics_addr.is_none()
        && (config.mode == Mode::Sandbox || config.http.metrics_token.is_some())
}

/// `GET /metrics`, with `Authorization: Bearer <METRICS_TOKEN>` when a token is configured.
async fn serve(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.http.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, presented)| presented.trim());
        if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need Authorization: Bearer <METRICS_TOKEN>",
            )
                .into_response();
        }
    }
    let commits = i64::try_from(state.ledger.payment_commits()).unwrap_or(i64::MAX);
    state.metrics.payment_commits.set(commits);
    let splits = i64::try_from(state.ledger.payment_batches_split()).unwrap_or(i64::MAX);
    state.metrics.payment_batches_split.set(splits);
    let panics = i64::try_from(state.ledger.writer_panics()).unwrap_or(i64::MAX);
    state.metrics.writer_panics.set(panics);
    let outbox = crate::notifier::queue::Queue::new(&state.store);
    match outbox.pending().await {
        Ok(pending) => {
            state.metrics.outbox_pending.set(pending);
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot count the outbox"),
    }
    match outbox.oldest_pending_age().await {
        Ok(age) => {
            state.metrics.outbox_oldest_seconds.set(age);
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot read the outbox's oldest message"),
    }
    match crate::outgoing::EventStore::new(&state.store)
        .waiting(crate::clock::now_ms())
        .await
    {
        Ok((pending, oldest_ms)) => {
            state.metrics.events_pending.set(pending);
            state
                .metrics
                .events_oldest_pending_seconds
                .set(oldest_ms / 1000);
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot count the event deliveries"),
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
