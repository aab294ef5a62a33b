//! A buyer's account read back for the service API: the statement (every transfer and hold,
//! newest first, in pages). The Mini App's history is `mini_app::history`.

use super::{Store, StoreError, StoreResult};
use crate::wallet::amounts::Ndn;
use crate::wallet::ids::{HoldId, UserId};
use crate::wallet::model::TransferKind;
use crate::wallet::operations::{Hold, HoldStatus};

/// One line of a buyer's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementEntry {
    Transfer {
        id: i64,
        kind: TransferKind,
        /// What it did to the buyer's balance.
        change: i64,
        stars: i64,
        /// The charge id (purchases, refunds), or the debit, capture or credit id.
        reference: String,
        reason: Option<String>,
        external_reference: Option<String>,
        metadata: Option<String>,
        created_at: i64,
    },
    Hold(Hold),
}

/// Where a page of a statement ends: the next page starts below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementCursor {
    pub created_at: i64,
    /// 1 for transfers, 0 for holds.
    pub source: i64,
    pub number: i64,
    pub text: String,
}

impl StatementEntry {
    pub fn cursor(&self) -> StatementCursor {
        match self {
            Self::Transfer { id, created_at, .. } => StatementCursor {
                created_at: *created_at,
                source: 1,
                number: *id,
                text: String::new(),
            },
            Self::Hold(hold) => StatementCursor {
                created_at: hold.created_at,
                source: 0,
                number: 0,
                text: hold.id.to_string(),
            },
        }
    }
}

impl Store {
    /// A page of the buyer's statement, newest first, below `after` (the previous page's last
    /// entry). New entries join at the top, so paging on is not disturbed by them.
    pub async fn statement(
        &self,
        user_id: UserId,
        after: Option<&StatementCursor>,
        limit: i64,
    ) -> StoreResult<Vec<StatementEntry>> {
        let everything = StatementCursor {
            created_at: i64::MAX,
            source: 2,
            number: 0,
            text: String::new(),
        };
        let after = after.unwrap_or(&everything);
        let rows = sqlx::query_as::<_, StatementRow>(
            "SELECT * FROM (
                 SELECT created_at, 1 AS source, id AS number, '' AS text, kind, amount,
                        debit_account, stars, reference, reason, external_reference, metadata,
                        0 AS expires_at, '' AS status, 0 AS captured
                 FROM transfers WHERE credit_account = $1 OR debit_account = $1
                 UNION ALL
                 SELECT created_at, 0, 0, id, 'hold', amount, user_id, 0, id, reason,
                        external_reference, NULL, expires_at, status, COALESCE(captured, 0)
                 FROM holds WHERE user_id = $1
             ) AS e
             WHERE created_at < $2
                OR (created_at = $2 AND (source < $3
                    OR (source = $3 AND (number < $4 OR (number = $4 AND text < $5)))))
             ORDER BY created_at DESC, source DESC, number DESC, text DESC
             LIMIT $6",
        )
        .bind(user_id)
        .bind(after.created_at)
        .bind(after.source)
        .bind(after.number)
        .bind(&after.text)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                if row.kind == "hold" {
                    return Ok(StatementEntry::Hold(Hold {
                        status: HoldStatus::parse(&row.status).ok_or_else(|| {
                            StoreError::Corrupt(format!("hold status `{}`", row.status))
                        })?,
                        id: HoldId(row.text),
                        user_id,
                        amount: row.amount,
                        captured: Ndn::new(row.captured),
                        reason: row.reason,
                        reference: row.external_reference,
                        created_at: row.created_at,
                        expires_at: row.expires_at,
                        // Not read: a statement shows the buyer's side, not the service's.
                        owner: None,
                    }));
                }
                let debited = row.debit_account == user_id.get();
                Ok(StatementEntry::Transfer {
                    id: row.number,
                    kind: TransferKind::parse(&row.kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("transfer kind `{}`", row.kind))
                    })?,
                    change: if debited {
                        -row.amount.get()
                    } else {
                        row.amount.get()
                    },
                    stars: row.stars,
                    reference: row.reference,
                    reason: row.reason,
                    external_reference: row.external_reference,
                    metadata: row.metadata,
                    created_at: row.created_at,
                })
            })
            .collect()
    }
}

/// A statement's line as the query returns it: a transfer, or a hold (`kind` is `hold`).
#[derive(sqlx::FromRow)]
struct StatementRow {
    created_at: i64,
    number: i64,
    text: String,
    kind: String,
    amount: Ndn,
    debit_account: i64,
    stars: i64,
    reference: String,
    reason: Option<String>,
    external_reference: Option<String>,
    metadata: Option<String>,
    expires_at: i64,
    status: String,
    captured: i64,
}
