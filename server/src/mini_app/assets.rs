//! The site's files. The app's build output (`/pkg/…`) carries a content hash in its names
//! (cargo-leptos `hash-files`, listed in its hash file): those names are served for a year,
//! `immutable`, and every other name under `/pkg/` answers 404 (an old release's file must not
//! be mixed with this one's). Each is sent as brotli or gzip made at build time (`--precompress`)
//! when the browser accepts it, else as is. Public files (the icon, `nav.js`) are revalidated.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::config::bundle::Bundle;

/// A year: hashed names never change content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Names that may change content: the browser asks again each time (a 304 when unchanged).
pub const REVALIDATE: &str = "no-cache";

/// `GET /pkg/{file}`: the build's files, and nothing else under `/pkg/`.
pub fn router<S: Clone + Send + Sync + 'static>(bundle: &Bundle) -> Router<S> {
    Router::new()
        .route("/pkg/{*file}", get(bundle_file))
        .with_state(bundle.clone())
}

async fn bundle_file(
    State(bundle): State<Bundle>,
    axum::extract::Path(name): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let known = bundle.is_current(&name);
    // Without hashing (development), whatever the build left is served, and revalidated.
    let servable = known
        || (!bundle.hashed && !name.contains("..") && !name.starts_with('/') && !name.is_empty());
    if !servable {
        return (StatusCode::NOT_FOUND, "no such file in this release").into_response();
    }
    let service = ServeFile::new(bundle.dir.join(&name))
        .precompressed_br()
        .precompressed_gzip();
    let mut response = match service.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(error) => match error {},
    };
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let cache = if known && bundle.hashed {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}
