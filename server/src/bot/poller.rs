//! Long-polling mode (`serve --poll`): `getUpdates` instead of a webhook, for a developer with a
//! real bot and no public URL. The same processing as the webhook; the offset is stored only
//! after an update is processed, so a crash means a redelivery, never a loss.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::bot::operator::ALLOWED_UPDATES;
use crate::bot::webhook::{Handled, process};
use crate::state::AppState;
use crate::telegram::bot_api::BotApiError;
use crate::telegram::updates::Update;

const OFFSET_KEY: &str = "poll_offset";
const LONG_POLL_SECS: u64 = 25;

pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut offset = match state.store.bot_value(OFFSET_KEY).await {
        Ok(offset) => offset.unwrap_or(0),
        Err(error) => {
            tracing::error!(%error, "polling: cannot read the stored offset; starting from Telegram's");
            0
        }
    };
    tracing::info!(offset, "polling Telegram for updates");
    while !shutdown.is_cancelled() {
        let batch = tokio::select! {
            () = shutdown.cancelled() => return,
            batch = state.bot.get_updates(offset, LONG_POLL_SECS, &ALLOWED_UPDATES) => batch,
        };
        let updates = match batch {
            Ok(updates) => updates,
            Err(BotApiError::Api { code: 409, .. }) => {
                tracing::error!("polling: a webhook is set; run `server webhook delete` to poll");
                pause(&shutdown, Duration::from_secs(30)).await;
                continue;
            }
            Err(error) => {
                let wait = error.retry_after().unwrap_or(3);
                tracing::warn!(%error, wait, "polling: getUpdates failed");
                pause(&shutdown, Duration::from_secs(wait)).await;
                continue;
            }
        };
        for raw in updates {
            let Some(update_id) = raw.get("update_id").and_then(serde_json::Value::as_i64) else {
                continue;
            };
            match serde_json::from_value::<Update>(raw) {
                Ok(update) => {
                    if !deliver(&state, update).await {
                        // Not stored: fetch it again after a pause.
                        pause(&shutdown, Duration::from_secs(1)).await;
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(update_id, %error, "polling: undecodable update skipped")
                }
            }
            offset = update_id + 1;
            if let Err(error) = state.store.set_bot_value(OFFSET_KEY, offset).await {
                tracing::error!(%error, "polling: cannot store the offset");
            }
        }
    }
}

/// Processes one update; false when it must be fetched again.
async fn deliver(state: &AppState, update: Update) -> bool {
    match process(state, update).await {
        Handled::Done => true,
        Handled::Retry(_) => false,
        Handled::Answer(answer) => {
            // Without a webhook response to carry it, the answer is a Bot API call.
            if let Err(error) = state.bot.answer_pre_checkout_query(&answer).await {
                tracing::error!(%error, "polling: answerPreCheckoutQuery failed");
            }
            true
        }
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}
