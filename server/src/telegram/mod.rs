//! Telegram's language, as a client speaks it: the updates' types both ways, the Bot API
//! client, the bot's words in each language, and the Mini App's `initData` check. It uses no
//! handler; the bot's own handlers are in `bot/`.

pub mod bot_api;
pub mod bot_text;
pub mod init_data;
pub mod updates;
