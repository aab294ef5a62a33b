//! Signed events written with their change, in its transaction (the transactional outbox): the
//! delivery worker reads them from there (`outgoing::tables`).

use sqlx::{Any, Transaction};

use super::{Engine, StoreResult, json_rows, to_json};
use crate::outgoing::event::NewEvent;

/// Writes `events` in the change's transaction (one statement, whatever their number). The
/// endpoints' positions find them there: nothing is written per endpoint.
pub(super) async fn record(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    events: &[NewEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    #[derive(serde::Serialize)]
    struct EventRow<'a> {
        id: &'a str,
        kind: &'static str,
        user_id: i64,
        body: &'a str,
        created_at: i64,
    }
    let rows: Vec<EventRow> = events
        .iter()
        .map(|event| EventRow {
            id: &event.id,
            kind: event.kind.as_str(),
            user_id: event.user_id,
            body: &event.body,
            created_at: event.created_at,
        })
        .collect();
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
    sqlx::query(&sql)
        .bind(to_json(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
