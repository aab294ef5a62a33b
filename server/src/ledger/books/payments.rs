//! `successful_payment`s, applied by a group-commit writer (see `store::writer`): a batch of payments is
//! a handful of multi-row statements whatever its size.

use std::collections::{HashMap, HashSet};

use app::i18n::Lang;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::Books;
use super::accounts::{self, AccountChanges};
use super::consequences::{Committed, Consequences};
use crate::store::writer::Batch;
use crate::store::{
    Engine, ORDER_SELECT, OrderRow, StoreError, StoreResult, StreamServer, in_json_texts,
    json_rows, to_json,
};
use crate::wallet::amounts::Stars;
use crate::wallet::ids::{ChargeId, OrderId, UserId};
use crate::wallet::model::{Buyer, IncomingPayment, Notice, PaymentOutcome};
use crate::wallet::payments::{BatchPayment, PaymentPlan, orders_opened, plan_batch, settle_batch};

/// A payment waiting for the group-commit writer.
pub(super) struct PaymentJob {
    payer: Buyer,
    payment: IncomingPayment,
    reach: StreamServer,
}

impl Books {
    /// Records a `successful_payment` and carries out its plan in one transaction: payment row
    /// (unique per charge), purchase transfer and balance, order, and what the payment brings
    /// with it (notice, event, balance note). Concurrent payments share a transaction (group
    /// commit); each caller gets its answer only after that transaction committed.
    pub(in crate::ledger) async fn pay(
        &self,
        mut payer: Buyer,
        mut payment: IncomingPayment,
        reach: StreamServer,
    ) -> StoreResult<PaymentOutcome> {
        payer.make_storable();
        payment.make_storable();
        self.payments
            .submit(PaymentJob {
                payer,
                payment,
                reach,
            })
            .await
    }
}

/// The payments writer's batches.
pub(super) struct Payments {
    pub(super) notice: &'static (dyn Notice + Sync),
}

impl Batch for Payments {
    type Job = PaymentJob;
    type Outcome = PaymentOutcome;
    const NAME: &'static str = "payment";

    /// Payments lock their buyers' rows as they go: in payer id order.
    fn lock_order(a: &PaymentJob, b: &PaymentJob) -> std::cmp::Ordering {
        (a.payer.id, &a.payment.charge_id).cmp(&(b.payer.id, &b.payment.charge_id))
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'_, Any>,
        engine: Engine,
        jobs: &[PaymentJob],
        now: i64,
        _attempt: u32,
    ) -> StoreResult<Vec<PaymentOutcome>> {
        apply_payments_in(tx, engine, jobs, now, self.notice).await
    }
}

