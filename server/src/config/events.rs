//! `EVENTS_*` and `ENDPOINTS_ALLOW_PRIVATE`: how signed events reach the operator's backend.

use std::time::Duration;

use super::parse::{parse_bool, parse_count, parse_count_up_to, parse_seconds};
use super::{ConfigError, Mode, Vars};

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
    /// Event endpoints may be private or loopback addresses, and plain http
    /// (`ENDPOINTS_ALLOW_PRIVATE`; on in the sandbox, off otherwise).
    pub allow_private: bool,
}

impl EventDelivery {
    pub(super) fn read(vars: &Vars, mode: Mode) -> Result<Self, ConfigError> {
        Ok(Self {
            lease: parse_seconds(vars.get("EVENTS_LEASE"), "EVENTS_LEASE", 30)?,
            timeout: parse_seconds(vars.get("EVENTS_TIMEOUT"), "EVENTS_TIMEOUT", 10)?,
            first_retry: Duration::from_millis(u64::from(parse_count(
                vars.get("EVENTS_FIRST_RETRY_MS"),
                "EVENTS_FIRST_RETRY_MS",
                5_000,
            )?)),
            retry_window: parse_seconds(
                vars.get("EVENTS_RETRY_WINDOW"),
                "EVENTS_RETRY_WINDOW",
                3 * 86_400,
            )?,
            retention: Duration::from_secs(
                86_400
                    * u64::from(parse_count_up_to(
                        vars.get("EVENTS_RETENTION_DAYS"),
                        "EVENTS_RETENTION_DAYS",
                        30,
                        36_500,
                    )?),
            ),
            allow_private: match vars.get("ENDPOINTS_ALLOW_PRIVATE") {
                Some(text) => parse_bool(Some(text), "ENDPOINTS_ALLOW_PRIVATE")?,
                None => mode == Mode::Sandbox,
            },
        })
    }
}
