//! Everything that speaks Telegram's language: updates coming in (the webhook or long polling),
//! their types, the Bot API client, the bot's commands and words, the Mini App's `initData`
//! check, and what an operator asks of Telegram (the webhook's registration, refunds,
//! reconciliation with the list of Star transactions).

pub mod bot_api;
pub mod bot_text;
pub(crate) mod commands;
pub mod init_data;
pub mod operator;
pub(crate) mod poller;
pub mod updates;
pub mod webhook;
