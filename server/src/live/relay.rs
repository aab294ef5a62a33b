//! On SQLite, balance changes a command-line run made reach the server's streams through a
//! relay table (`store::broadcast` writes it in the change's transaction); the server reads it.

use sqlx::AnyPool;

use super::BalanceBroadcast;
use crate::clock::now_ms;
use crate::store::{Store, StoreError, StoreResult};
use crate::wallet::ids::UserId;

/// A balance change another process relayed through SQLite.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayedEvent {
    pub id: i64,
    pub change: BalanceBroadcast,
}

/// How long relayed changes are kept: long enough for the server to read them.
const RELAY_KEPT_MS: i64 = 60_000;

/// The relay table, read by the server that serves the streams.
pub struct Relay {
    pool: AnyPool,
}

impl Relay {
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
        }
    }

    /// The newest relayed change's id (0 when none): a server starts relaying after it.
    pub async fn position(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM live_relay")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Changes relayed after `after` (SQLite only), oldest first; older ones are forgotten.
    pub async fn after(&self, after: i64) -> StoreResult<Vec<RelayedEvent>> {
        let rows: Vec<(i64, UserId, String)> = sqlx::query_as(
            "SELECT id, user_id, event FROM live_relay WHERE id > $1 ORDER BY id LIMIT 500",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for (id, user_id, event) in rows {
            events.push(RelayedEvent {
                id,
                change: BalanceBroadcast {
                    user_id,
                    event: serde_json::from_str(&event).map_err(|error| {
                        StoreError::Corrupt(format!("relayed balance event: {error}"))
                    })?,
                },
            });
        }
        if !events.is_empty() {
            sqlx::query("DELETE FROM live_relay WHERE created_at < $1")
                .bind(now_ms() - RELAY_KEPT_MS)
                .execute(&self.pool)
                .await?;
        }
        Ok(events)
    }
}
