//! The outbox: the bot's messages, queued in the transaction whose outcome they announce and
//! sent later by the notification worker, which leases what it claims.

use std::time::Duration;

use sqlx::{Any, Row, Transaction};

use super::{Engine, Store, StoreResult, json_rows, to_json};
use crate::clock::now_ms;
use crate::wallet::model::OutgoingMessage;

#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub id: i64,
    pub chat_id: i64,
    pub text: String,
    pub reply_markup: Option<String>,
    pub attempts: i64,
}

impl Store {
    /// Queues a message unless one with the same key was queued before (at-least-once updates
    /// become exactly-once replies). Returns whether it was new.
    pub async fn enqueue(&self, message: &OutgoingMessage) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let new = enqueue(&mut tx, self.engine, message, now_ms()).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Leases up to `limit` due messages for `lease`; an instance that dies loses its lease and
    /// another sends them.
    pub async fn claim_messages(
        &self,
        limit: i64,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedMessage>> {
        let now = now_ms();
        let lock = match self.engine {
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE status = 'pending' AND next_attempt_at <= $2 AND locked_until <= $2
                          ORDER BY id LIMIT $3 {lock})
             RETURNING id, chat_id, text, reply_markup, attempts"
        );
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.write().await?;
        let rows = sqlx::query(&sql)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(ClaimedMessage {
                    id: row.try_get("id")?,
                    chat_id: row.try_get("chat_id")?,
                    text: row.try_get("text")?,
                    reply_markup: row.try_get("reply_markup")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|message| message.id);
        Ok(claimed)
    }

    /// Records messages as delivered, all in one statement.
    pub async fn messages_sent(&self, ids: &[i64]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        sqlx::query(&format!(
            "UPDATE outbox SET status = 'sent', sent_at = $1, locked_until = 0 WHERE id IN ({list})"
        ))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn message_retry(&self, id: i64, after: Duration, error: &str) -> StoreResult<()> {
        let at = now_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2, locked_until = 0, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn message_failed(&self, id: i64, error: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'failed', locked_until = 0, last_error = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Messages waiting to be sent (for metrics and tests).
    pub async fn pending_messages(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

pub(super) async fn enqueue(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    message: &OutgoingMessage,
    now: i64,
) -> StoreResult<bool> {
    Ok(enqueue_all(tx, engine, std::slice::from_ref(message), now).await? > 0)
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
    let query = sqlx::query(&sql).bind(to_json(&rows)?);
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
