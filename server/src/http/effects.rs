//! What follows a committed change of the books in this process, whichever path made it (the
//! ledger's [`AfterCommit`]): one log line with the order and charge ids, the metrics, the live
//! event for the buyer's open Mini App, and the workers' wake-ups for the message and events
//! queued in the same transaction.

use std::sync::Arc;

use app::api::{BalanceEvent, OrderState};
use tokio::sync::Notify;

use crate::ledger::AfterCommit;
use crate::live::LiveEvents;
use crate::store::{Engine, StreamServer};
use crate::telegram::bot_text::BotNotice;
use crate::telemetry::metrics::{Metrics, Operated};
use crate::telemetry::untrusted::Untrusted;
use crate::wallet::amounts::{Ndn, Stars};
use crate::wallet::ids::{ChargeId, OrderId, UserId};
use crate::wallet::model::{Notice, PaymentOutcome, RefundOutcome};
use crate::wallet::operations::{Decision, HoldStatus, Operation, Receipt, Request};

#[derive(Clone)]
pub struct Effects {
    metrics: Arc<Metrics>,
    engine: Engine,
    /// This process's live streams (the server's); `None` in a command-line run, whose changes
    /// reach the server's streams through the database.
    live: Option<LiveEvents>,
    /// The notification worker of this process, if it has one; the server's picks up a
    /// command-line run's messages by itself within half a second.
    outbox: Option<Arc<Notify>>,
    /// The event delivery worker of this process, if it has one; the others find the events
    /// written here within half a second.
    hooks: Option<Arc<Notify>>,
}

impl Effects {
    /// The server's: it serves the streams and sends the messages.
    pub fn serving(
        metrics: Arc<Metrics>,
        engine: Engine,
        live: LiveEvents,
        outbox: Arc<Notify>,
    ) -> Self {
        Self {
            metrics,
            engine,
            live: Some(live),
            outbox: Some(outbox),
            hooks: None,
        }
    }

    /// Also wakes this process's event delivery worker after each change.
    pub fn waking_hooks(self, hooks: Arc<Notify>) -> Self {
        Self {
            hooks: Some(hooks),
            ..self
        }
    }

    /// A command-line run's: a server elsewhere serves the streams and sends the messages.
    pub fn command_line(engine: Engine) -> Self {
        Self {
            metrics: Arc::new(Metrics::default()),
            engine,
            live: None,
            outbox: None,
            hooks: None,
        }
    }
}

