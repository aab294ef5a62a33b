//! Balance changes told to other processes when (and only if) their transaction commits: on
//! PostgreSQL a `NOTIFY` that every instance's listener hears; on SQLite, where one server
//! publishes its own changes, a relay table that carries the changes a command-line run made.

use sqlx::{Any, AnyConnection, AssertSqlSafe, Transaction};

use super::{Engine, StoreResult, json_rows, to_json};
use crate::clock::now_ms;
use crate::wallet::ids::UserId;

/// The PostgreSQL channel of balance events between instances.
pub const BALANCE_CHANNEL: &str = "ndn_balance";

/// A buyer's balance changed: the live event (JSON) their streams are sent. Each `NOTIFY` on
/// [`BALANCE_CHANNEL`] carries a JSON array of `{"user_id": …, "event": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceNote {
    pub user_id: UserId,
    /// The event as JSON (an object).
    pub event: String,
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
    changes: &[BalanceNote],
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
                .map(|change| RelayRow {
                    user_id: change.user_id,
                    event: &change.event,
                    created_at: now_ms(),
                })
                .collect();
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
            sqlx::query(AssertSqlSafe(sql))
                .bind(to_json(&rows)?)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    }
}

#[derive(serde::Serialize)]
struct RelayRow<'a> {
    user_id: UserId,
    event: &'a str,
    created_at: i64,
}

/// PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more.
const NOTIFY_PAYLOAD_LIMIT: usize = 7_900;

/// `NOTIFY`s carrying `changes`, as few as the payload limit allows. Inside a transaction they
/// are delivered when it commits, and not at all if it does not.
async fn notify_balances(conn: &mut AnyConnection, changes: &[BalanceNote]) -> StoreResult<()> {
    for payload in balance_payloads(changes) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(BALANCE_CHANNEL)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `changes` as JSON arrays, each under [`NOTIFY_PAYLOAD_LIMIT`] bytes.
fn balance_payloads(changes: &[BalanceNote]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut payload = String::new();
    for change in changes {
        // The event is JSON already: it goes in as it is.
        let item = format!(
            r#"{{"user_id":{},"event":{}}}"#,
            change.user_id, change.event
        );
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
    payloads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user_id: UserId, balance: i64) -> BalanceNote {
        BalanceNote {
            user_id,
            event: format!(
                r#"{{"balance":{balance},"order_id":"order-{user_id}-{balance}","status":"paid"}}"#
            ),
        }
    }

    #[test]
    fn balance_events_split_into_notifications_under_the_limit_and_keep_every_change() {
        assert!(balance_payloads(&[]).is_empty());
        let changes: Vec<BalanceNote> = (0..500)
            .map(|i| change(UserId(1_000 + i), i * 100))
            .collect();
        let payloads = balance_payloads(&changes);
        assert!(payloads.len() > 1, "500 changes fit no single notification");
        let mut decoded = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8_000, "{} bytes", payload.len());
            decoded.extend(serde_json::from_str::<Vec<serde_json::Value>>(payload).unwrap());
        }
        let expected: Vec<serde_json::Value> = changes
            .iter()
            .map(|change| {
                serde_json::json!({
                    "user_id": change.user_id,
                    "event": serde_json::from_str::<serde_json::Value>(&change.event).unwrap(),
                })
            })
            .collect();
        assert_eq!(decoded, expected);
    }
}
