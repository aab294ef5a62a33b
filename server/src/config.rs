//! Configuration: read once from the environment (and `.env`), validated, then passed down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use app::api::Package;

/// The bot token the sandbox signs initData with. It is not a secret: the sandbox runs only
/// when asked for (`NDN_SANDBOX=1`), without a real token, and on loopback.
pub const SANDBOX_BOT_TOKEN: &str = "1000000001:SANDBOX-local-ndn-token-is-not-a-secret";
const SANDBOX_WEBHOOK_SECRET: &str = "sandbox-webhook-secret";
const DEFAULT_API_URL: &str = "https://api.telegram.org";
const DEFAULT_PACKAGES: &str = "100:50,500:225,1000:400";

/// A configuration value that cannot be used; printed as one line naming the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn invalid(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real bot token is configured.
    Production,
    /// `NDN_SANDBOX=1` and no token: the server plays Telegram for itself, on loopback only.
    Sandbox,
}

#[derive(Clone)]
pub struct Config {
    pub mode: Mode,
    pub bot_token: String,
    pub webhook_secret: String,
    /// Base URL of the Bot API; `None` in sandbox mode means the server's own fake.
    pub api_url: Option<String>,
    pub test_env: bool,
    /// How long one Bot API call may take (`TELEGRAM_API_TIMEOUT`, seconds).
    pub api_timeout: Duration,
    pub public_url: Option<String>,
    pub database_url: String,
    pub site_addr: SocketAddr,
    pub packages: Vec<Package>,
    pub init_data_max_age: Duration,
    pub order_ttl: Duration,
    pub db_max_connections: u32,
    /// Reconcile with `getStarTransactions` this often while serving (`RECONCILE_INTERVAL`).
    pub reconcile_interval: Option<Duration>,
    /// How long a worker owns the messages it claimed; after a crash, others send them then.
    pub outbox_lease: Duration,
    /// The bot's messages a second, all instances together (`BOT_MESSAGES_PER_SECOND`).
    pub bot_messages_per_second: u32,
    /// PostgreSQL `statement_timeout` (`DATABASE_STATEMENT_TIMEOUT`, milliseconds).
    pub statement_timeout: Option<Duration>,
    /// Invoices a buyer may create per minute (`INVOICE_RATE_PER_MINUTE`), also the burst.
    pub invoice_rate_per_minute: u32,
    /// Unpaid, unexpired orders a buyer may hold at once (`MAX_PENDING_ORDERS`).
    pub max_pending_orders: i64,
    /// If set, only these networks may call the webhook (`WEBHOOK_ALLOWED_NETWORKS`).
    pub webhook_networks: Option<crate::http::security::Networks>,
    /// The header a trusted proxy puts the client address in (`TRUSTED_PROXY_HEADER`).
    pub trusted_proxy_header: Option<String>,
    /// Long polling instead of the webhook (`serve --poll`; not an environment variable).
    pub poll_updates: bool,
    /// `/metrics` requires `Authorization: Bearer <this>` (`METRICS_TOKEN`).
    pub metrics_token: Option<String>,
    /// `/metrics` is served on this address only, not beside the app (`METRICS_ADDR`).
    pub metrics_addr: Option<SocketAddr>,
    /// The site folder of the build (`LEPTOS_SITE_ROOT`; `target/site` by default).
    pub site_root: Option<std::path::PathBuf>,
    /// Telegram user ids of the operators, who see the console (`ADMIN_USER_IDS`; empty: no
    /// console). The sandbox's operator by default in sandbox mode.
    pub admin_user_ids: Vec<i64>,
    /// The build's hash file (`LEPTOS_HASH_FILE_NAME`; `hash.txt` beside the server by
    /// default): the content-hashed file names.
    pub hash_file: Option<std::path::PathBuf>,
    /// Event endpoints may be private or loopback addresses, and plain http
    /// (`ENDPOINTS_ALLOW_PRIVATE`; on in the sandbox, off otherwise).
    pub endpoints_allow_private: bool,
    /// Signed events to the operator's backend: how they are retried and leased.
    pub events: EventDelivery,
}

