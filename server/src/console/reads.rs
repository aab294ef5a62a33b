//! What the operator console reads: figures by period and day, held payments, a buyer's
//! payments, failed messages and the audit log, as the console's wire types.

use app::console::{ActionLine, FailedMessage, Figures, HeldPayment, PaymentLine};
use sqlx::{AnyPool, Row};

use crate::store::{Store, StoreResult, credit_for};

/// The console's reads, over the store's pool.
pub struct ConsoleReads {
    pool: AnyPool,
}

impl ConsoleReads {
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
        }
    }

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
    /// (see [`crate::ledger::Ledger::credit_held`]; `prices`: Stars → NDN).
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
