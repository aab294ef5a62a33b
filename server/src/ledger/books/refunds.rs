//! Refunds, each in a transaction of its own: the refund transfer and balance, the payment and
//! its order marked refunded, the buyer's notice and the balance event.

use app::i18n::Lang;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::Books;
use super::accounts;
use super::consequences::{Committed, Consequences};
use crate::clock::now_ms;
use crate::store::{
    ActionResult, Engine, NewAction, PaymentRow, StoreError, StoreResult, StreamServer,
    earlier_result, language_of,
};
use crate::wallet::amounts::Stars;
use crate::wallet::ids::{ChargeId, UserId};
use crate::wallet::model::{PaymentRecord, RefundOutcome, make_storable};
use crate::wallet::refunds::{RefundPlan, plan_refund};

impl Books {
    /// Applies a refund of `charge_id` once, as the wallet's refund rule plans it. An operator's
    /// refund writes its audit row in the same transaction: `(action, what Telegram said)`.
    pub(in crate::ledger) async fn refund(
        &self,
        user_id: UserId,
        charge_id: &ChargeId,
        stars: Stars,
        reach: StreamServer,
        action: Option<(&NewAction, &str)>,
    ) -> StoreResult<(RefundOutcome, Option<ActionResult>)> {
        let mut charge_id = charge_id.clone();
        make_storable(&mut charge_id.0);
        let charge_id = &charge_id;
        let now = now_ms();
        let engine = self.store.engine();
        let mut tx = self.store.write().await?;
        if let Some((action, _)) = action
            && let Some(earlier) = earlier_result(&mut *tx, &action.id).await?
        {
            return Ok((
                RefundOutcome::AlreadyRefunded,
                Some(ActionResult::Repeated(earlier)),
            ));
        }
        let mut plan = plan_refund(
            payment_for_refund(&mut tx, engine, charge_id)
                .await?
                .as_ref(),
        );
        if plan == RefundPlan::RecordUnknown
            && !record_unknown(&mut tx, charge_id, user_id, stars, now).await?
        {
            // The payment of this charge committed between the read and the insert (another
            // instance, or the payments' writer): read it again and refund it. Dropping the
            // refund here would leave the NDN with a buyer whose Stars went back.
            plan = plan_refund(
                payment_for_refund(&mut tx, engine, charge_id)
                    .await?
                    .as_ref(),
            );
            if plan == RefundPlan::RecordUnknown {
                return Err(StoreError::Corrupt(format!(
                    "{charge_id}: a payment row conflicts but cannot be read"
                )));
            }
        }
        let outcome = match plan {
            RefundPlan::AlreadyRefunded => RefundOutcome::AlreadyRefunded,
            RefundPlan::CloseHeld => {
                mark_refunded(&mut tx, charge_id, now).await?;
                RefundOutcome::ClosedHeld
            }
            RefundPlan::RecordUnknown => RefundOutcome::RecordedUnknown,
            RefundPlan::Debit { transfer, order_id } => {
                mark_refunded(&mut tx, charge_id, now).await?;
                if let Some(order_id) = &order_id {
                    // The order was paid by this payment or another one of the same link.
                    sqlx::query(
                        "UPDATE orders SET status = 'refunded' WHERE id = $1 AND status = 'paid'",
                    )
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
                }
                let buyer = transfer.from.buyer().unwrap_or(user_id);
                let ndn = transfer.amount;
                let balances =
                    accounts::post(&mut tx, engine, &[transfer], Default::default(), now).await?;
                RefundOutcome::Debited {
                    user_id: buyer,
                    order_id,
                    ndn,
                    balance: balances.get(&buyer).copied().unwrap_or_default(),
                }
            }
        };
        let language = match &outcome {
            RefundOutcome::Debited { user_id, .. } => language_of(&mut tx, *user_id).await?,
            _ => String::new(),
        };
        let mut consequences = Consequences::new(self.notice);
        consequences.add(
            Committed::Refund {
                outcome: &outcome,
                charge_id,
                user_id,
                stars,
                language: Lang::from_code(&language),
            },
            now,
        )?;
        consequences.write(&mut tx, engine, reach, now).await?;
        match action {
            None => {
                tx.commit().await?;
                Ok((outcome, None))
            }
            Some((action, telegram)) => {
                let result = outcome.summary(charge_id, telegram);
                let acted = self.store.finish(tx, action, result, now).await?;
                Ok((outcome, Some(acted)))
            }
        }
    }
}

/// The payment a refund is about, if recorded. Two refunds of one charge at once: on
/// PostgreSQL the second waits here for the first, then finds it refunded (SQLite's write
/// transactions run one at a time).
async fn payment_for_refund(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    charge_id: &ChargeId,
) -> StoreResult<Option<PaymentRecord>> {
    let lock = match engine {
        Engine::Postgres => " FOR UPDATE",
        Engine::Sqlite => "",
    };
    sqlx::query_as::<_, PaymentRow>(AssertSqlSafe(format!(
        "SELECT charge_id, user_id, order_id, ndn, stars, status FROM payments
         WHERE charge_id = $1{lock}"
    )))
    .bind(charge_id)
    .fetch_optional(&mut **tx)
    .await?
    .map(PaymentRow::into_record)
    .transpose()
}

/// Records the refund of a charge never seen, so that a late payment of it is not credited;
/// false if a payment of it was recorded first (the insert waits for it to commit).
async fn record_unknown(
    tx: &mut Transaction<'static, Any>,
    charge_id: &ChargeId,
    user_id: UserId,
    stars: Stars,
    now: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO payments (charge_id, user_id, payload, currency, stars, ndn, status,
             hold_reason, created_at, refunded_at)
         VALUES ($1, $2, '', 'XTR', $3, 0, 'refunded', 'refund of an unknown charge', $4, $4)
         ON CONFLICT (charge_id) DO NOTHING",
    )
    .bind(charge_id)
    .bind(user_id)
    .bind(stars)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn mark_refunded(
    tx: &mut Transaction<'static, Any>,
    charge_id: &ChargeId,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE payments SET status = 'refunded', refunded_at = $2 WHERE charge_id = $1")
        .bind(charge_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