/// How events are delivered (`EVENTS_*`).
#[derive(Debug, Clone, Copy)]
pub struct EventDelivery {
    /// How long a worker owns the endpoint it is sending to; after a crash another resends
    /// then (`EVENTS_LEASE`, seconds).
    pub lease: Duration,
    /// How long a receiver may take to answer (10 s, `EVENTS_TIMEOUT`).
    pub timeout: Duration,
    /// The first retry's wait; each next one doubles it, up to an hour, with jitter
    /// (`EVENTS_FIRST_RETRY_MS`).
    pub first_retry: Duration,
    /// How long an event is retried before it is marked failed (`EVENTS_RETRY_WINDOW`,
    /// seconds; 3 days).
    pub retry_window: Duration,
    /// How long events are kept once every endpoint has them (`EVENTS_RETENTION_DAYS`, 30).
    pub retention: Duration,
}

impl std::fmt::Debug for Config {
    // Hand-written so that the token and the secret can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("mode", &self.mode)
            .field("api_url", &self.api_url)
            .field("test_env", &self.test_env)
            .field("public_url", &self.public_url)
            .field("database_url", &redact_password(&self.database_url))
            .field("site_addr", &self.site_addr)
            .field("packages", &self.packages)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Config {
    /// Reads the process environment (after `.env`, which never overrides real variables).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let site_addr: SocketAddr = get("LEPTOS_SITE_ADDR")
            .unwrap_or("127.0.0.1:3000")
            .parse()
            .map_err(|_| {
                invalid(
                    "LEPTOS_SITE_ADDR",
                    "expected host:port, e.g. 127.0.0.1:3000",
                )
            })?;

        // Sandbox mode is asked for, never fallen into: an empty token (a secret that failed
        // to inject) must not turn a deployment into a shop that sells NDN for nothing.
        let sandbox = parse_bool(get("NDN_SANDBOX"), "NDN_SANDBOX")?;
        let (mode, bot_token) = match (get("TELEGRAM_BOT_TOKEN"), sandbox) {
            (Some(_), true) => {
                return Err(invalid(
                    "NDN_SANDBOX",
                    "cannot be combined with TELEGRAM_BOT_TOKEN: unset one of them",
                ));
            }
            (Some(token), false) => {
                validate_token(token)?;
                (Mode::Production, token.to_owned())
            }
            (None, true) => (Mode::Sandbox, SANDBOX_BOT_TOKEN.to_owned()),
            (None, false) => {
                let problem = if vars.contains_key("TELEGRAM_BOT_TOKEN") {
                    "is empty"
                } else {
                    "is not set"
                };
                return Err(invalid(
                    "TELEGRAM_BOT_TOKEN",
                    format!(
                        "{problem}: set it to the bot's token from @BotFather, \
                         or set NDN_SANDBOX=1 to run the local sandbox"
                    ),
                ));
            }
        };
        if mode == Mode::Sandbox && !site_addr.ip().is_loopback() {
            return Err(invalid(
                "NDN_SANDBOX",
                format!(
                    "the sandbox serves this machine only, but LEPTOS_SITE_ADDR is {site_addr}: \
                     listen on 127.0.0.1"
                ),
            ));
        }

        let webhook_secret = match (get("TELEGRAM_WEBHOOK_SECRET"), mode) {
            (Some(secret), _) => {
                validate_secret(secret)?;
                secret.to_owned()
            }
            (None, Mode::Sandbox) => SANDBOX_WEBHOOK_SECRET.to_owned(),
            (None, Mode::Production) => {
                return Err(invalid(
                    "TELEGRAM_WEBHOOK_SECRET",
                    "required with a bot token (1-256 characters of A-Z a-z 0-9 _ -)",
                ));
            }
        };

        let api_url = match (get("TELEGRAM_API_URL"), mode) {
            (Some(url), _) => Some(validate_http_url("TELEGRAM_API_URL", url)?),
            (None, Mode::Production) => Some(DEFAULT_API_URL.to_owned()),
            (None, Mode::Sandbox) => None,
        };

        let public_url = get("PUBLIC_URL")
            .map(|url| validate_public_url(url, mode))
            .transpose()?;

        let database_url = get("DATABASE_URL")
            .unwrap_or("sqlite://data/ndn.db")
            .to_owned();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "expected sqlite://path or postgres://user@host/db",
            ));
        }

        let config = Self {
            mode,
            bot_token,
            webhook_secret,
            api_url,
            test_env: parse_bool(get("TELEGRAM_TEST_ENV"), "TELEGRAM_TEST_ENV")?,
            api_timeout: parse_seconds(get("TELEGRAM_API_TIMEOUT"), "TELEGRAM_API_TIMEOUT", 15)?,
            public_url,
            database_url,
            site_addr,
            packages: parse_packages(get("NDN_PACKAGES").unwrap_or(DEFAULT_PACKAGES))?,
            init_data_max_age: parse_seconds(
                get("INIT_DATA_MAX_AGE"),
                "INIT_DATA_MAX_AGE",
                86_400,
            )?,
            order_ttl: parse_seconds(get("ORDER_TTL"), "ORDER_TTL", 3_600)?,
            db_max_connections: parse_count_up_to(
                get("DATABASE_MAX_CONNECTIONS"),
                "DATABASE_MAX_CONNECTIONS",
                8,
                1000,
            )?,
            reconcile_interval: get("RECONCILE_INTERVAL")
                .map(|_| parse_seconds(get("RECONCILE_INTERVAL"), "RECONCILE_INTERVAL", 0))
                .transpose()?,
            outbox_lease: parse_seconds(get("OUTBOX_LEASE"), "OUTBOX_LEASE", 60)?,
            bot_messages_per_second: parse_count_up_to(
                get("BOT_MESSAGES_PER_SECOND"),
                "BOT_MESSAGES_PER_SECOND",
                25,
                1000,
            )?,
            statement_timeout: match get("DATABASE_STATEMENT_TIMEOUT") {
                None => None,
                Some(text) => Some(Duration::from_millis(
                    text.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        invalid(
                            "DATABASE_STATEMENT_TIMEOUT",
                            "expected milliseconds, e.g. 5000",
                        )
                    })?,
                )),
            },
            invoice_rate_per_minute: parse_count(
                get("INVOICE_RATE_PER_MINUTE"),
                "INVOICE_RATE_PER_MINUTE",
                10,
            )?,
            max_pending_orders: i64::from(parse_count(
                get("MAX_PENDING_ORDERS"),
                "MAX_PENDING_ORDERS",
                20,
            )?),
            webhook_networks: get("WEBHOOK_ALLOWED_NETWORKS")
                .map(|text| {
                    crate::http::security::Networks::parse(text)
                        .map_err(|problem| invalid("WEBHOOK_ALLOWED_NETWORKS", problem))
                })
                .transpose()?,
            trusted_proxy_header: match get("TRUSTED_PROXY_HEADER") {
                None => None,
                Some(name) => Some(
                    axum::http::HeaderName::try_from(name.to_ascii_lowercase())
                        .map_err(|_| invalid("TRUSTED_PROXY_HEADER", "not a header name"))?
                        .to_string(),
                ),
            },
            poll_updates: false,
            metrics_token: match get("METRICS_TOKEN") {
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
            admin_user_ids: match get("ADMIN_USER_IDS") {
                Some(text) => parse_user_ids(text)?,
                None if vars.contains_key("ADMIN_USER_IDS") => Vec::new(),
                None => match mode {
                    Mode::Sandbox => vec![crate::sandbox::OPERATOR.id],
                    Mode::Production => Vec::new(),
                },
            },
            endpoints_allow_private: match get("ENDPOINTS_ALLOW_PRIVATE") {
                Some(text) => parse_bool(Some(text), "ENDPOINTS_ALLOW_PRIVATE")?,
                None => mode == Mode::Sandbox,
            },
            events: EventDelivery {
                lease: parse_seconds(get("EVENTS_LEASE"), "EVENTS_LEASE", 30)?,
                timeout: parse_seconds(get("EVENTS_TIMEOUT"), "EVENTS_TIMEOUT", 10)?,
                first_retry: Duration::from_millis(u64::from(parse_count(
                    get("EVENTS_FIRST_RETRY_MS"),
                    "EVENTS_FIRST_RETRY_MS",
                    5_000,
                )?)),
                retry_window: parse_seconds(
                    get("EVENTS_RETRY_WINDOW"),
                    "EVENTS_RETRY_WINDOW",
                    3 * 86_400,
                )?,
                retention: Duration::from_secs(
                    86_400
                        * u64::from(parse_count_up_to(
                            get("EVENTS_RETENTION_DAYS"),
                            "EVENTS_RETENTION_DAYS",
                            30,
                            36_500,
                        )?),
                ),
            },
            site_root: get("LEPTOS_SITE_ROOT").map(Into::into),
            hash_file: get("LEPTOS_HASH_FILE_NAME").map(Into::into),
            metrics_addr: get("METRICS_ADDR")
                .map(|text| {
                    text.parse::<SocketAddr>().map_err(|_| {
                        invalid("METRICS_ADDR", "expected host:port, e.g. 127.0.0.1:9100")
                    })
                })
                .transpose()?,
        };
        if let Some(addr) = config.metrics_addr
            && addr.ip().is_unspecified()
            && config.metrics_token.is_none()
        {
            return Err(invalid(
                "METRICS_ADDR",
                "listens on every interface, which makes the metrics public: \
                 give a private address, or set METRICS_TOKEN too",
            ));
        }
        Ok(config)
    }

    pub fn is_operator(&self, user_id: i64) -> bool {
        self.admin_user_ids.contains(&user_id)
    }

    /// The catalogue as (Stars, NDN): what a payment of that many Stars buys.
    pub fn prices(&self) -> Vec<(i64, i64)> {
        self.packages
            .iter()
            .map(|package| (package.stars, package.ndn))
            .collect()
    }

    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|package| package.id == id)
    }

    /// The Mini App's own URL, for the bot's "open" button: the public one, or in the sandbox
    /// this machine's. A real bot without `PUBLIC_URL` (polling) has none that Telegram takes.
    pub fn mini_app_url(&self) -> Option<String> {
        match (&self.public_url, self.mode) {
            (Some(url), _) => Some(format!("{}/", url.trim_end_matches('/'))),
            (None, Mode::Sandbox) => Some(format!("http://{}/", loopback(self.site_addr))),
            (None, Mode::Production) => None,
        }
    }
}

