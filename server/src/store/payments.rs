//! `successful_payment`s, applied by a group-commit writer (see `writer`): a batch of payments is
//! a handful of multi-row statements whatever its size.

use std::collections::{HashMap, HashSet};

use app::api::{BalanceEvent, OrderState};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::broadcast::{BalanceBroadcast, StreamServer, balances_changed};
use super::events;
use super::orders::{ORDER_SELECT, order_from_row};
use super::outbox::enqueue_all;
use super::writer::Batch;
use super::{Engine, Store, StoreError, StoreResult, in_json_texts, json_rows, to_json, transfers};
use crate::outgoing::event::NewEvent;
use crate::wallet::model::{
    Buyer, IncomingPayment, Notice, OutgoingMessage, PaymentOutcome, PaymentRecord, PaymentStatus,
    make_storable,
};
use crate::wallet::payments::{BatchPayment, PaymentPlan, orders_opened, plan_batch, settle_batch};

/// A payment waiting for the group-commit writer.
pub(super) struct PaymentJob {
    payer: Buyer,
    payment: IncomingPayment,
    notice: &'static (dyn Notice + Sync),
    reach: StreamServer,
}

impl Store {
    /// Records a `successful_payment` and carries out its plan in one transaction: payment row
    /// (unique per charge), purchase transfer and balance, order, the buyer's notification and
    /// the balance event for other processes. Concurrent payments share a transaction (group
    /// commit); each caller gets its answer only after that transaction committed.
    pub async fn apply_payment(
        &self,
        mut payer: Buyer,
        mut payment: IncomingPayment,
        notice: &'static (dyn Notice + Sync),
        reach: StreamServer,
    ) -> StoreResult<PaymentOutcome> {
        payer.make_storable();
        payment.make_storable();
        self.payments
            .submit(PaymentJob {
                payer,
                payment,
                notice,
                reach,
            })
            .await
    }

    /// The payment behind a charge id (for the operator's refund command).
    pub async fn payment(&self, charge_id: &str) -> StoreResult<Option<PaymentRecord>> {
        let mut charge_id = charge_id.to_owned();
        make_storable(&mut charge_id);
        let row = sqlx::query(
            "SELECT charge_id, user_id, order_id, ndn, stars, status FROM payments WHERE charge_id = $1",
        )
        .bind(charge_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| payment_from_row(&row)).transpose()
    }

    /// The buyer's most recent charge ids, for `/paysupport`.
    pub async fn recent_charges(&self, user_id: i64, limit: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT charge_id FROM payments WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }
}

pub(super) fn payment_from_row(row: &AnyRow) -> StoreResult<PaymentRecord> {
    let status: String = row.try_get("status")?;
    Ok(PaymentRecord {
        charge_id: row.try_get("charge_id")?,
        user_id: row.try_get("user_id")?,
        order_id: row.try_get("order_id")?,
        ndn: row.try_get("ndn")?,
        stars: row.try_get("stars")?,
        status: PaymentStatus::parse(&status)
            .ok_or(StoreError::Corrupt(format!("payment status `{status}`")))?,
    })
}

/// The payments writer's batches.
pub(super) struct Payments;

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
        apply_payments_in(tx, engine, jobs, now).await
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
) -> StoreResult<Vec<PaymentOutcome>> {
    // The orders the payloads name, and a plan for each charge's first occurrence.
    let mut payloads: Vec<&str> = jobs.iter().map(|j| j.payment.payload.as_str()).collect();
    payloads.sort_unstable();
    payloads.dedup();
    let sql = format!("{ORDER_SELECT} WHERE {}", in_json_texts(engine, "id", 1));
    let query = sqlx::query(&sql).bind(to_json(&payloads)?);
    let mut orders = HashMap::with_capacity(payloads.len());
    for row in query.fetch_all(&mut **tx).await? {
        let order = order_from_row(&row)?;
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
    let query = sqlx::query(&sql).bind(to_json(&rows)?);
    let mut recorded = HashSet::with_capacity(rows.len());
    for row in query.fetch_all(&mut **tx).await? {
        recorded.insert(row.try_get::<String, _>(0)?);
    }
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
    let mut profiles: HashMap<i64, &Buyer> = HashMap::new();
    for job in jobs {
        profiles.insert(job.payer.id, &job.payer);
    }
    let profiles: Vec<&Buyer> = profiles.into_values().collect();
    let around = transfers::AccountChanges {
        profiles: &profiles,
        held: &[],
    };
    let balances = transfers::post(tx, engine, &transfers, around, now).await?;

    // The orders these payments opened. The status condition repeats what the plan saw, so an
    // order refunded since (by another instance) is left as it is.
    let opened = orders_opened(&applied);
    if !opened.is_empty() {
        let sql = format!(
            "UPDATE orders SET status = 'paid', paid_at = $1
             WHERE status IN ('pending', 'expired', 'failed') AND {}",
            in_json_texts(engine, "id", 2)
        );
        sqlx::query(&sql)
            .bind(now)
            .bind(to_json(&opened)?)
            .execute(&mut **tx)
            .await?;
    }

    let outcomes = settle_batch(&batch, &applied, &balances)
        .map_err(|missing| StoreError::Corrupt(missing.to_string()))?;

    // The buyers' notices, sent later by the notification worker.
    let messages: Vec<OutgoingMessage> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome != PaymentOutcome::Duplicate)
        .filter_map(|(job, outcome)| {
            let language = job.payer.language_code.as_deref().unwrap_or("en");
            let text = job.notice.payment(language, outcome, job.payment.stars)?;
            Some(OutgoingMessage {
                dedupe_key: format!("payment:{}", job.payment.charge_id),
                chat_id: job.payer.id,
                text,
                reply_markup: None,
            })
        })
        .collect();
    enqueue_all(tx, engine, &messages, now).await?;

    // What the operator's backend hears of them, with them.
    let events: Vec<NewEvent> = jobs
        .iter()
        .zip(&outcomes)
        .filter_map(|(job, outcome)| {
            NewEvent::payment(
                outcome,
                &job.payment.charge_id,
                &job.payment.payload,
                job.payment.stars,
                now,
            )
        })
        .collect();
    events::record(tx, engine, &events).await?;

    // Other processes hear of the credits when (and only if) this transaction commits.
    let changes: Vec<BalanceBroadcast> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            PaymentOutcome::Credited {
                user_id,
                order_id,
                balance,
                ..
            } => Some(BalanceBroadcast {
                user_id: *user_id,
                event: BalanceEvent {
                    balance: *balance,
                    order_id: Some(order_id.clone()),
                    status: Some(OrderState::Paid),
                },
            }),
            _ => None,
        })
        .collect();
    let reach = jobs
        .first()
        .map_or(StreamServer::ThisProcess, |job| job.reach);
    balances_changed(tx, engine, reach, &changes).await?;
    Ok(outcomes)
}

#[derive(serde::Serialize)]
struct PaymentRow<'a> {
    charge_id: &'a str,
    provider_charge_id: Option<&'a str>,
    user_id: i64,
    order_id: Option<&'a str>,
    payload: &'a str,
    currency: &'a str,
    stars: i64,
    ndn: i64,
    status: &'static str,
    hold_reason: Option<&'static str>,
    created_at: i64,
}
