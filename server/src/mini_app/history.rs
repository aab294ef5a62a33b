//! The Mini App's history of a buyer: the latest purchases (with their status), spends and
//! credits, as the page shows them.

use app::api::{EntryKind, HistoryEntry, OrderState};
use sqlx::Row;

use crate::store::{Store, StoreError, StoreResult};
use crate::wallet::model::TransferKind;

/// The buyer's latest purchases (paid, or refunded since), spends and credits.
pub async fn history(store: &Store, user_id: i64, limit: i64) -> StoreResult<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT t.kind, t.amount, t.stars, t.reason, t.created_at, t.debit_account,
                p.order_id,
                (SELECT COUNT(*) FROM transfers r
                 WHERE r.kind = 'refund' AND r.reference = t.reference) AS refunds
         FROM transfers t
         LEFT JOIN payments p ON t.kind = 'purchase' AND p.charge_id = t.reference
         WHERE (t.credit_account = $1 OR t.debit_account = $1) AND t.kind <> 'refund'
         ORDER BY t.id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            let amount: i64 = row.try_get("amount")?;
            let debited = row.try_get::<i64, _>("debit_account")? == user_id;
            let purchase = kind == TransferKind::Purchase.as_str();
            Ok(HistoryEntry {
                kind: match TransferKind::parse(&kind) {
                    Some(TransferKind::Purchase) => EntryKind::Purchase,
                    Some(TransferKind::Grant) => EntryKind::Credit,
                    Some(TransferKind::Spend) => EntryKind::Spend,
                    _ => return Err(StoreError::Corrupt(format!("history entry `{kind}`"))),
                },
                order_id: row.try_get("order_id")?,
                ndn: if debited { -amount } else { amount },
                stars: purchase.then(|| row.try_get("stars")).transpose()?,
                status: purchase.then(|| {
                    if row.try_get::<i64, _>("refunds").unwrap_or(0) > 0 {
                        OrderState::Refunded
                    } else {
                        OrderState::Paid
                    }
                }),
                reason: row.try_get("reason")?,
                created_at: row.try_get::<i64, _>("created_at")? / 1000,
            })
        })
        .collect()
}
