//! What protects the server from the outside: security headers and the webhook's source
//! check. (The per-buyer limits on invoices are kept by the store, across instances.)

use std::net::IpAddr;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Telegram's web clients embed the Mini App in an iframe; nobody else may.
const FRAME_ANCESTORS: &str = "'self' https://web.telegram.org https://*.telegram.org";

/// The Content-Security-Policy of our pages. `scripts`: the inline scripts the page may run, as
/// `'sha256-…'` sources (the Mini App's page lists its own; nothing else inline runs). `dev`
/// allows the live-reload socket.
pub fn content_security_policy(scripts: &[String], dev: bool) -> String {
    let inline: String = scripts.iter().map(|source| format!(" {source}")).collect();
    let reload = if dev { " ws: wss:" } else { "" };
    format!(
        "default-src 'self'; script-src 'self'{inline} 'wasm-unsafe-eval' https://telegram.org; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'{reload}; \
         frame-ancestors {FRAME_ANCESTORS}; base-uri 'none'; object-src 'none'; form-action 'self'"
    )
}

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

/// Where a request came from: the peer, or, behind a trusted proxy, the address the proxy
/// appended last to `header` (the only entry the proxy itself vouches for).
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted_header: Option<&str>,
) -> Option<IpAddr> {
    match trusted_header {
        None => Some(peer),
        Some(name) => headers
            .get(name)?
            .to_str()
            .ok()?
            .rsplit(',')
            .next()?
            .trim()
            .parse()
            .ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_a_trusted_proxy_the_last_forwarded_address_counts() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 149.154.160.5".parse().unwrap());
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &headers, Some("x-forwarded-for")),
            "149.154.160.5".parse().ok()
        );
        assert_eq!(client_ip(peer, &headers, None), Some(peer));
        assert_eq!(
            client_ip(peer, &HeaderMap::new(), Some("x-forwarded-for")),
            None
        );
    }

    #[test]
    fn the_policy_carries_the_script_hashes_and_frames_only_for_telegram() {
        let policy =
            content_security_policy(&["'sha256-abc'".into(), "'sha256-def'".into()], false);
        assert!(policy.contains(
            "script-src 'self' 'sha256-abc' 'sha256-def' 'wasm-unsafe-eval' https://telegram.org;"
        ));
        assert!(
            policy.contains(
                "frame-ancestors 'self' https://web.telegram.org https://*.telegram.org;"
            )
        );
        assert!(!policy.contains("ws:"));
        assert!(content_security_policy(&[], true).contains("connect-src 'self' ws: wss:"));
    }
}
