//! The notifier's queue: the outbox rows it claims (leased, so that an instance that dies loses
//! them to another), renews, gives back and marks sent, retried or failed, and the bot's send
//! slots and `429` pauses shared by every instance through `bot_state`.

use std::time::Duration;

use sqlx::{AnyPool, AssertSqlSafe};

use crate::clock::{micros, millis, now_micros, now_ms};
use crate::store::{Engine, Store, StoreResult, in_json_ids, to_json, write_transaction};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedMessage {
    pub id: i64,
    pub chat_id: i64,
    pub text: String,
    pub reply_markup: Option<String>,
    pub attempts: i64,
    /// The lease this claim set (`locked_until`): the message is still this worker's while
    /// its row carries it.
    #[sqlx(rename = "locked_until")]
    pub leased_until: i64,
}

/// The transaction-scoped advisory lock under which claims take turns on PostgreSQL.
const CLAIM_LOCK: i64 = 0x004e_444e_5f6f_7574;
/// The `bot_state` key of the next free send slot (microseconds since the epoch).
const SLOT_KEY: &str = "send_slot_us";
/// Until when a `429` stops every instance's sending (microseconds since the epoch).
const PAUSE_KEY: &str = "send_paused_us";

/// The outbox as the notifier sees it.
#[derive(Clone)]
pub struct Queue {
    pool: AnyPool,
    engine: Engine,
}

