//! Every transfer of a period, read as a stream in the order it was written (for `server
//! export`): memory stays flat however many there are.

use futures::stream::{BoxStream, StreamExt};
use sqlx::Row;

use super::{Store, StoreError, StoreResult};

/// One transfer, seen from the buyer it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportLine {
    pub id: i64,
    pub created_at: i64,
    pub kind: String,
    pub user_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    /// What it did to the buyer's balance (+ purchases and grants, − refunds and spends).
    pub ndn: i64,
    pub stars: i64,
    /// The charge id (purchases, refunds), or the debit, capture or credit id.
    pub reference: String,
    /// The operator's own reference of a debit, if it gave one.
    pub external_reference: Option<String>,
    pub reason: Option<String>,
}

impl Store {
    /// The transfers written in `[from, to)` (Unix ms), oldest first.
    pub fn transfers_between(&self, from: i64, to: i64) -> BoxStream<'_, StoreResult<ExportLine>> {
        sqlx::query(
            "SELECT t.id, t.created_at, t.kind,
                    CASE WHEN t.credit_account > 0 THEN t.credit_account ELSE t.debit_account END,
                    CASE WHEN t.credit_account > 0 THEN t.amount ELSE -t.amount END,
                    t.stars, t.reference, t.external_reference, t.reason, u.username, u.first_name
             FROM transfers t
             LEFT JOIN users u
               ON u.id = CASE WHEN t.credit_account > 0 THEN t.credit_account ELSE t.debit_account END
             WHERE t.created_at >= $1 AND t.created_at < $2
             ORDER BY t.id",
        )
        .bind(from)
        .bind(to)
        .fetch(&self.pool)
        .map(|row| {
            let row = row.map_err(StoreError::from)?;
            Ok(ExportLine {
                id: row.try_get(0)?,
                created_at: row.try_get(1)?,
                kind: row.try_get(2)?,
                user_id: row.try_get(3)?,
                ndn: row.try_get(4)?,
                stars: row.try_get(5)?,
                reference: row.try_get(6)?,
                external_reference: row.try_get(7)?,
                reason: row.try_get(8)?,
                username: row.try_get(9)?,
                first_name: row.try_get(10)?,
            })
        })
        .boxed()
    }
}
