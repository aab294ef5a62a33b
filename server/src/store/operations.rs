//! What the service API reads outside a change: answers remembered under idempotency keys,
//! holds due, a buyer's funds; and the answers' upkeep.

use super::{Store, StoreError, StoreResult};
use crate::wallet::amounts::Ndn;
use crate::wallet::ids::HoldId;
use crate::wallet::ids::UserId;
use crate::wallet::operations::{Funds, Hold, HoldStatus, IdempotencyKey, StoredAnswer};

impl Store {
    /// The answer remembered under an idempotency key, if any, with when it was written (a
    /// read: a request answered before needs no transaction).
    pub async fn remembered(
        &self,
        key: &IdempotencyKey,
    ) -> StoreResult<Option<(StoredAnswer, i64)>> {
        let row = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT fingerprint, receipt, created_at FROM api_requests
             WHERE api_key_id = $1 AND idempotency_key = $2",
        )
        .bind(key.api_key_id)
        .bind(&key.key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(fingerprint, receipt, created_at)| {
            Ok((remembered(fingerprint, &receipt)?, created_at))
        })
        .transpose()
    }

    /// Active holds whose time ran out (for the expiry worker), oldest first.
    pub async fn holds_due(&self, now: i64, limit: i64) -> StoreResult<Vec<HoldId>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM holds WHERE status = 'active' AND expires_at <= $1
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets the answers remembered before `before` (Unix ms); how many.
    pub async fn forget_answers(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM api_requests WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// A buyer's balance and held NDN, if the buyer is known.
    pub async fn funds(&self, user_id: UserId) -> StoreResult<Option<Funds>> {
        let row = sqlx::query_as::<_, (i64, i64)>("SELECT balance, held FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(balance, held)| Funds { balance, held }))
    }
}

/// An answer remembered under a key, as stored: its request's fingerprint and its receipt's JSON.
pub(crate) fn remembered(fingerprint: String, receipt: &str) -> StoreResult<StoredAnswer> {
    Ok(StoredAnswer {
        fingerprint,
        receipt: serde_json::from_str(receipt)
            .map_err(|error| StoreError::Corrupt(format!("remembered answer: {error}")))?,
    })
}

/// A hold's row as stored (its status as text).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredHold {
    id: HoldId,
    user_id: UserId,
    amount: Ndn,
    status: String,
    captured: Option<Ndn>,
    reason: Option<String>,
    external_reference: Option<String>,
    created_at: i64,
    expires_at: i64,
    api_key_id: Option<i64>,
}

impl StoredHold {
    pub(crate) fn into_hold(self) -> StoreResult<Hold> {
        Ok(Hold {
            status: HoldStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("hold status `{}`", self.status)))?,
            id: self.id,
            user_id: self.user_id,
            amount: self.amount,
            captured: self.captured,
            reason: self.reason,
            reference: self.external_reference,
            created_at: self.created_at,
            expires_at: self.expires_at,
            owner: self.api_key_id,
        })
    }
}