/// `ADMIN_USER_IDS`: Telegram user ids, comma-separated.
fn parse_user_ids(text: &str) -> Result<Vec<i64>, ConfigError> {
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

fn validate_token(token: &str) -> Result<(), ConfigError> {
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

fn validate_secret(secret: &str) -> Result<(), ConfigError> {
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

fn validate_http_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
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
fn validate_public_url(url: &str, mode: Mode) -> Result<String, ConfigError> {
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
fn is_loopback_url(url: &str) -> bool {
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

fn parse_bool(value: Option<&str>, variable: &'static str) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(invalid(variable, "expected true or false")),
    }
}

fn parse_seconds(
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

fn parse_count(
    value: Option<&str>,
    variable: &'static str,
    default: u32,
) -> Result<u32, ConfigError> {
    parse_count_up_to(value, variable, default, 1_000_000)
}

/// A whole number from 1 to `max`.
fn parse_count_up_to(
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
fn parse_packages(text: &str) -> Result<Vec<Package>, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(&vars)
    }

    #[test]
    fn the_sandbox_runs_only_when_asked_for() {
        let config = config(&[("NDN_SANDBOX", "1")]).unwrap();
        assert_eq!(config.mode, Mode::Sandbox);
        assert_eq!(config.api_url, None);
        assert_eq!(config.database_url, "sqlite://data/ndn.db");
        let summary: Vec<_> = config.packages.iter().map(|p| (p.ndn, p.stars)).collect();
        assert_eq!(summary, [(100, 50), (500, 225), (1000, 400)]);
    }

    #[test]
    fn without_a_token_or_the_sandbox_switch_the_server_says_what_to_set() {
        let unset = config(&[]).unwrap_err();
        assert_eq!(unset.variable, "TELEGRAM_BOT_TOKEN");
        assert!(unset.problem.contains("is not set"), "{unset}");
        assert!(unset.problem.contains("NDN_SANDBOX=1"), "{unset}");
        // A secret that failed to inject is not a request for the sandbox.
        for empty in ["", "   "] {
            let error = config(&[
                ("TELEGRAM_BOT_TOKEN", empty),
                ("PUBLIC_URL", "https://ndn.example.org"),
            ])
            .unwrap_err();
            assert_eq!(error.variable, "TELEGRAM_BOT_TOKEN");
            assert!(error.problem.contains("is empty"), "{error}");
        }
        let both = config(&[("TELEGRAM_BOT_TOKEN", "123:abc"), ("NDN_SANDBOX", "1")]).unwrap_err();
        assert_eq!(both.variable, "NDN_SANDBOX");
    }

    #[test]
    fn operators_are_listed_by_user_id() {
        let production = [
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("TELEGRAM_WEBHOOK_SECRET", "s3cret"),
        ];
        let listed = config(&[
            production[0],
            production[1],
            ("ADMIN_USER_IDS", " 7, 279058397 ,"),
        ])
        .unwrap();
        assert_eq!(listed.admin_user_ids, vec![7, 279_058_397]);
        assert!(listed.is_operator(7) && !listed.is_operator(8));
        assert!(
            config(&production).unwrap().admin_user_ids.is_empty(),
            "no console by default"
        );
        for wrong in ["@boss", "-5", "7;8", "0"] {
            let error =
                config(&[production[0], production[1], ("ADMIN_USER_IDS", wrong)]).unwrap_err();
            assert_eq!(error.variable, "ADMIN_USER_IDS", "{wrong}");
        }
        // The sandbox's operator, unless the variable is set (even to nothing).
        let sandbox = config(&[("NDN_SANDBOX", "1")]).unwrap();
        assert_eq!(sandbox.admin_user_ids, vec![crate::sandbox::OPERATOR.id]);
        let none = config(&[("NDN_SANDBOX", "1"), ("ADMIN_USER_IDS", "")]).unwrap();
        assert!(none.admin_user_ids.is_empty());
    }

    #[test]
    fn the_sandbox_refuses_a_public_url_or_a_public_address() {
        let public = config(&[
            ("NDN_SANDBOX", "1"),
            ("PUBLIC_URL", "https://ndn.example.org"),
        ])
        .unwrap_err();
        assert_eq!(public.variable, "NDN_SANDBOX");
        assert!(public.problem.contains("PUBLIC_URL"), "{public}");
        for address in ["0.0.0.0:3000", "192.168.1.10:3000", "[::]:3000"] {
            let error = config(&[("NDN_SANDBOX", "1"), ("LEPTOS_SITE_ADDR", address)]).unwrap_err();
            assert_eq!(error.variable, "NDN_SANDBOX", "{address}");
            assert!(error.problem.contains("LEPTOS_SITE_ADDR"), "{error}");
        }
        for disguised in [
            "http://evil.example\\@127.0.0.1:3000",
            "http://evil.example@127.0.0.1:3000",
            "http://127.0.0.1:3000@evil.example",
        ] {
            let error = config(&[("NDN_SANDBOX", "1"), ("PUBLIC_URL", disguised)]).unwrap_err();
            assert_eq!(error.variable, "PUBLIC_URL", "{disguised}");
        }
        for loopback in [
            "http://127.0.0.1:3000",
            "http://localhost:3000/",
            "http://[::1]:3000",
        ] {
            let config = config(&[("NDN_SANDBOX", "1"), ("PUBLIC_URL", loopback)]).unwrap();
            assert_eq!(config.mode, Mode::Sandbox, "{loopback}");
        }
        let ipv6 = config(&[("NDN_SANDBOX", "1"), ("LEPTOS_SITE_ADDR", "[::1]:3000")]).unwrap();
        assert_eq!(ipv6.mode, Mode::Sandbox);
    }

    #[test]
    fn a_real_bot_needs_an_https_public_url() {
        let bot = [
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("TELEGRAM_WEBHOOK_SECRET", "s3cr_t"),
        ];
        for url in ["http://ndn.example.org", "http://127.0.0.1:3000"] {
            let mut vars = bot.to_vec();
            vars.push(("PUBLIC_URL", url));
            let error = config(&vars).unwrap_err();
            assert_eq!(error.variable, "PUBLIC_URL", "{url}");
            assert!(error.problem.contains("https://"), "{error}");
        }
        let mut vars = bot.to_vec();
        vars.push(("PUBLIC_URL", "https://ndn.example.org/"));
        assert_eq!(
            config(&vars).unwrap().public_url.as_deref(),
            Some("https://ndn.example.org")
        );
    }

    #[test]
    fn metrics_protection_is_validated() {
        let short = config(&[("NDN_SANDBOX", "1"), ("METRICS_TOKEN", "short")]).unwrap_err();
        assert_eq!(short.variable, "METRICS_TOKEN");
        let bad = config(&[("NDN_SANDBOX", "1"), ("METRICS_ADDR", "metrics")]).unwrap_err();
        assert_eq!(bad.variable, "METRICS_ADDR");
        let everywhere = config(&[("NDN_SANDBOX", "1"), ("METRICS_ADDR", "0.0.0.0:9100")]);
        assert_eq!(everywhere.unwrap_err().variable, "METRICS_ADDR");
        let good = config(&[
            ("NDN_SANDBOX", "1"),
            ("METRICS_TOKEN", "0123456789abcdef0123"),
            ("METRICS_ADDR", "0.0.0.0:9100"),
        ])
        .unwrap();
        assert_eq!(good.metrics_token.as_deref(), Some("0123456789abcdef0123"));
        assert!(!format!("{good:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn token_requires_a_valid_webhook_secret() {
        let err = config(&[("TELEGRAM_BOT_TOKEN", "123:abc")]).unwrap_err();
        assert_eq!(err.variable, "TELEGRAM_WEBHOOK_SECRET");
        let err = config(&[
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("TELEGRAM_WEBHOOK_SECRET", "123:abc"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "TELEGRAM_WEBHOOK_SECRET");
        let ok = config(&[
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("TELEGRAM_WEBHOOK_SECRET", "s3cr_t"),
        ])
        .unwrap();
        assert_eq!(ok.mode, Mode::Production);
        assert_eq!(ok.api_url.as_deref(), Some("https://api.telegram.org"));
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (var, value) in [
            ("TELEGRAM_BOT_TOKEN", "not a token"),
            ("LEPTOS_SITE_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("NDN_PACKAGES", "100"),
            ("NDN_PACKAGES", "100:0"),
            ("NDN_PACKAGES", "100:50,100:60"),
            ("TELEGRAM_TEST_ENV", "maybe"),
            ("INIT_DATA_MAX_AGE", "-5"),
            ("PUBLIC_URL", "ftp://example.org"),
            ("WEBHOOK_ALLOWED_NETWORKS", "149.154.160.0/40"),
            ("TRUSTED_PROXY_HEADER", "bad header"),
            ("MAX_PENDING_ORDERS", "0"),
            ("NDN_SANDBOX", "perhaps"),
        ] {
            let mut vars = vec![(var, value)];
            if var != "TELEGRAM_BOT_TOKEN" && var != "NDN_SANDBOX" {
                vars.push(("NDN_SANDBOX", "1"));
            }
            let err = config(&vars).unwrap_err();
            assert_eq!(err.variable, var, "{value}");
            assert!(
                err.to_string()
                    .starts_with(&format!("configuration error: {var}: "))
            );
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = config(&[
            ("TELEGRAM_BOT_TOKEN", "123:very-secret-token"),
            ("TELEGRAM_WEBHOOK_SECRET", "hook-secret"),
            ("DATABASE_URL", "postgres://app:hunter2@db/ndn"),
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret-token"));
        assert!(!shown.contains("hook-secret"));
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("postgres://app:***@db/ndn"));
    }
}