impl AfterCommit for Effects {
    fn notice(&self) -> &'static (dyn Notice + Sync) {
        &BotNotice
    }

    fn stream_server(&self) -> StreamServer {
        match self.live {
            Some(_) => StreamServer::ThisProcess,
            None => StreamServer::OtherProcesses,
        }
    }

    fn paid(&self, charge_id: &ChargeId, payload: &str, stars: Stars, outcome: &PaymentOutcome) {
        match outcome {
            PaymentOutcome::Credited {
                user_id,
                order_id,
                ndn,
                balance,
            } => {
                tracing::info!(
                    order_id = order_id.as_str(),
                    charge_id = %Untrusted(charge_id.as_str()),
                    user_id = user_id.get(),
                    ndn = ndn.get(),
                    balance,
                    "payment credited"
                );
                self.metrics.payments_credited.inc();
                self.metrics
                    .stars_credited
                    .inc_by(u64::try_from(stars.get()).unwrap_or(0));
                self.publish(
                    *user_id,
                    BalanceEvent {
                        balance: *balance,
                        order_id: Some(order_id.to_string()),
                        status: Some(OrderState::Paid),
                    },
                );
                self.wake_notifier();
                self.wake_hooks();
            }
            PaymentOutcome::Held { user_id, reason } => {
                tracing::warn!(
                    order_id = %Untrusted(payload),
                    charge_id = %Untrusted(charge_id.as_str()),
                    user_id = user_id.get(),
                    reason,
                    "payment held for the operator"
                );
                self.metrics.payments_held.inc();
                self.wake_notifier();
                self.wake_hooks();
            }
            PaymentOutcome::Duplicate => {
                tracing::info!(
                    charge_id = %Untrusted(charge_id.as_str()),
                    "payment already recorded; redelivery ignored"
                );
            }
        }
    }

    fn refunded(&self, charge_id: &ChargeId, outcome: &RefundOutcome) {
        match outcome {
            RefundOutcome::Debited {
                user_id,
                order_id,
                ndn,
                balance,
            } => {
                tracing::info!(
                    charge_id = %Untrusted(charge_id.as_str()),
                    order_id = order_id.as_ref().map(OrderId::as_str),
                    user_id = user_id.get(),
                    ndn = ndn.get(),
                    balance,
                    "refund debited"
                );
                self.metrics.refunds_applied.inc();
                self.publish(
                    *user_id,
                    BalanceEvent {
                        balance: *balance,
                        order_id: order_id.as_ref().map(OrderId::to_string),
                        status: Some(OrderState::Refunded),
                    },
                );
                self.wake_notifier();
                self.wake_hooks();
            }
            RefundOutcome::AlreadyRefunded => {
                tracing::info!(charge_id = %Untrusted(charge_id.as_str()), "refund already recorded");
            }
            other => {
                self.wake_hooks();
                tracing::info!(charge_id = %Untrusted(charge_id.as_str()), outcome = ?other, "refund recorded");
            }
        }
    }

    fn operated(&self, request: &Request, decision: &Decision) {
        let operation = match &request.operation {
            Operation::Debit { .. } => "debit",
            Operation::Grant { .. } => "credit",
            Operation::Hold { .. } => "hold",
            Operation::Capture { .. } => "capture",
            Operation::Void { .. } => "void",
            Operation::Expire { .. } => "expire",
        };
        let outcome = match decision {
            Decision::Applied(change) => {
                let receipt = &change.receipt;
                let funds = receipt.funds();
                match receipt {
                    Receipt::Debit {
                        id,
                        user_id,
                        amount,
                        ..
                    } => tracing::info!(
                        debit_id = id,
                        user_id = user_id.get(),
                        amount = amount.get(),
                        balance = funds.balance,
                        "debit created"
                    ),
                    Receipt::Credit {
                        id,
                        user_id,
                        amount,
                        ..
                    } => tracing::info!(
                        credit_id = id,
                        user_id = user_id.get(),
                        amount = amount.get(),
                        balance = funds.balance,
                        "credit granted"
                    ),
                    Receipt::Hold { hold, .. } => {
                        let what = match hold.status {
                            HoldStatus::Active => "hold created",
                            HoldStatus::Captured => "hold captured",
                            HoldStatus::Voided | HoldStatus::Expired => "hold released",
                        };
                        tracing::info!(
                            hold_id = hold.id.as_str(),
                            user_id = hold.user_id.get(),
                            amount = hold.amount.get(),
                            captured = hold.captured.map(Ndn::get),
                            status = hold.status.as_str(),
                            balance = funds.balance,
                            held = funds.held,
                            "{what}"
                        );
                    }
                }
                self.publish(
                    receipt.user_id(),
                    BalanceEvent {
                        balance: funds.balance,
                        order_id: None,
                        status: None,
                    },
                );
                if matches!(receipt, Receipt::Credit { .. }) {
                    self.wake_notifier();
                }
                self.wake_hooks();
                "applied"
            }
            Decision::Repeated(_) => "repeated",
            Decision::Refused(refusal) => {
                tracing::info!(operation, ?refusal, "service request refused");
                "refused"
            }
            Decision::NothingToExpire => return,
        };
        self.metrics
            .operations
            .get_or_create(&Operated { operation, outcome })
            .inc();
    }
}

impl Effects {
    /// On SQLite the server publishes its own changes to its streams right after the commit.
    /// On PostgreSQL the commit carried a `NOTIFY`, which every instance's listener (this one's
    /// too) publishes; a command-line run's changes travel through the database either way.
    fn publish(&self, user_id: UserId, event: BalanceEvent) {
        if let (Engine::Sqlite, Some(live)) = (self.engine, &self.live) {
            live.publish(user_id, event);
        }
    }

    fn wake_hooks(&self) {
        if let Some(hooks) = &self.hooks {
            hooks.notify_one();
        }
    }

    fn wake_notifier(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.notify_one();
        }
    }
}
