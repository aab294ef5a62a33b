//! Orders: what a buyer is about to pay for, the limits on creating them, the purchase history.

use std::time::Duration;

use sqlx::AnyConnection;

use super::buyers::write_profiles;
use super::{Engine, Store, StoreError, StoreResult};
use crate::clock::now_ms;
use crate::wallet::amounts::{Ndn, Stars};
use crate::wallet::checkout::{Order, OrderState, Package};
use crate::wallet::ids::{OrderId, UserId};
use crate::wallet::model::Buyer;

/// How many orders a buyer may create: per minute, and unpaid at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimits {
    pub per_minute: i64,
    pub open: i64,
}

/// Whether an order was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Created,
    /// Over a limit: nothing was written; a place frees up in about this long.
    Refused {
        retry_after_ms: i64,
    },
}

/// The buyer's recent orders, as far as the limits are concerned.
#[derive(sqlx::FromRow)]
struct OrderUsage {
    /// Orders created in the last minute, and when the oldest of them was created.
    last_minute: i64,
    oldest_in_minute: Option<i64>,
    /// Unpaid, unexpired orders, and when the first of them expires.
    open: i64,
    first_expiry: Option<i64>,
}

const MINUTE_MS: i64 = 60_000;

impl OrderUsage {
    fn refusal(&self, limits: OrderLimits, now: i64) -> Option<i64> {
        let wait_until = if self.last_minute >= limits.per_minute {
            self.oldest_in_minute.map(|at| at + MINUTE_MS)
        } else if self.open >= limits.open {
            self.first_expiry
        } else {
            return None;
        };
        Some(wait_until.map_or(MINUTE_MS, |at| (at - now).max(0)))
    }
}

/// Counts the buyer's orders of the last minute and the open ones, each over its own index
/// range (`orders_by_user`, and `orders_open`, which holds pending orders only).
async fn order_usage(
    conn: &mut AnyConnection,
    user_id: UserId,
    now: i64,
) -> StoreResult<OrderUsage> {
    let usage = sqlx::query_as(
        "SELECT
            (SELECT COUNT(*) FROM orders WHERE user_id = $1 AND created_at > $2) AS last_minute,
            (SELECT MIN(created_at) FROM orders WHERE user_id = $1 AND created_at > $2)
                AS oldest_in_minute,
            (SELECT COUNT(*) FROM orders
             WHERE user_id = $1 AND status = 'pending' AND expires_at > $3) AS open,
            (SELECT MIN(expires_at) FROM orders
             WHERE user_id = $1 AND status = 'pending' AND expires_at > $3) AS first_expiry",
    )
    .bind(user_id)
    .bind(now - MINUTE_MS)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(usage)
}

impl Store {
    /// Creates a pending order of `package` for `user_id` if the buyer is within `limits`,
    /// checked and inserted in one write transaction that holds the buyer's row, so that the
    /// limits hold under concurrency and across instances. `profile`, when given, is written
    /// in the same transaction (a new buyer, or a changed name). A refusal writes nothing.
    pub async fn create_order(
        &self,
        id: &OrderId,
        user_id: UserId,
        package: &Package,
        ttl: Duration,
        limits: OrderLimits,
        profile: Option<&Buyer>,
    ) -> StoreResult<Admission> {
        let now = now_ms();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        // A read first: a buyer over the limit does not even take the write lock.
        let usage = order_usage(&mut *self.pool.acquire().await?, user_id, now).await?;
        if let Some(retry_after_ms) = usage.refusal(limits, now) {
            return Ok(Admission::Refused { retry_after_ms });
        }
        let mut tx = self.write().await?;
        match profile {
            Some(buyer) => {
                let mut buyer = buyer.clone();
                buyer.make_storable();
                write_profiles(&mut tx, self.engine, &[&buyer], now).await?;
            }
            None if self.engine == Engine::Postgres => {
                // SQLite's write transaction is exclusive already.
                sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        let usage = order_usage(&mut tx, user_id, now).await?;
        if let Some(retry_after_ms) = usage.refusal(limits, now) {
            tx.rollback().await?;
            return Ok(Admission::Refused { retry_after_ms });
        }
        sqlx::query(
            "INSERT INTO orders (id, user_id, package_id, ndn, stars, status, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
        )
        .bind(id)
        .bind(user_id)
        .bind(&package.id)
        .bind(package.ndn)
        .bind(package.stars)
        .bind(now)
        .bind(now.saturating_add(ttl_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Admission::Created)
    }

    pub async fn set_invoice_url(&self, order_id: &OrderId, url: &str) -> StoreResult<()> {
        sqlx::query("UPDATE orders SET invoice_url = $2 WHERE id = $1")
            .bind(order_id)
            .bind(url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An order whose invoice could not be created can never be paid.
    pub async fn fail_order(&self, order_id: &OrderId) -> StoreResult<()> {
        sqlx::query("UPDATE orders SET status = 'failed' WHERE id = $1 AND status = 'pending'")
            .bind(order_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        if id.as_str().contains('\0') {
            // Not one of ours (and not a value PostgreSQL's text can hold).
            return Ok(None);
        }
        let row = sqlx::query_as::<_, OrderRow>(ORDER_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(OrderRow::into_order).transpose()
    }
}

macro_rules! order_select {
    () => {
        "SELECT id, user_id, package_id, ndn, stars, status, created_at, expires_at FROM orders"
    };
}
/// The columns an [`Order`] is read from, before a `WHERE`.
pub(crate) const ORDER_SELECT: &str = order_select!();
const ORDER_BY_ID: &str = concat!(order_select!(), " WHERE id = $1");

/// An order's row as stored (its status as text).
#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    id: OrderId,
    user_id: UserId,
    package_id: String,
    ndn: Ndn,
    stars: Stars,
    status: String,
    created_at: i64,
    expires_at: i64,
}

impl OrderRow {
    pub(crate) fn into_order(self) -> StoreResult<Order> {
        Ok(Order {
            status: OrderState::parse(&self.status).ok_or(StoreError::Corrupt(format!(
                "order status `{}`",
                self.status
            )))?,
            id: self.id,
            user_id: self.user_id,
            package_id: self.package_id,
            ndn: self.ndn,
            stars: self.stars,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}