/// A batch of payments inside one write transaction. The outcome of each is what applying them
/// one after another in batch order gives (the wallet's batch rules): a charge recorded before,
/// or earlier in the batch, changes nothing; balances in the outcomes (and notices) grow payment
/// by payment.
async fn apply_payments_in(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    jobs: &[PaymentJob],
    now: i64,
    notice: &'static (dyn Notice + Sync),
) -> StoreResult<Vec<PaymentOutcome>> {
    // The orders the payloads name, and a plan for each charge's first occurrence.
    let mut payloads: Vec<&str> = jobs.iter().map(|j| j.payment.payload.as_str()).collect();
    payloads.sort_unstable();
    payloads.dedup();
    let sql = format!("{ORDER_SELECT} WHERE {}", in_json_texts(engine, "id", 1));
    let query = sqlx::query_as::<_, OrderRow>(AssertSqlSafe(sql)).bind(to_json(&payloads)?);
    let mut orders = HashMap::with_capacity(payloads.len());
    for row in query.fetch_all(&mut **tx).await? {
        let order = row.into_order()?;
        orders.insert(order.id.clone(), order);
    }
    let batch: Vec<BatchPayment> = jobs
        .iter()
        .map(|job| BatchPayment {
            payer: job.payer.id,
            payment: &job.payment,
        })
        .collect();
    let plans = plan_batch(&batch, &orders);

    // The payment rows. The unique charge id says which are new: a charge stored before (by an
    // earlier batch, or by another instance a moment ago) is not returned, and is a duplicate.
    let rows: Vec<PaymentRow> = jobs
        .iter()
        .zip(&plans)
        .filter_map(|(job, plan)| {
            let plan = plan.as_ref()?;
            Some(PaymentRow {
                charge_id: &job.payment.charge_id,
                provider_charge_id: job.payment.provider_charge_id.as_deref(),
                user_id: job.payer.id,
                order_id: plan.order_id(),
                payload: &job.payment.payload,
                currency: &job.payment.currency,
                stars: job.payment.stars,
                ndn: plan.ndn(),
                status: plan.status().as_str(),
                hold_reason: plan.hold_reason(),
                created_at: now,
            })
        })
        .collect();
    let sql = format!(
        "INSERT INTO payments (charge_id, provider_charge_id, user_id, order_id, payload,
             currency, stars, ndn, status, hold_reason, created_at)
         SELECT charge_id, provider_charge_id, user_id, order_id, payload, currency, stars,
             ndn, status, hold_reason, created_at FROM {} WHERE true
         ON CONFLICT (charge_id) DO NOTHING RETURNING charge_id",
        json_rows(
            engine,
            1,
            &[
                ("charge_id", "text"),
                ("provider_charge_id", "text"),
                ("user_id", "bigint"),
                ("order_id", "text"),
                ("payload", "text"),
                ("currency", "text"),
                ("stars", "bigint"),
                ("ndn", "bigint"),
                ("status", "text"),
                ("hold_reason", "text"),
                ("created_at", "bigint"),
            ]
        )
    );
    let query = sqlx::query_scalar::<_, ChargeId>(AssertSqlSafe(sql)).bind(to_json(&rows)?);
    let recorded: HashSet<ChargeId> = query.fetch_all(&mut **tx).await?.into_iter().collect();
    let applied: Vec<Option<&PaymentPlan>> = jobs
        .iter()
        .zip(&plans)
        .map(|(job, plan)| {
            plan.as_ref()
                .filter(|_| recorded.contains(&job.payment.charge_id))
        })
        .collect();

    // The purchases, and every payer's latest profile (new buyers are created).
    let transfers: Vec<_> = batch
        .iter()
        .zip(&applied)
        .filter_map(|(item, plan)| (*plan)?.transfer(item.payer, item.payment))
        .collect();
    let mut profiles: HashMap<UserId, &Buyer> = HashMap::new();
    for job in jobs {
        profiles.insert(job.payer.id, &job.payer);
    }
    let profiles: Vec<&Buyer> = profiles.into_values().collect();
    let around = AccountChanges {
        profiles: &profiles,
        held: &[],
    };
    let balances = accounts::post(tx, engine, &transfers, around, now).await?;

    // The orders these payments opened. The status condition repeats what the plan saw, so an
    // order refunded since (by another instance) is left as it is.
    let opened = orders_opened(&applied);
    if !opened.is_empty() {
        let sql = format!(
            "UPDATE orders SET status = 'paid', paid_at = $1
             WHERE status IN ('pending', 'expired', 'failed') AND {}",
            in_json_texts(engine, "id", 2)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(to_json(&opened)?)
            .execute(&mut **tx)
            .await?;
    }

    let outcomes = settle_batch(&batch, &applied, &balances)
        .map_err(|missing| StoreError::Corrupt(missing.to_string()))?;

    // What they bring with them, in their transaction.
    let mut consequences = Consequences::new(notice);
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        consequences.add(
            Committed::Payment {
                payer: job.payer.id,
                outcome,
                charge_id: &job.payment.charge_id,
                payload: &job.payment.payload,
                stars: job.payment.stars,
                language: Lang::from_code(job.payer.language_code.as_deref().unwrap_or("en")),
                by_operator: false,
            },
            now,
        )?;
    }
    let reach = jobs
        .first()
        .map_or(StreamServer::ThisProcess, |job| job.reach);
    consequences.write(tx, engine, reach, now).await?;
    Ok(outcomes)
}

#[derive(serde::Serialize)]
struct PaymentRow<'a> {
    charge_id: &'a ChargeId,
    provider_charge_id: Option<&'a str>,
    user_id: UserId,
    order_id: Option<&'a OrderId>,
    payload: &'a str,
    currency: &'a str,
    stars: Stars,
    ndn: i64,
    status: &'static str,
    hold_reason: Option<&'static str>,
    created_at: i64,
}
