//! The Mini App's history of a buyer: the latest purchases (with their status), spends and
//! credits, as the page shows them.

use app::api::{EntryKind, HistoryEntry, OrderState};

use crate::store::{Store, StoreError, StoreResult};
use crate::wallet::ids::UserId;
use crate::wallet::model::TransferKind;

/// A transfer of the buyer's as the history reads it, with its purchase's order and refunds.
#[derive(sqlx::FromRow)]
struct HistoryRow {
    kind: String,
    amount: i64,
    stars: i64,
    reason: Option<String>,
    created_at: i64,
    debit_account: i64,
    order_id: Option<String>,
    refunds: i64,
}

/// The buyer's latest purchases (paid, or refunded since), spends and credits.
pub async fn history(store: &Store, user_id: UserId, limit: i64) -> StoreResult<Vec<HistoryEntry>> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT t.kind AS kind, t.amount AS amount, t.stars AS stars, t.reason AS reason,
                t.created_at AS created_at, t.debit_account AS debit_account,
                p.order_id AS order_id,
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
    rows.into_iter()
        .map(|row| {
            let debited = row.debit_account == user_id.get();
            let purchase = row.kind == TransferKind::Purchase.as_str();
            Ok(HistoryEntry {
                kind: match TransferKind::parse(&row.kind) {
                    Some(TransferKind::Purchase) => EntryKind::Purchase,
                    Some(TransferKind::Grant) => EntryKind::Credit,
                    Some(TransferKind::Spend) => EntryKind::Spend,
                    _ => {
                        return Err(StoreError::Corrupt(format!("history entry `{}`", row.kind)));
                    }
                },
                order_id: row.order_id,
                ndn: if debited { -row.amount } else { row.amount },
                stars: purchase.then_some(row.stars),
                status: purchase.then_some(if row.refunds > 0 {
                    OrderState::Refunded
                } else {
                    OrderState::Paid
                }),
                reason: row.reason,
                created_at: row.created_at / 1000,
            })
        })
        .collect()
}
