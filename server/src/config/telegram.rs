//! `TELEGRAM_*`, `NDN_SANDBOX` and the bot's pace: who the server is to Telegram.

use std::net::SocketAddr;
use std::time::Duration;

use super::parse::{
    parse_bool, parse_count_up_to, parse_seconds, validate_http_url, validate_secret,
    validate_token,
};
use super::{
    ConfigError, DEFAULT_API_URL, Mode, SANDBOX_BOT_TOKEN, SANDBOX_WEBHOOK_SECRET, Vars, invalid,
};

#[derive(Clone)]
pub struct TelegramConfig {
    pub bot_token: String,
    pub webhook_secret: String,
    /// Base URL of the Bot API; `None` in sandbox mode means the server's own fake.
    pub api_url: Option<String>,
    pub test_env: bool,
    /// How long one Bot API call may take (`TELEGRAM_API_TIMEOUT`, seconds).
    pub api_timeout: Duration,
    /// How old a Mini App's `initData` may be (`INIT_DATA_MAX_AGE`, seconds).
    pub init_data_max_age: Duration,
    /// Long polling instead of the webhook (`serve --poll`; not an environment variable).
    pub poll_updates: bool,
    /// Reconcile with `getStarTransactions` this often while serving (`RECONCILE_INTERVAL`).
    pub reconcile_interval: Option<Duration>,
    /// How long a worker owns the messages it claimed; after a crash, others send them then.
    pub outbox_lease: Duration,
    /// The bot's messages a second, all instances together (`BOT_MESSAGES_PER_SECOND`).
    pub bot_messages_per_second: u32,
}

impl TelegramConfig {
    /// The mode and Telegram's side. Sandbox mode is asked for, never fallen into: an empty
    /// token (a secret that failed to inject) must not turn a deployment into a shop that sells
    /// NDN for nothing.
    pub(super) fn read(vars: &Vars, site_addr: SocketAddr) -> Result<(Mode, Self), ConfigError> {
        let sandbox = parse_bool(vars.get("NDN_SANDBOX"), "NDN_SANDBOX")?;
        let (mode, bot_token) = match (vars.get("TELEGRAM_BOT_TOKEN"), sandbox) {
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
                let problem = if vars.is_set("TELEGRAM_BOT_TOKEN") {
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
        let webhook_secret = match (vars.get("TELEGRAM_WEBHOOK_SECRET"), mode) {
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
        let api_url = match (vars.get("TELEGRAM_API_URL"), mode) {
            (Some(url), _) => Some(validate_http_url("TELEGRAM_API_URL", url)?),
            (None, Mode::Production) => Some(DEFAULT_API_URL.to_owned()),
            (None, Mode::Sandbox) => None,
        };
        let telegram = Self {
            bot_token,
            webhook_secret,
            api_url,
            test_env: parse_bool(vars.get("TELEGRAM_TEST_ENV"), "TELEGRAM_TEST_ENV")?,
            api_timeout: parse_seconds(
                vars.get("TELEGRAM_API_TIMEOUT"),
                "TELEGRAM_API_TIMEOUT",
                15,
            )?,
            init_data_max_age: parse_seconds(
                vars.get("INIT_DATA_MAX_AGE"),
                "INIT_DATA_MAX_AGE",
                86_400,
            )?,
            poll_updates: false,
            reconcile_interval: vars
                .get("RECONCILE_INTERVAL")
                .map(|text| parse_seconds(Some(text), "RECONCILE_INTERVAL", 0))
                .transpose()?,
            outbox_lease: parse_seconds(vars.get("OUTBOX_LEASE"), "OUTBOX_LEASE", 60)?,
            bot_messages_per_second: parse_count_up_to(
                vars.get("BOT_MESSAGES_PER_SECOND"),
                "BOT_MESSAGES_PER_SECOND",
                25,
                1000,
            )?,
        };
        Ok((mode, telegram))
    }
}
