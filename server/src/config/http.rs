//! Where the server listens and what it trusts: `LEPTOS_*`, `PUBLIC_URL`, the webhook's
//! networks, the proxy header, `/metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::parse::validate_public_url;
use super::{ConfigError, Mode, Networks, Vars, invalid};

#[derive(Clone)]
pub struct HttpConfig {
    /// The address the server listens on (`LEPTOS_SITE_ADDR`).
    pub site_addr: SocketAddr,
    /// The Mini App's public HTTPS address (`PUBLIC_URL`).
    pub public_url: Option<String>,
    /// If set, only these networks may call the webhook (`WEBHOOK_ALLOWED_NETWORKS`).
    pub webhook_networks: Option<Networks>,
    /// The header a trusted proxy puts the client address in (`TRUSTED_PROXY_HEADER`).
    pub trusted_proxy_header: Option<String>,
    /// `/metrics` requires `Authorization: Bearer <this>` (`METRICS_TOKEN`).
    pub metrics_token: Option<String>,
    /// `/metrics` is served on this address only, not beside the app (`METRICS_ADDR`).
    pub metrics_addr: Option<SocketAddr>,
    /// The site folder of the build (`LEPTOS_SITE_ROOT`; `target/site` by default).
    pub site_root: Option<PathBuf>,
    /// The build's hash file (`LEPTOS_HASH_FILE_NAME`; `hash.txt` beside the server by
    /// default): the content-hashed file names.
    pub hash_file: Option<PathBuf>,
}

/// `LEPTOS_SITE_ADDR`, read first: the sandbox checks it.
pub(super) fn site_addr(vars: &Vars) -> Result<SocketAddr, ConfigError> {
    vars.get("LEPTOS_SITE_ADDR")
        .unwrap_or("127.0.0.1:3000")
        .parse()
        .map_err(|_| {
            invalid(
                "LEPTOS_SITE_ADDR",
                "expected host:port, e.g. 127.0.0.1:3000",
            )
        })
}

impl HttpConfig {
    pub(super) fn read(
        vars: &Vars,
        mode: Mode,
        site_addr: SocketAddr,
    ) -> Result<Self, ConfigError> {
        let http = Self {
            site_addr,
            public_url: vars
                .get("PUBLIC_URL")
                .map(|url| validate_public_url(url, mode))
                .transpose()?,
            webhook_networks: vars
                .get("WEBHOOK_ALLOWED_NETWORKS")
                .map(|text| {
                    Networks::parse(text)
                        .map_err(|problem| invalid("WEBHOOK_ALLOWED_NETWORKS", problem))
                })
                .transpose()?,
            trusted_proxy_header: match vars.get("TRUSTED_PROXY_HEADER") {
                None => None,
                Some(name) => Some(
                    axum::http::HeaderName::try_from(name.to_ascii_lowercase())
                        .map_err(|_| invalid("TRUSTED_PROXY_HEADER", "not a header name"))?
                        .to_string(),
                ),
            },
            metrics_token: match vars.get("METRICS_TOKEN") {
                None => None,
                Some(token) if token.len() >= 16 && token.bytes().all(|b| b.is_ascii_graphic()) => {
                    Some(token.to_owned())
                }
                Some(_) => {
                    return Err(invalid(
                        "METRICS_TOKEN",
                        "expected at least 16 printable characters, e.g. `openssl rand -hex 32`",
                    ));
                }
            },
            metrics_addr: vars
                .get("METRICS_ADDR")
                .map(|text| {
                    text.parse::<SocketAddr>().map_err(|_| {
                        invalid("METRICS_ADDR", "expected host:port, e.g. 127.0.0.1:9100")
                    })
                })
                .transpose()?,
            site_root: vars.get("LEPTOS_SITE_ROOT").map(Into::into),
            hash_file: vars.get("LEPTOS_HASH_FILE_NAME").map(Into::into),
        };
        if let Some(addr) = http.metrics_addr
            && addr.ip().is_unspecified()
            && http.metrics_token.is_none()
        {
            return Err(invalid(
                "METRICS_ADDR",
                "listens on every interface, which makes the metrics public: \
                 give a private address, or set METRICS_TOKEN too",
            ));
        }
        Ok(http)
    }
}
