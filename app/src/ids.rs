//! A buyer's id, typed: the Mini App, the console and the server share it. It travels as the
//! plain number Telegram gives (serde, and on the server sqlx, see through it).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A buyer: their Telegram user id (always positive; the books' system accounts are negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(feature = "ssr", sqlx(transparent))]
#[serde(transparent)]
pub struct UserId(pub i64);

impl UserId {
    pub fn get(self) -> i64 {
        self.0
    }

    /// The chat of the buyer's private conversation with the bot, which has the user's id.
    pub fn private_chat(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
