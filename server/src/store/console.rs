//! What the operator console reads (figures by period and day, held payments, a buyer's
//! payments, failed messages, the audit log) and the actions it takes outside the books
//! (retrying a message, revoking a key), each written with its audit row in one transaction.

use app::console::{ActionLine, FailedMessage, Figures, HeldPayment, PaymentLine};
use sqlx::{Any, Row, Transaction};

use super::held::credit_for;
use super::{Store, StoreResult};

/// An operator action about to be taken: the audit row's columns but the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAction {
    /// Chosen by the tap that asked; the same id again changes nothing.
    pub id: String,
    pub operator_id: i64,
    /// `credit`, `refund`, `grant`, `retry`, `revoke`, `reconcile`.
    pub action: &'static str,
    /// The charge, buyer, message or key acted on.
    pub target: String,
}

/// What an action did: now, or (`Repeated`) under the same id before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    Done(String),
    Repeated(String),
}

/// Writes the audit row of `action` in `tx`; `false` when a row with its id exists already (a
/// concurrent tap with the same id: the caller answers with that row's result).
pub(super) async fn record_action(
    tx: &mut Transaction<'_, Any>,
    action: &NewAction,
    result: &str,
    now: i64,
) -> StoreResult<bool> {
    let written = sqlx::query(
        "INSERT INTO operator_actions (id, operator_id, action, target, result, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&action.id)
    .bind(action.operator_id)
    .bind(action.action)
    .bind(&action.target)
    .bind(result)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// The result recorded under an action id, read in `tx`.
pub(super) async fn earlier_result(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT result FROM operator_actions WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

fn action_line(row: &sqlx::any::AnyRow) -> StoreResult<ActionLine> {
    Ok(ActionLine {
        id: row.try_get(0)?,
        operator_id: row.try_get(1)?,
        action: row.try_get(2)?,
        target: row.try_get(3)?,
        result: row.try_get(4)?,
        created_at: row.try_get::<i64, _>(5)? / 1000,
    })
}

impl Store {
    /// The action recorded under `id`, if any.
    pub async fn action(&self, id: &str) -> StoreResult<Option<ActionLine>> {
        let row = sqlx::query(
            "SELECT id, operator_id, action, target, result, created_at FROM operator_actions
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(action_line).transpose()
    }

    /// The latest operator actions, newest first.
    pub async fn actions(&self, limit: i64) -> StoreResult<Vec<ActionLine>> {
        let rows = sqlx::query(
            "SELECT id, operator_id, action, target, result, created_at FROM operator_actions
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action_line).collect()
    }

    /// Records an action whose effects took transactions of their own (a reconciliation, a
    /// refund Telegram refused), once per id.
    pub async fn record_action(
        &self,
        action: &NewAction,
        result: &str,
        now: i64,
    ) -> StoreResult<Acted> {
        let mut tx = self.write().await?;
        if let Some(earlier) = earlier_result(&mut tx, &action.id).await? {
            return Ok(Acted::Repeated(earlier));
        }
        self.finish(tx, action, result.to_owned(), now).await
    }

    /// Writes the action's audit row and commits its effect with it, or, when a concurrent tap
    /// with the same id wrote it first, rolls the effect back and answers with that tap's result.
    pub(super) async fn finish(
        &self,
        mut tx: Transaction<'static, Any>,
        action: &NewAction,
        result: String,
        now: i64,
    ) -> StoreResult<Acted> {
        let written = record_action(&mut tx, action, &result, now).await?;
        if written {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        self.acted(action, written, result).await
    }

    /// The answer of an action that wrote its row (`written`), or of the tap that got there
    /// first.
    pub(super) async fn acted(
        &self,
        action: &NewAction,
        written: bool,
        result: String,
    ) -> StoreResult<Acted> {
        if written {
            return Ok(Acted::Done(result));
        }
        Ok(Acted::Repeated(
            self.action(&action.id)
                .await?
                .map_or(result, |earlier| earlier.result),
        ))
    }

    /// Purchases, refunds, spends and grants written since `since` (Unix ms).
    pub async fn figures_since(&self, since: i64) -> StoreResult<Figures> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT),
                    CAST(COALESCE(SUM(stars), 0) AS BIGINT)
             FROM transfers WHERE created_at >= $1 GROUP BY kind",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut figures = Figures::default();
        for row in rows {
            let kind: String = row.try_get(0)?;
            let (count, ndn, stars): (i64, i64, i64) =
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
            match kind.as_str() {
                "purchase" => {
                    figures.purchases = count;
                    figures.ndn_sold = ndn;
                    figures.stars = stars;
                }
                "refund" => {
                    figures.refunds = count;
                    figures.refunded_stars = stars;
                }
                "spend" => {
                    figures.spends = count;
                    figures.ndn_spent = ndn;
                }
                "grant" => {
                    figures.grants = count;
                    figures.ndn_granted = ndn;
                }
                _ => {}
            }
        }
        Ok(figures)
    }

    /// Purchases per day since `since` (Unix ms, a day's start): (day index from `since`,
    /// Stars, purchases).
    pub async fn daily_purchases(&self, since: i64) -> StoreResult<Vec<(i64, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT (created_at - $1) / 86400000 AS day, CAST(COALESCE(SUM(stars), 0) AS BIGINT),
                    COUNT(*)
             FROM transfers WHERE kind = 'purchase' AND created_at >= $1
             GROUP BY (created_at - $1) / 86400000",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }

    /// Payments waiting for the operator, newest first, with what Credit would give them
    /// (see [`Store::credit_held`]; `prices`: Stars → NDN).
    pub async fn held_payments(
        &self,
        prices: &[(i64, i64)],
        limit: i64,
    ) -> StoreResult<Vec<HeldPayment>> {
        let rows = sqlx::query(
            "SELECT p.charge_id, p.user_id, COALESCE(u.first_name, ''), u.username, p.stars,
                    COALESCE(p.hold_reason, ''), p.created_at, o.ndn
             FROM payments p
             LEFT JOIN users u ON u.id = p.user_id
             LEFT JOIN orders o ON o.id = p.order_id
             WHERE p.status = 'held'
             ORDER BY p.created_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let stars = row.try_get(4)?;
                Ok(HeldPayment {
                    charge_id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    first_name: row.try_get(2)?,
                    username: row.try_get(3)?,
                    stars,
                    reason: row.try_get(5)?,
                    created_at: row.try_get::<i64, _>(6)? / 1000,
                    ndn: credit_for(row.try_get(7)?, stars, prices),
                })
            })
            .collect()
    }

    /// How many payments are held.
    pub async fn held_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM payments WHERE status = 'held'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The buyer a console search names: a Telegram user id, an @username (any case) or a
    /// charge id.
    pub async fn find_buyer(&self, query: &str) -> StoreResult<Option<i64>> {
        let query = query.trim();
        if let Ok(id) = query.parse::<i64>() {
            let known = sqlx::query("SELECT id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            if known.is_some() {
                return Ok(Some(id));
            }
        }
        let name = query.strip_prefix('@').unwrap_or(query);
        if !name.is_empty() {
            let row = sqlx::query("SELECT id FROM users WHERE LOWER(username) = LOWER($1) LIMIT 1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                return Ok(Some(row.try_get(0)?));
            }
        }
        let row = sqlx::query("SELECT user_id FROM payments WHERE charge_id = $1")
            .bind(query)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    /// A buyer's payments, newest first.
    pub async fn payments_of(&self, user_id: i64, limit: i64) -> StoreResult<Vec<PaymentLine>> {
        let rows = sqlx::query(
            "SELECT charge_id, stars, ndn, status, hold_reason, created_at FROM payments
             WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PaymentLine {
                    charge_id: row.try_get(0)?,
                    stars: row.try_get(1)?,
                    ndn: row.try_get(2)?,
                    status: row.try_get(3)?,
                    reason: row.try_get(4)?,
                    created_at: row.try_get::<i64, _>(5)? / 1000,
                })
            })
            .collect()
    }

    /// Messages waiting to be sent, and messages given up on.
    pub async fn message_counts(&self) -> StoreResult<(i64, i64)> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM outbox WHERE status IN ('pending', 'failed')
             GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = (0, 0);
        for row in rows {
            let status: String = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            match status.as_str() {
                "pending" => counts.0 = count,
                _ => counts.1 = count,
            }
        }
        Ok(counts)
    }

    /// Messages given up on, newest first.
    pub async fn failed_messages(&self, limit: i64) -> StoreResult<Vec<FailedMessage>> {
        let rows = sqlx::query(
            "SELECT id, chat_id, text, attempts, last_error, created_at FROM outbox
             WHERE status = 'failed' ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get(2)?;
                Ok(FailedMessage {
                    id: row.try_get(0)?,
                    chat_id: row.try_get(1)?,
                    text: text.chars().take(120).collect(),
                    attempts: row.try_get(3)?,
                    error: row.try_get(4)?,
                    created_at: row.try_get::<i64, _>(5)? / 1000,
                })
            })
            .collect()
    }

    /// Puts a failed message back in the queue, due now, with its attempts counted afresh.
    pub async fn retry_message(&self, id: i64, action: &NewAction, now: i64) -> StoreResult<Acted> {
        let mut tx = self.write().await?;
        if let Some(earlier) = earlier_result(&mut tx, &action.id).await? {
            return Ok(Acted::Repeated(earlier));
        }
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2,
                 locked_until = 0
             WHERE id = $1 AND status = 'failed'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let result = if done.rows_affected() == 1 {
            format!("message {id} queued again")
        } else {
            format!("message {id} is not failed: nothing to retry")
        };
        self.finish(tx, action, result, now).await
    }

    /// Revokes an API key by id.
    pub async fn revoke_key(&self, id: i64, action: &NewAction, now: i64) -> StoreResult<Acted> {
        let mut tx = self.write().await?;
        if let Some(earlier) = earlier_result(&mut tx, &action.id).await? {
            return Ok(Acted::Repeated(earlier));
        }
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
             RETURNING name",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let result = match row {
            Some(row) => format!("key `{}` revoked", row.try_get::<String, _>(0)?),
            None => format!("key {id} is not active: nothing to revoke"),
        };
        self.finish(tx, action, result, now).await
    }
}
