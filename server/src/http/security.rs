//! What protects the server from the outside, layered over every route: 4xx for the client's
//! mistakes, and the sandbox's routes for this machine only. (The Content-Security-Policy is
//! the pages' own, in `mini_app/page_cache.rs`; the client's address, in `config/networks.rs`.)

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Server-function arguments that do not decode answer 400, not the framework's 500: they are
/// the caller's mistake, and a 5xx would page the operator.
pub async fn client_errors_are_4xx(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    if !is_api || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if text.starts_with(r#"{"Framework":{"Args""#)
        || text.starts_with(r#"{"Framework":{"Deserialization""#)
    {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The sandbox's token and secret are public, so it answers requests addressed to this machine
/// only: a tunnel or proxy forwarding a public host to it, or a web page rebinding its own
/// name to 127.0.0.1, gets 403.
pub async fn this_machine_only(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    let forwarded = ["forwarded", "x-forwarded-for", "x-forwarded-host"]
        .iter()
        .any(|name| headers.contains_key(*name));
    if forwarded || !host.is_some_and(crate::config::is_loopback_host) {
        return (
            StatusCode::FORBIDDEN,
            "the sandbox answers on this machine only (open it at http://127.0.0.1:<port>/sandbox)",
        )
            .into_response();
    }
    next.run(request).await
}
