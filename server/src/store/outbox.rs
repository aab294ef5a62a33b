//! The outbox: the bot's messages, queued in the transaction whose outcome they announce (or
//! on their own, for a command's reply). The notifier sends them (`notifier::queue`).

use sqlx::{Any, AssertSqlSafe, Transaction};

use super::{Engine, Store, StoreResult, json_rows, to_json};
use crate::clock::now_ms;
use crate::wallet::model::OutgoingMessage;

impl Store {
    /// Queues a message unless one with the same key was queued before (at-least-once updates
    /// become exactly-once replies). Returns whether it was new.
    pub async fn enqueue(&self, message: &OutgoingMessage) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let new = enqueue_all(
            &mut tx,
            self.engine,
            std::slice::from_ref(message),
            now_ms(),
        )
        .await?
            > 0;
        tx.commit().await?;
        Ok(new)
    }
}

/// Queues messages (one statement for all); a dedupe key queued before is skipped. Returns
/// how many were new.
pub(super) async fn enqueue_all(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    messages: &[OutgoingMessage],
    now: i64,
) -> StoreResult<u64> {
    if messages.is_empty() {
        return Ok(0);
    }
    let rows: Vec<OutboxRow> = messages
        .iter()
        .map(|message| OutboxRow {
            dedupe_key: &message.dedupe_key,
            chat_id: message.chat_id,
            text: &message.text,
            reply_markup: message.reply_markup.as_deref(),
            at: now,
        })
        .collect();
    let sql = format!(
        "INSERT INTO outbox (dedupe_key, chat_id, text, reply_markup, status, next_attempt_at, created_at)
         SELECT dedupe_key, chat_id, text, reply_markup, 'pending', at, at FROM {} WHERE true
         ON CONFLICT (dedupe_key) DO NOTHING",
        json_rows(
            engine,
            1,
            &[
                ("dedupe_key", "text"),
                ("chat_id", "bigint"),
                ("text", "text"),
                ("reply_markup", "text"),
                ("at", "bigint"),
            ]
        )
    );
    let query = sqlx::query(AssertSqlSafe(sql)).bind(to_json(&rows)?);
    Ok(query.execute(&mut **tx).await?.rows_affected())
}

#[derive(serde::Serialize)]
struct OutboxRow<'a> {
    dedupe_key: &'a str,
    chat_id: i64,
    text: &'a str,
    reply_markup: Option<&'a str>,
    at: i64,
}
