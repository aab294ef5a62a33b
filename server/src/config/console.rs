//! `ADMIN_USER_IDS`: who sees the operator console.

use super::parse::parse_user_ids;
use super::{ConfigError, Mode, Vars};
use crate::wallet::ids::UserId;

#[derive(Clone)]
pub struct ConsoleConfig {
    /// Telegram user ids of the operators, who see the console (`ADMIN_USER_IDS`; empty: no
    /// console). The sandbox's operator by default in sandbox mode.
    pub admin_user_ids: Vec<UserId>,
}

impl ConsoleConfig {
    pub(super) fn read(vars: &Vars, mode: Mode) -> Result<Self, ConfigError> {
        let admin_user_ids = match vars.get("ADMIN_USER_IDS") {
            Some(text) => parse_user_ids(text)?.into_iter().map(UserId).collect(),
            None if vars.is_set("ADMIN_USER_IDS") => Vec::new(),
            None => match mode {
                Mode::Sandbox => vec![super::SANDBOX_OPERATOR_ID],
                Mode::Production => Vec::new(),
            },
        };
        Ok(Self { admin_user_ids })
    }
}
