//! What the operator console reads: figures by period and day, held payments, a buyer's
//! payments, failed messages and the audit log, as the console's wire types.

use app::console::{ActionLine, FailedMessage, Figures, HeldPayment, PaymentLine};
use sqlx::AnyPool;

use crate::store::{Store, StoreResult};
use crate::wallet::amounts::{Ndn, Stars};
use crate::wallet::ids::UserId;
use crate::wallet::payments::credit_for;

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
        let row: Option<ActionRow> = sqlx::query_as(
            "SELECT id, operator_id, action, target, result, created_at FROM operator_actions
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(action_line))
    }

    /// The latest operator actions, newest first.
    pub async fn actions(&self, limit: i64) -> StoreResult<Vec<ActionLine>> {
        let rows: Vec<ActionRow> = sqlx::query_as(
            "SELECT id, operator_id, action, target, result, created_at FROM operator_actions
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(action_line).collect())
    }

    /// Purchases, refunds, spends and grants written since `since` (Unix ms).
    pub async fn figures_since(&self, since: i64) -> StoreResult<Figures> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT kind, COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT),
                    CAST(COALESCE(SUM(stars), 0) AS BIGINT)
             FROM transfers WHERE created_at >= $1 GROUP BY kind",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut figures = Figures::default();
        for (kind, count, ndn, stars) in rows {
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
        Ok(sqlx::query_as(
            "SELECT (created_at - $1) / 86400000 AS day, CAST(COALESCE(SUM(stars), 0) AS BIGINT),
                    COUNT(*)
             FROM transfers WHERE kind = 'purchase' AND created_at >= $1
             GROUP BY (created_at - $1) / 86400000",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Payments waiting for the operator, newest first, with what Credit would give them
    /// (see [`crate::ledger::Ledger::credit_held`]; `prices`: Stars → NDN).
    pub async fn held_payments(
        &self,
        prices: &[(i64, i64)],
        limit: i64,
    ) -> StoreResult<Vec<HeldPayment>> {
        let rows: Vec<HeldRow> = sqlx::query_as(
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
        Ok(rows
            .into_iter()
            .map(
                |(
                    charge_id,
                    user_id,
                    first_name,
                    username,
                    stars,
                    reason,
                    created_at,
                    order_ndn,
                )| {
                    HeldPayment {
                        charge_id,
                        user_id,
                        first_name,
                        username,
                        stars: stars.get(),
                        reason,
                        created_at: created_at / 1000,
                        ndn: credit_for(order_ndn, stars, prices).map(Ndn::get),
                    }
                },
            )
            .collect())
    }

    /// How many payments are held.
    pub async fn held_count(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE status = 'held'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The buyer a console search names: a Telegram user id, an @username (any case) or a
    /// charge id.
    pub async fn find_buyer(&self, query: &str) -> StoreResult<Option<UserId>> {
        let query = query.trim();
        if let Ok(id) = query.parse::<i64>() {
            let known: Option<UserId> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            if known.is_some() {
                return Ok(known);
            }
        }
        let name = query.strip_prefix('@').unwrap_or(query);
        if !name.is_empty() {
            let found: Option<UserId> = sqlx::query_scalar(
                "SELECT id FROM users WHERE LOWER(username) = LOWER($1) LIMIT 1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(
            sqlx::query_scalar("SELECT user_id FROM payments WHERE charge_id = $1")
                .bind(query)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A buyer's payments, newest first.
    pub async fn payments_of(&self, user_id: UserId, limit: i64) -> StoreResult<Vec<PaymentLine>> {
        let rows: Vec<(String, i64, i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT charge_id, stars, ndn, status, hold_reason, created_at FROM payments
             WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(charge_id, stars, ndn, status, reason, created_at)| PaymentLine {
                    charge_id,
                    stars,
                    ndn,
                    status,
                    reason,
                    created_at: created_at / 1000,
                },
            )
            .collect())
    }

    /// Messages waiting to be sent, and messages given up on.
    pub async fn message_counts(&self) -> StoreResult<(i64, i64)> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM outbox WHERE status IN ('pending', 'failed')
             GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = (0, 0);
        for (status, count) in rows {
            match status.as_str() {
                "pending" => counts.0 = count,
                _ => counts.1 = count,
            }
        }
        Ok(counts)
    }

    /// Messages given up on, newest first.
    pub async fn failed_messages(&self, limit: i64) -> StoreResult<Vec<FailedMessage>> {
        let rows: Vec<(i64, i64, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, chat_id, text, attempts, last_error, created_at FROM outbox
             WHERE status = 'failed' ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, chat_id, text, attempts, error, created_at)| FailedMessage {
                    id,
                    chat_id,
                    text: text.chars().take(120).collect(),
                    attempts,
                    error,
                    created_at: created_at / 1000,
                },
            )
            .collect())
    }
}

/// An audit row as read: id, operator, action, target, result, when (Unix ms).
type ActionRow = (String, i64, String, String, String, i64);

/// A held payment as read: charge, buyer, first name, username, Stars, reason, when (Unix
/// ms), its order's NDN.
type HeldRow = (
    String,
    UserId,
    String,
    Option<String>,
    Stars,
    String,
    i64,
    Option<Ndn>,
);

fn action_line((id, operator_id, action, target, result, created_at): ActionRow) -> ActionLine {
    ActionLine {
        id,
        operator_id,
        action,
        target,
        result,
        created_at: created_at / 1000,
    }
}
