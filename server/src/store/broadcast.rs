//! Balance changes told to other processes when (and only if) their transaction commits: on
//! PostgreSQL a `NOTIFY` that every instance's listener hears; on SQLite, where one server
//! publishes its own changes, a relay table that carries the changes a command-line run made.

use app::api::BalanceEvent;
use sqlx::{Any, AnyConnection, Transaction};

use super::{Engine, StoreError, StoreResult, json_rows, to_json};
use crate::clock::now_ms;

/// The PostgreSQL channel of balance events between instances.
pub const BALANCE_CHANNEL: &str = "ndn_balance";

/// A balance change as it crosses instances: each `NOTIFY` on [`BALANCE_CHANNEL`] carries a
/// JSON array of these.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BalanceBroadcast {
    pub user_id: i64,
    pub event: BalanceEvent,
}

/// Who serves the live streams of the balances a process changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamServer {
    /// This process does (the server): on SQLite it publishes right after the commit.
    ThisProcess,
    /// A server elsewhere does (a command-line run): on SQLite the changes go through the
    /// relay table, which the server reads.
    OtherProcesses,
}

/// Tells the other processes about `changes`, inside the transaction that made them.
pub(super) async fn balances_changed(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    reach: StreamServer,
    changes: &[BalanceBroadcast],
) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    match (engine, reach) {
        (Engine::Postgres, _) => notify_balances(tx, changes).await,
        (Engine::Sqlite, StreamServer::ThisProcess) => Ok(()),
        (Engine::Sqlite, StreamServer::OtherProcesses) => {
            let rows: Vec<RelayRow> = changes
                .iter()
                .map(|change| {
                    Ok(RelayRow {
                        user_id: change.user_id,
                        event: serde_json::to_string(&change.event).map_err(|error| {
                            StoreError::Corrupt(format!("balance event: {error}"))
                        })?,
                        created_at: now_ms(),
                    })
                })
                .collect::<StoreResult<_>>()?;
            let sql = format!(
                "INSERT INTO live_relay (user_id, event, created_at)
                 SELECT user_id, event, created_at FROM {}",
                json_rows(
                    engine,
                    1,
                    &[
                        ("user_id", "bigint"),
                        ("event", "text"),
                        ("created_at", "bigint")
                    ]
                )
            );
            sqlx::query(&sql)
                .bind(to_json(&rows)?)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    }
}

#[derive(serde::Serialize)]
struct RelayRow {
    user_id: i64,
    event: String,
    created_at: i64,
}

/// PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more.
const NOTIFY_PAYLOAD_LIMIT: usize = 7_900;

/// `NOTIFY`s carrying `changes`, as few as the payload limit allows. Inside a transaction they
/// are delivered when it commits, and not at all if it does not.
async fn notify_balances(
    conn: &mut AnyConnection,
    changes: &[BalanceBroadcast],
) -> StoreResult<()> {
    for payload in balance_payloads(changes)? {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(BALANCE_CHANNEL)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `changes` as JSON arrays, each under [`NOTIFY_PAYLOAD_LIMIT`] bytes.
fn balance_payloads(changes: &[BalanceBroadcast]) -> StoreResult<Vec<String>> {
    let mut payloads = Vec::new();
    let mut payload = String::new();
    for change in changes {
        let item = serde_json::to_string(change)
            .map_err(|error| StoreError::Corrupt(format!("balance event: {error}")))?;
        if !payload.is_empty() && payload.len() + item.len() + 2 > NOTIFY_PAYLOAD_LIMIT {
            payload.push(']');
            payloads.push(std::mem::take(&mut payload));
        }
        payload.push(if payload.is_empty() { '[' } else { ',' });
        payload.push_str(&item);
    }
    if !payload.is_empty() {
        payload.push(']');
        payloads.push(payload);
    }
    Ok(payloads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::OrderState;

    fn change(user_id: i64, balance: i64) -> BalanceBroadcast {
        BalanceBroadcast {
            user_id,
            event: BalanceEvent {
                balance,
                order_id: Some(format!("order-{user_id}-{balance}")),
                status: Some(OrderState::Paid),
            },
        }
    }

    #[test]
    fn balance_events_split_into_notifications_under_the_limit_and_keep_every_change() {
        assert!(balance_payloads(&[]).unwrap().is_empty());
        let changes: Vec<BalanceBroadcast> = (0..500).map(|i| change(1_000 + i, i * 100)).collect();
        let payloads = balance_payloads(&changes).unwrap();
        assert!(payloads.len() > 1, "500 changes fit no single notification");
        let mut decoded = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8_000, "{} bytes", payload.len());
            decoded.extend(serde_json::from_str::<Vec<BalanceBroadcast>>(payload).unwrap());
        }
        assert_eq!(decoded, changes);
    }
}
