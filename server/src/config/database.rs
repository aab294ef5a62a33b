//! `DATABASE_*`: which database, and how the server uses it.

use std::time::Duration;

use super::parse::parse_count_up_to;
use super::{ConfigError, Vars, invalid};

#[derive(Clone)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://…` (`DATABASE_URL`).
    pub url: String,
    /// The pool's connections at most (`DATABASE_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// PostgreSQL `statement_timeout` (`DATABASE_STATEMENT_TIMEOUT`, milliseconds).
    pub statement_timeout: Option<Duration>,
    /// `serve` applies this binary's migrations before it serves (off: `serve --no-migrate`,
    /// for a second instance while another one migrates; it then needs the current schema).
    pub migrate_on_start: bool,
}

impl DatabaseConfig {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        let url = vars
            .get("DATABASE_URL")
            .unwrap_or("sqlite://data/ndn.db")
            .to_owned();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "expected sqlite://path or postgres://user@host/db",
            ));
        }
        Ok(Self {
            url,
            max_connections: parse_count_up_to(
                vars.get("DATABASE_MAX_CONNECTIONS"),
                "DATABASE_MAX_CONNECTIONS",
                8,
                1000,
            )?,
            statement_timeout: match vars.get("DATABASE_STATEMENT_TIMEOUT") {
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
            migrate_on_start: true,
        })
    }
}
