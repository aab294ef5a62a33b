//! Configuration: read once from the environment (and `.env`), validated, then passed down.

use std::collections::HashMap;

use crate::wallet::ids::UserId;
use app::api::Package;

pub mod bundle;
mod console;
mod database;
mod events;
mod http;
pub mod networks;
mod parse;
mod shop;
mod telegram;

pub use console::ConsoleConfig;
pub use database::DatabaseConfig;
pub use events::EventDelivery;
pub use http::HttpConfig;
pub use networks::Networks;
pub use parse::{is_loopback_host, loopback};
pub use shop::ShopConfig;
pub use telegram::TelegramConfig;

/// The environment's variables, an empty value read as unset.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Whether `name` is set at all, even to nothing.
    fn is_set(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// The bot token the sandbox signs initData with. It is not a secret: the sandbox runs only
/// when asked for (`NDN_SANDBOX=1`), without a real token, and on loopback.
pub const SANDBOX_BOT_TOKEN: &str = "1000000001:SANDBOX-local-ndn-token-is-not-a-secret";
/// The sandbox's operator (its `ADMIN_USER_IDS` unless set), who sees the console.
pub const SANDBOX_OPERATOR_ID: UserId = UserId(100_003);
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

/// How log lines are written (`LOG_FORMAT`): `text` for people (coloured only on a terminal),
/// `json` for machines (one object per line, never coloured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    fn read(vars: &Vars) -> Result<Self, ConfigError> {
        match vars.get("LOG_FORMAT") {
            None | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(invalid("LOG_FORMAT", format!("`{other}`: text or json"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real bot token is configured.
    Production,
    /// `NDN_SANDBOX=1` and no token: the server plays Telegram for itself, on loopback only.
    Sandbox,
}

/// The server's configuration, an area at a time; each area is read and checked beside its
/// type (`telegram.rs`, `http.rs`, `database.rs`, `shop.rs`, `console.rs`, `events.rs`).
#[derive(Clone)]
pub struct Config {
    pub mode: Mode,
    pub telegram: TelegramConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub shop: ShopConfig,
    pub console: ConsoleConfig,
    /// Signed events to the operator's backend: how they are retried, leased and kept.
    pub events: EventDelivery,
    /// How log lines are written (`LOG_FORMAT`).
    pub logs: LogFormat,
}

impl std::fmt::Debug for Config {
    // Hand-written so that the token and the secret can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("mode", &self.mode)
            .field("api_url", &self.telegram.api_url)
            .field("test_env", &self.telegram.test_env)
            .field("public_url", &self.http.public_url)
            .field("database_url", &redact_password(&self.database.url))
            .field("site_addr", &self.http.site_addr)
            .field("packages", &self.shop.packages)
            .field("metrics_addr", &self.http.metrics_addr)
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
        Self::from_vars(&environment())
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        let site_addr = http::site_addr(&vars)?;
        let (mode, telegram) = TelegramConfig::read(&vars, site_addr)?;
        Ok(Self {
            mode,
            telegram,
            http: HttpConfig::read(&vars, mode, site_addr)?,
            database: DatabaseConfig::read(&vars)?,
            shop: ShopConfig::read(&vars)?,
            console: ConsoleConfig::read(&vars, mode)?,
            events: EventDelivery::read(&vars, mode)?,
            logs: LogFormat::read(&vars)?,
        })
    }

    pub fn is_operator(&self, user_id: UserId) -> bool {
        self.console.admin_user_ids.contains(&user_id)
    }

    /// The catalogue as (Stars, NDN): what a payment of that many Stars buys.
    pub fn prices(&self) -> Vec<(i64, i64)> {
        self.shop
            .packages
            .iter()
            .map(|package| (package.stars, package.ndn))
            .collect()
    }

    pub fn package(&self, id: &str) -> Option<&Package> {
        self.shop.packages.iter().find(|package| package.id == id)
    }

    /// The Mini App's own URL, for the bot's "open" button: the public one, or in the sandbox
    /// this machine's. A real bot without `PUBLIC_URL` (polling) has none that Telegram takes.
    pub fn mini_app_url(&self) -> Option<String> {
        match (&self.http.public_url, self.mode) {
            (Some(url), _) => Some(format!("{}/", url.trim_end_matches('/'))),
            (None, Mode::Sandbox) => Some(format!("http://{}/", loopback(self.http.site_addr))),
            (None, Mode::Production) => None,
        }
    }
}

/// The process environment, after `.env` (which never overrides a variable already set).
fn environment() -> HashMap<String, String> {
    let _ = dotenvy::dotenv();
    std::env::vars().collect()
}

/// `LEPTOS_SITE_ADDR` alone (after `.env`): where `server health` asks.
pub fn site_addr_from_env() -> Result<std::net::SocketAddr, ConfigError> {
    http::site_addr(&Vars(&environment()))
}

/// `PUBLIC_URL`, else `http://` and `LEPTOS_SITE_ADDR` (after `.env`): where this server answers,
/// for `server openapi`.
pub fn public_url_from_env() -> Result<String, ConfigError> {
    let vars = environment();
    let vars = Vars(&vars);
    match vars.get("PUBLIC_URL") {
        Some(url) => Ok(url.trim_end_matches('/').to_owned()),
        None => Ok(format!("http://{}", loopback(http::site_addr(&vars)?))),
    }
}

/// What the commands that need only the database read (`keys`, `events`, `ledger verify`,
/// `backup`, …): no bot token, no URL, no port, so they run where only the database is.
#[derive(Clone)]
pub struct DatabaseOnly {
    pub database: DatabaseConfig,
    pub events: EventDelivery,
    pub logs: LogFormat,
}

impl DatabaseOnly {
    /// Reads the process environment (after `.env`, which never overrides real variables).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&environment())
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        // Only for the events' defaults (private endpoints allowed in the sandbox).
        let mode = if parse::parse_bool(vars.get("NDN_SANDBOX"), "NDN_SANDBOX")? {
            Mode::Sandbox
        } else {
            Mode::Production
        };
        Ok(Self {
            database: DatabaseConfig::read(&vars)?,
            events: EventDelivery::read(&vars, mode)?,
            logs: LogFormat::read(&vars)?,
        })
    }
}

impl From<&Config> for DatabaseOnly {
    fn from(config: &Config) -> Self {
        Self {
            database: config.database.clone(),
            events: config.events,
            logs: config.logs,
        }
    }
}

#[cfg(test)]
mod tests;