impl Queue {
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
            engine: store.engine(),
        }
    }

    /// Leases up to `limit` due messages for `lease`; an instance that dies loses its lease and
    /// another sends them. Only the head of each chat is handed out — its oldest waiting
    /// message, when no worker holds it and it waits for no retry — and only `chat_gap` after
    /// the chat's last delivery: each chat gets its messages in order and at most one a gap,
    /// across instances. On PostgreSQL the claims of all instances take turns (a transaction's
    /// advisory lock) so that two cannot both take a chat's head.
    pub async fn claim(
        &self,
        limit: i64,
        lease: Duration,
        chat_gap: Duration,
    ) -> StoreResult<Vec<ClaimedMessage>> {
        let now = now_ms();
        // The heads: a walk over the waiting messages' (chat, id) index, one step per chat
        // (the first entry after the previous chat is the next chat's oldest), so a claim costs
        // the number of chats waiting, whatever their backlog. A GROUP BY over that index
        // would read every waiting message: tens of milliseconds a claim during a sale.
        let walk = match self.engine {
            Engine::Postgres => {
                "WITH RECURSIVE heads(chat_id, id) AS (
                     (SELECT chat_id, id FROM outbox WHERE status = 'pending'
                      ORDER BY chat_id, id LIMIT 1)
                     UNION ALL
                     SELECT n.chat_id, n.id FROM heads h CROSS JOIN LATERAL
                         (SELECT w.chat_id, w.id FROM outbox w
                          WHERE w.status = 'pending' AND w.chat_id > h.chat_id
                          ORDER BY w.chat_id, w.id LIMIT 1) n
                 )
                 SELECT o.id FROM heads h JOIN outbox o ON o.id = h.id"
            }
            // No LATERAL: the chats first, then each one's oldest; the index is named, or
            // the planner may prefer another one that finds the status but not the chat.
            Engine::Sqlite => {
                "WITH RECURSIVE chats(chat_id) AS (
                     SELECT MIN(chat_id) FROM outbox INDEXED BY outbox_waiting_by_chat
                     WHERE status = 'pending'
                     UNION ALL
                     SELECT (SELECT MIN(w.chat_id) FROM outbox w INDEXED BY outbox_waiting_by_chat
                             WHERE w.status = 'pending' AND w.chat_id > c.chat_id)
                     FROM chats c WHERE c.chat_id IS NOT NULL
                 )
                 SELECT o.id FROM chats c JOIN outbox o
                     ON o.id = (SELECT MIN(w.id) FROM outbox w INDEXED BY outbox_waiting_by_chat
                                WHERE w.status = 'pending' AND w.chat_id = c.chat_id)"
            }
        };
        let heads = format!(
            "{walk}
             WHERE o.next_attempt_at <= $1 AND o.locked_until <= $1
               AND NOT EXISTS (SELECT 1 FROM outbox s
                               WHERE s.status = 'sent' AND s.chat_id = o.chat_id
                                 AND s.sent_at > $2)
             ORDER BY o.id LIMIT $3"
        );
        let claim = format!(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1
             WHERE status = 'pending' AND next_attempt_at <= $2 AND locked_until <= $2 AND {}
             RETURNING id, chat_id, text, reply_markup, attempts, locked_until",
            in_json_ids(self.engine, "id", 3)
        );
        let find = || {
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(heads))
                .bind(now)
                .bind(now.saturating_sub(millis(chat_gap)))
                .bind(limit)
        };
        let (ids, mut tx) = match self.engine {
            // One instance: the heads are read without holding SQLite's single writer.
            Engine::Sqlite => {
                let ids = find().fetch_all(&self.pool).await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                (ids, write_transaction(&self.pool, self.engine).await?)
            }
            Engine::Postgres => {
                let mut tx = write_transaction(&self.pool, self.engine).await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(CLAIM_LOCK)
                    .execute(&mut *tx)
                    .await?;
                (find().fetch_all(&mut *tx).await?, tx)
            }
        };
        let mut claimed: Vec<ClaimedMessage> = sqlx::query_as(AssertSqlSafe(claim))
            .bind(now.saturating_add(millis(lease)))
            .bind(now)
            .bind(to_json(&ids)?)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        claimed.sort_by_key(|message| message.id);
        Ok(claimed)
    }

    /// Extends the lease of messages this worker still holds, given as `(id, leased_until)`:
    /// a row is still this worker's while it carries the lease this worker set. Returns the
    /// messages renewed with their new lease; the others were lost to another worker after
    /// their lease ran out.
    pub async fn renew(
        &self,
        held: &[(i64, i64)],
        lease: Duration,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let until = now_ms().saturating_add(millis(lease));
        let sql = format!(
            "UPDATE outbox SET locked_until = $1
             WHERE status = 'pending' AND locked_until = $2 AND {} RETURNING id",
            in_json_ids(self.engine, "id", 3)
        );
        let mut renewed = Vec::new();
        for (leased_until, ids) in by_lease(held) {
            let ids: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
                .bind(until)
                .bind(leased_until)
                .bind(to_json(&ids)?)
                .fetch_all(&self.pool)
                .await?;
            renewed.extend(ids.into_iter().map(|id| (id, until)));
        }
        Ok(renewed)
    }

    /// Gives messages back unsent, given as `(id, leased_until)`: their lease ends now and
    /// their claim does not count as an attempt (e.g. the rest of a chat whose message waits
    /// for a retry, or what a stopping worker still held).
    pub async fn release(&self, held: &[(i64, i64)]) -> StoreResult<()> {
        let sql = format!(
            "UPDATE outbox SET locked_until = 0, attempts = attempts - 1
             WHERE status = 'pending' AND locked_until = $1 AND {}",
            in_json_ids(self.engine, "id", 2)
        );
        for (leased_until, ids) in by_lease(held) {
            sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(leased_until)
                .bind(to_json(&ids)?)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The next of the bot's send slots, shared by every instance: slots are `interval`
    /// apart, never in the past, and never before a pause asked for by Telegram (a `429`).
    /// The slot is at least `lead` from now. Returns its time in microseconds since the epoch.
    pub async fn next_send_slot(&self, interval: Duration, lead: Duration) -> StoreResult<i64> {
        let step = micros(interval);
        let sql = format!(
            "INSERT INTO bot_state (key, value) VALUES ('{SLOT_KEY}', $1 + $2)
             ON CONFLICT (key) DO UPDATE SET value = {}(bot_state.value, $1) + $2
             RETURNING value",
            self.greatest()
        );
        let slot: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(now_micros() + micros(lead))
            .bind(step)
            .fetch_one(&self.pool)
            .await?;
        Ok(slot - step)
    }

    /// No send slot before `until` (microseconds since the epoch), for every instance.
    pub async fn pause_sending(&self, until: i64) -> StoreResult<()> {
        self.raise_bot_state(SLOT_KEY, until).await
    }

    /// A `429`'s pause, for every instance: no slot is handed out before `until`, and a slot
    /// taken before the pause does not send ([`Self::sending_paused_until`]).
    pub async fn pause_all_sending(&self, until: i64) -> StoreResult<()> {
        self.pause_sending(until).await?;
        self.raise_bot_state(PAUSE_KEY, until).await
    }

    /// `bot_state`'s `key` becomes at least `value`.
    async fn raise_bot_state(&self, key: &str, value: i64) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO bot_state (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = {}(bot_state.value, $2)",
            self.greatest()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The end of the last `429`'s pause (0 if there was none).
    pub async fn sending_paused_until(&self) -> StoreResult<i64> {
        let value: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT value FROM bot_state WHERE key = '{PAUSE_KEY}'"
        )))
        .fetch_optional(&self.pool)
        .await?;
        Ok(value.unwrap_or(0))
    }

    fn greatest(&self) -> &'static str {
        match self.engine {
            Engine::Postgres => "GREATEST",
            Engine::Sqlite => "MAX",
        }
    }

    /// Records messages as delivered, all in one statement.
    pub async fn sent(&self, ids: &[i64]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'sent', sent_at = $1, locked_until = 0 WHERE id IN ({list})"
        )))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn retry(&self, id: i64, after: Duration, error: &str) -> StoreResult<()> {
        let at = now_ms().saturating_add(millis(after));
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

    pub async fn failed(&self, id: i64, error: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'failed', locked_until = 0, last_error = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Seconds since the oldest message still waiting was queued (0 when none waits).
    pub async fn oldest_pending_age(&self) -> StoreResult<i64> {
        let created: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(created.map_or(0, |at| (now_ms() - at).max(0) / 1000))
    }

    /// Messages waiting to be sent (for metrics and tests).
    pub async fn pending(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Held messages grouped by their lease (those of one claim share it).
fn by_lease(held: &[(i64, i64)]) -> std::collections::BTreeMap<i64, Vec<i64>> {
    let mut groups = std::collections::BTreeMap::<i64, Vec<i64>>::new();
    for &(id, leased_until) in held {
        groups.entry(leased_until).or_default().push(id);
    }
    groups
}
