//! Sends queued bot messages: retries with backoff, honours `retry_after`, survives restarts
//! (the queue is in the database) and marks each message sent once delivered.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::store::ClaimedMessage;

/// Messages claimed at once. Each batch costs two write transactions (claim, record the
/// deliveries), which share SQLite's single writer with the payments: larger batches leave
/// more of it to payments during a burst.
const BATCH: i64 = 128;
/// Due retries are picked up at least this often even without a wake-up.
const IDLE_POLL: Duration = Duration::from_millis(500);
const MAX_BACKOFF_SECS: u64 = 300;
/// After this many attempts (about a day with the backoff cap) a message is given up.
const MAX_ATTEMPTS: i64 = 300;

pub async fn run(state: AppState, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let batch = match state
            .store
            .claim_messages(BATCH, state.config.outbox_lease)
            .await
        {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox; retrying");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = state.outbox.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = shutdown.cancelled() => return,
            }
            continue;
        }
        // Chats in parallel, each chat's messages in order; the deliveries recorded in one
        // statement (on SQLite, one fsync instead of one per message).
        let mut chats: Vec<Vec<ClaimedMessage>> = Vec::new();
        for message in batch {
            match chats
                .iter_mut()
                .find(|chat| chat[0].chat_id == message.chat_id)
            {
                Some(chat) => chat.push(message),
                None => chats.push(vec![message]),
            }
        }
        let sent = futures::future::join_all(chats.into_iter().map(|chat| async {
            let mut sent = Vec::new();
            for message in chat {
                if let Some(id) = deliver(&state, message).await {
                    sent.push(id);
                }
            }
            sent
        }))
        .await;
        let sent: Vec<i64> = sent.into_iter().flatten().collect();
        if let Err(error) = state.store.messages_sent(&sent).await {
            // The leases expire and the messages are tried again: at least once, never lost.
            tracing::error!(%error, count = sent.len(), "cannot record deliveries");
        }
    }
}

/// Sends one message; its id when Telegram accepted it. Failures are recorded here.
async fn deliver(state: &AppState, message: ClaimedMessage) -> Option<i64> {
    let markup = message
        .reply_markup
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    let result = state
        .bot
        .send_message(message.chat_id, &message.text, markup.as_ref())
        .await;
    if result.is_ok() {
        state.metrics.notifications_sent.inc();
    } else {
        state.metrics.notifications_failed.inc();
    }
    let recorded = match result {
        Ok(_) => return Some(message.id),
        Err(error) if error.is_transient() && message.attempts < MAX_ATTEMPTS => {
            let wait = error
                .retry_after()
                .unwrap_or_else(|| backoff_secs(message.attempts));
            tracing::warn!(message_id = message.id, %error, wait, "sendMessage failed; will retry");
            state
                .store
                .message_retry(message.id, Duration::from_secs(wait), error.description())
                .await
        }
        Err(error) => {
            tracing::error!(message_id = message.id, %error, "sendMessage failed for good");
            state
                .store
                .message_failed(message.id, error.description())
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(message_id = message.id, %error, "cannot record the failed delivery");
    }
    None
}

fn backoff_secs(attempts: i64) -> u64 {
    let exponent = u32::try_from(attempts.clamp(1, 9) - 1).unwrap_or(0);
    2u64.pow(exponent).min(MAX_BACKOFF_SECS)
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_secs(1), 1);
        assert_eq!(backoff_secs(2), 2);
        assert_eq!(backoff_secs(5), 16);
        assert_eq!(backoff_secs(100), 256);
    }
}
