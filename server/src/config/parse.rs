//! The values' parsers and checks: each names its variable when it refuses a value.

use std::net::SocketAddr;
use std::time::Duration;

use app::api::Package;

use super::{ConfigError, Mode, invalid};

/// `ADMIN_USER_IDS`: Telegram user ids, comma-separated.
pub(super) fn parse_user_ids(text: &str) -> Result<Vec<i64>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                invalid(
                    "ADMIN_USER_IDS",
                    format!("`{id}` is not a Telegram user id (comma-separated numbers, e.g. 279058397,100001)"),
                )
            })
        })
        .collect()
}

/// An address a local client can reach (a wildcard bind address is not one).
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

pub(super) fn validate_token(token: &str) -> Result<(), ConfigError> {
    let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if well_formed {
        Ok(())
    } else {
        Err(invalid(
            "TELEGRAM_BOT_TOKEN",
            "expected <bot id>:<secret> as given by @BotFather",
        ))
    }
}

pub(super) fn validate_secret(secret: &str) -> Result<(), ConfigError> {
    let ok = (1..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "TELEGRAM_WEBHOOK_SECRET",
            "must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule)",
        ))
    }
}

pub(super) fn validate_http_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid(variable, "expected an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(variable, "the URL has no host"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // `user@host` and a backslash (which browsers read as `/`) hide the real host.
    if authority.contains(['@', '\\']) {
        return Err(invalid(
            variable,
            "the URL must name its host plainly (no user@ part, no backslash)",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Telegram calls the webhook and opens Mini Apps over HTTPS only; in the sandbox the URL can
/// only name this machine.
pub(super) fn validate_public_url(url: &str, mode: Mode) -> Result<String, ConfigError> {
    let url = validate_http_url("PUBLIC_URL", url)?;
    match mode {
        Mode::Production if !url.starts_with("https://") => Err(invalid(
            "PUBLIC_URL",
            "must start with https:// (Telegram refuses http:// webhooks and Mini App URLs)",
        )),
        Mode::Sandbox if !is_loopback_url(&url) => Err(invalid(
            "NDN_SANDBOX",
            "the sandbox serves this machine only, but PUBLIC_URL names another host: \
             unset PUBLIC_URL (it is for a real bot)",
        )),
        _ => Ok(url),
    }
}

/// Whether an http(s) URL's host is this machine (`localhost`, `127.x.x.x`, `[::1]`).
pub(super) fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    is_loopback_host(rest.split(['/', '?', '#']).next().unwrap_or_default())
}

/// Whether `host[:port]` (as in a URL or a `Host` header) names this machine.
pub fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn parse_bool(value: Option<&str>, variable: &'static str) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(invalid(variable, "expected true or false")),
    }
}

pub(super) fn parse_seconds(
    value: Option<&str>,
    variable: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_secs(default)),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| invalid(variable, "expected a positive number of seconds")),
    }
}

pub(super) fn parse_count(
    value: Option<&str>,
    variable: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    parse_count_up_to(value, variable, default, 1_000_000)
}

/// A whole number from 1 to `max`.
pub(super) fn parse_count_up_to(
    value: Option<&str>,
    variable: &'static str,
    default: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| invalid(variable, format!("expected a whole number from 1 to {max}"))),
    }
}

/// `NDN_PACKAGES`: comma-separated `ndn:stars` pairs, e.g. `100:50,500:225`.
pub(super) fn parse_packages(text: &str) -> Result<Vec<Package>, ConfigError> {
    const VAR: &str = "NDN_PACKAGES";
    let mut packages: Vec<Package> = Vec::new();
    for item in text.split(',').map(str::trim) {
        let (ndn, stars) = item
            .split_once(':')
            .ok_or_else(|| invalid(VAR, format!("`{item}` is not ndn:stars")))?;
        let ndn: i64 = ndn
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1_000_000_000).contains(n))
            .ok_or_else(|| invalid(VAR, format!("`{item}`: NDN must be 1-1000000000")))?;
        let stars: i64 = stars
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| invalid(VAR, format!("`{item}`: Stars must be 1-100000")))?;
        let id = format!("ndn-{ndn}");
        if packages.iter().any(|package| package.id == id) {
            return Err(invalid(VAR, format!("two packages of {ndn} NDN")));
        }
        packages.push(Package {
            id,
            ndn,
            stars,
            title: format!("{ndn} NDN"),
        });
    }
    Ok(packages)
}
