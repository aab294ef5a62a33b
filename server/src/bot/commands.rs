//! Bot commands: each reply is queued under the update's id, so a redelivered command is
//! answered once.

use app::i18n::Lang;
use serde_json::{Value, json};

use crate::state::AppState;
use crate::store::StoreError;
use crate::telegram::bot_text::commands as text;
use crate::telegram::updates::Message;
use crate::wallet::ids::UserId;
use crate::wallet::model::OutgoingMessage;

/// Replies to a command; other messages are acknowledged and ignored.
pub async fn reply(state: &AppState, update_id: i64, message: &Message) -> Result<(), StoreError> {
    let Some((command, addressee)) = message.text.as_deref().and_then(command_name) else {
        return Ok(());
    };
    let answer = if message.chat.is_private() {
        Some(private_reply(state, message, command).await?)
    } else {
        group_reply(state, message, command, addressee)
    };
    let Some((text, reply_markup)) = answer else {
        return Ok(());
    };
    let queued = state
        .store
        .enqueue(&OutgoingMessage {
            dedupe_key: format!("update:{update_id}"),
            chat_id: message.chat.id,
            text,
            reply_markup: reply_markup.map(|markup| markup.to_string()),
        })
        .await?;
    if queued {
        state.outbox.notify_one();
    }
    Ok(())
}

fn language(message: &Message) -> Lang {
    Lang::from_code(
        message
            .from
            .as_ref()
            .and_then(|u| u.language_code.as_deref())
            .unwrap_or("en"),
    )
}

/// Every command, answered to the buyer alone.
async fn private_reply(
    state: &AppState,
    message: &Message,
    command: &str,
) -> Result<(String, Option<Value>), StoreError> {
    let user = message.from.as_ref();
    let user_id = user.map_or(UserId(message.chat.id), |user| user.id);
    let lang = language(message);
    let mini_app = state.config.mini_app_url();
    Ok(match command {
        "start" => {
            let button = mini_app.map(|url| {
                json!({ "inline_keyboard": [[{
                    "text": text::open_button(lang),
                    "web_app": { "url": url },
                }]] })
            });
            let name = user.map_or("", |u| u.first_name.as_str());
            (text::start(lang, name, button.is_some()), button)
        }
        "balance" => (
            text::balance(lang, state.store.balance(user_id).await?),
            None,
        ),
        "help" => (text::help(lang).to_owned(), None),
        "paysupport" => (
            text::paysupport(lang, &state.store.recent_charges(user_id, 5).await?),
            None,
        ),
        "privacy" => (text::privacy(lang, mini_app.as_deref()), None),
        "terms" => (text::terms(lang).to_owned(), None),
        _ => (text::unknown(lang).to_owned(), None),
    })
}

/// In a group everyone reads the answer: only `/start` is answered, with a way to a private
/// chat and nothing about anyone's money.
fn group_reply(
    state: &AppState,
    message: &Message,
    command: &str,
    addressee: Option<&str>,
) -> Option<(String, Option<Value>)> {
    if command != "start" {
        return None;
    }
    let ours = state.bot_username.get();
    match (addressee, ours) {
        // `/start@another_bot`, or a named bot while ours is not known yet: not for us.
        (Some(addressee), Some(ours)) if !addressee.eq_ignore_ascii_case(ours) => return None,
        (Some(_), None) => return None,
        _ => {}
    }
    let lang = language(message);
    let button = ours.map(|name| {
        json!({ "inline_keyboard": [[{
            "text": text::private_chat_button(lang),
            "url": format!("https://t.me/{name}?start=shop"),
        }]] })
    });
    Some((text::start_in_group(lang, button.is_some()), button))
}

/// `/start@ndn_bot payload` → `start`, addressed to `ndn_bot`.
fn command_name(text: &str) -> Option<(&str, Option<&str>)> {
    let word = text.strip_prefix('/')?.split_whitespace().next()?;
    let (name, addressee) = match word.split_once('@') {
        Some((name, bot)) => (name, Some(bot)),
        None => (word, None),
    };
    (!name.is_empty()).then_some((name, addressee))
}

#[cfg(test)]
mod tests {
    use super::command_name;

    #[test]
    fn commands_are_read_with_or_without_the_bot_name() {
        assert_eq!(command_name("/start"), Some(("start", None)));
        assert_eq!(
            command_name("/start@ndn_bot ref42"),
            Some(("start", Some("ndn_bot")))
        );
        assert_eq!(command_name("hello"), None);
        assert_eq!(command_name("/"), None);
    }
}
