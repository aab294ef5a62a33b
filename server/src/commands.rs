//! Bot commands: each reply is queued under the update's id, so a redelivered command is
//! answered once.

use app::i18n::Lang;
use serde_json::json;

use crate::bot_text::commands as text;
use crate::state::AppState;
use crate::store::{OutgoingMessage, StoreError};
use crate::updates::Message;

/// Replies to a command in a private chat; other messages are acknowledged and ignored.
pub async fn reply(state: &AppState, update_id: i64, message: &Message) -> Result<(), StoreError> {
    let Some(command) = message.text.as_deref().and_then(command_name) else {
        return Ok(());
    };
    let user = message.from.as_ref();
    let user_id = user.map_or(message.chat.id, |user| user.id);
    let lang = Lang::from_code(
        user.and_then(|u| u.language_code.as_deref())
            .unwrap_or("en"),
    );
    let mut reply_markup = None;
    let reply = match command {
        "start" => {
            reply_markup = Some(
                json!({ "inline_keyboard": [[{
                    "text": text::open_button(lang),
                    "web_app": { "url": state.config.mini_app_url() },
                }]] })
                .to_string(),
            );
            text::start(lang, user.map_or("", |u| u.first_name.as_str()))
        }
        "balance" => text::balance(lang, state.store.balance(user_id).await?),
        "help" => text::help(lang).to_owned(),
        "paysupport" => text::paysupport(lang, &state.store.recent_charges(user_id, 5).await?),
        "privacy" => text::privacy(lang, &state.config.mini_app_url()),
        "terms" => text::terms(lang).to_owned(),
        _ => text::unknown(lang).to_owned(),
    };
    let queued = state
        .store
        .enqueue(&OutgoingMessage {
            dedupe_key: format!("update:{update_id}"),
            chat_id: message.chat.id,
            text: reply,
            reply_markup,
        })
        .await?;
    if queued {
        state.outbox.notify_one();
    }
    Ok(())
}

/// `/start@ndn_bot payload` → `start`.
fn command_name(text: &str) -> Option<&str> {
    let word = text.strip_prefix('/')?.split_whitespace().next()?;
    let name = word.split('@').next()?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::command_name;

    #[test]
    fn commands_are_read_with_or_without_the_bot_name() {
        assert_eq!(command_name("/start"), Some("start"));
        assert_eq!(command_name("/start@ndn_bot ref42"), Some("start"));
        assert_eq!(command_name("hello"), None);
        assert_eq!(command_name("/"), None);
    }
}
