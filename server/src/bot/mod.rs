//! The bot: updates coming in (the webhook, or long polling), its commands, and what an
//! operator asks of Telegram (the webhook's registration, refunds, reconciliation with the list
//! of Star transactions).

pub(crate) mod commands;
pub mod operator;
pub(crate) mod poller;
pub mod webhook;
