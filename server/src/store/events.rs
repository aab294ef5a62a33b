//! Signed events written with their change, in its transaction (the transactional outbox): the
//! delivery worker reads them from there (`outgoing::tables`).

use sqlx::{Any, AssertSqlSafe, Transaction};

use super::{Engine, StoreResult, json_rows, to_json};
use crate::wallet::ids::UserId;

/// An event as stored: its id, type, buyer, signed body and time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    pub id: String,
    pub kind: &'static str,
    pub user_id: UserId,
    pub body: String,
    pub created_at: i64,
}

/// Writes `events` in the change's transaction (one statement, whatever their number). The
/// endpoints' positions find them there: nothing is written per endpoint.
pub(super) async fn record(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    events: &[EventRow],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    // xid takes its default: the writing transaction's id in PostgreSQL, 0 in SQLite.
    let sql = format!(
        "INSERT INTO events (id, type, user_id, body, created_at)
         SELECT id, kind, user_id, body, created_at FROM {}",
        json_rows(
            engine,
            1,
            &[
                ("id", "text"),
                ("kind", "text"),
                ("user_id", "bigint"),
                ("body", "text"),
                ("created_at", "bigint"),
            ]
        )
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(to_json(&events)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
