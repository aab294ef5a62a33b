//! The Mini App's page is the same for every buyer (the buyer's data comes later, from the
//! server functions), so it can be cached and revalidated: each page answer gets an ETag made
//! from its bytes, `Cache-Control: no-cache`, and a `304 Not Modified` when the browser already
//! has it. Its Content-Security-Policy allows exactly the inline scripts it carries, by their
//! SHA-256 (a per-request nonce would make every copy of the page different). Where Leptos still
//! writes a nonce into the markup (the development reload script), it allows nothing, so it is
//! taken out.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::mini_app::assets::REVALIDATE;

/// Set by the page's render with the nonce Leptos wrote into it; removed before sending.
pub const NONCE_HEADER: &str = "x-ndn-page-nonce";
/// Pages are a few kilobytes; anything bigger is not ours to buffer.
const PAGE_LIMIT: usize = 2 * 1024 * 1024;

/// What a page's bytes make of its headers: the policy with its scripts' hashes, the ETag.
struct Described {
    html: Bytes,
    policy: Option<HeaderValue>,
    etag: HeaderValue,
}

/// The pages one router served last (the Mini App's page, its 404, the plain pages) with their
/// headers: the page is the same for everyone, so its hashes are computed once, not per request.
#[derive(Clone)]
pub struct PageCache {
    /// The policy allows the live-reload socket.
    dev: bool,
    recent: Arc<Mutex<Vec<Arc<Described>>>>,
}

/// Pages remembered, the oldest replaced first.
const RECENT_PAGES: usize = 8;

impl PageCache {
    pub fn new(dev: bool) -> Self {
        Self {
            dev,
            recent: Arc::default(),
        }
    }

    fn describe(&self, html: Bytes) -> Arc<Described> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = recent.iter().find(|known| known.html == html) {
            return known.clone();
        }
        drop(recent);
        let text = String::from_utf8_lossy(&html);
        let hashes: Vec<String> = inline_scripts(&text)
            .map(|script| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(script))))
            .collect();
        let policy = HeaderValue::from_str(&content_security_policy(&hashes, self.dev)).ok();
        let etag = HeaderValue::from_str(&format!(
            "W/\"{}\"",
            URL_SAFE_NO_PAD.encode(&Sha256::digest(&html)[..16])
        ))
        .expect("base64 is a valid header value");
        let described = Arc::new(Described { html, policy, etag });
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() >= RECENT_PAGES {
            recent.remove(0);
        }
        recent.push(described.clone());
        described
    }
}

/// The page's headers, for every HTML answer of the router it wraps.
pub async fn page_headers(cache: PageCache, request: Request, next: Next) -> Response {
    let asked = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if !is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let nonce = parts
        .headers
        .remove(NONCE_HEADER)
        .and_then(|value| value.to_str().ok().map(str::to_owned));
    let bytes = match to_bytes(body, PAGE_LIMIT).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "the page could not be read");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    // Only the development reload script carries the nonce (the app writes its own
    // hydration script); a production page passes as it is.
    let html = match (nonce, std::str::from_utf8(&bytes)) {
        (Some(nonce), Ok(text)) if !nonce.is_empty() && text.contains(&format!("\"{nonce}\"")) => {
            Bytes::from(without_nonce(text, &nonce))
        }
        _ => bytes,
    };
    let described = cache.describe(html);
    let headers = &mut parts.headers;
    if let Some(policy) = &described.policy {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::ETAG, described.etag.clone());
    let unchanged = parts.status == StatusCode::OK
        && asked
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .zip(described.etag.to_str().ok())
            .is_some_and(|(asked, etag)| matches(asked, etag));
    if unchanged {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(described.html.clone()))
}

/// `If-None-Match` (a list, or `*`) against our ETag, compared weakly as RFC 9110 says.
fn matches(asked: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    asked
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

/// The page without the inert nonce: `nonce="…"` attributes dropped, and the `crossorigin`
/// Leptos fills with it made the empty (anonymous) value it amounts to.
fn without_nonce(html: &str, nonce: &str) -> String {
    html.replace(&format!(" nonce=\"{nonce}\""), "")
        .replace(&format!("crossorigin=\"{nonce}\""), "crossorigin=\"\"")
}

/// The text of each inline `<script>` (one without `src`), as the browser hashes it.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find("<script")?;
            let after = &rest[start + "<script".len()..];
            let open_end = after.find('>')?;
            let attributes = &after[..open_end];
            let content = &after[open_end + 1..];
            let close = content.find("</script")?;
            rest = &content[close..];
            if attributes.contains(" src=") || attributes.contains("\tsrc=") {
                continue;
            }
            return Some(&content[..close]);
        }
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn inline_scripts_are_found_and_scripts_with_src_skipped() {
        let html = r#"<head><script src="/t.js"></script><script>a()</script>
            <script type="module">b()</script><p>x</p><script></script></head>"#;
        let found: Vec<_> = inline_scripts(html).collect();
        assert_eq!(found, ["a()", "b()", ""]);
    }

    #[test]
    fn the_nonce_is_taken_out_everywhere_it_was_written() {
        let html = r#"<link crossorigin="n0nce"><script nonce="n0nce">x</script>"#;
        assert_eq!(
            without_nonce(html, "n0nce"),
            r#"<link crossorigin=""><script>x</script>"#
        );
    }

    #[test]
    fn etags_compare_weakly_and_in_lists() {
        assert!(matches(r#"W/"abc""#, r#"W/"abc""#));
        assert!(matches(r#""abc""#, r#"W/"abc""#));
        assert!(matches(r#""x", W/"abc""#, r#"W/"abc""#));
        assert!(matches("*", r#"W/"abc""#));
        assert!(!matches(r#"W/"abd""#, r#"W/"abc""#));
    }
}
