//! Payments as recorded (the ledger's books write them).

use super::{Store, StoreError, StoreResult};
use crate::wallet::amounts::Stars;
use crate::wallet::ids::{ChargeId, OrderId, UserId};
use crate::wallet::model::{PaymentRecord, PaymentStatus, make_storable};

impl Store {
    /// The payment behind a charge id (for the operator's refund command).
    pub async fn payment(&self, charge_id: &ChargeId) -> StoreResult<Option<PaymentRecord>> {
        let mut charge_id = charge_id.clone();
        make_storable(&mut charge_id.0);
        let row = sqlx::query_as::<_, PaymentRow>(
            "SELECT charge_id, user_id, order_id, ndn, stars, status FROM payments WHERE charge_id = $1",
        )
        .bind(charge_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(PaymentRow::into_record).transpose()
    }

    /// The buyer's most recent charge ids, for `/paysupport`.
    pub async fn recent_charges(&self, user_id: UserId, limit: i64) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT charge_id FROM payments WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A payment's row as stored (its status as text).
#[derive(sqlx::FromRow)]
pub(crate) struct PaymentRow {
    charge_id: ChargeId,
    user_id: UserId,
    order_id: Option<OrderId>,
    ndn: i64,
    stars: Stars,
    status: String,
}

impl PaymentRow {
    pub(crate) fn into_record(self) -> StoreResult<PaymentRecord> {
        Ok(PaymentRecord {
            status: PaymentStatus::parse(&self.status).ok_or(StoreError::Corrupt(format!(
                "payment status `{}`",
                self.status
            )))?,
            charge_id: self.charge_id,
            user_id: self.user_id,
            order_id: self.order_id,
            ndn: self.ndn,
            stars: self.stars,
        })
    }
}
