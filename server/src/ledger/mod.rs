//! The one door of the books. Every balance change goes through [`Ledger`], whoever asks — the
//! webhook, long polling, reconciliation (served or from the command line), `server refund` —
//! and what follows each commit ([`AfterCommit`]) runs once it committed: the log line, the
//! metrics, the live event and the notifier's wake-up. The wallet's rules decide what a payment
//! or a refund becomes; the books (`books/`) carry the plan out in one transaction.

mod answers;
mod books;
mod upkeep;
pub mod verify;

pub use upkeep::run_upkeep;

use std::sync::Arc;

use crate::clock::now_ms;
use crate::store::{ActionResult, Faults, NewAction, Store, StoreResult, StreamServer};
use crate::wallet::amounts::Stars;
use crate::wallet::ids::{ChargeId, UserId};
use crate::wallet::model::{Buyer, IncomingPayment, Notice, PaymentOutcome, RefundOutcome};
use crate::wallet::operations::{Decision, Request, StoredAnswer, answer_again};

/// What follows a committed change, given to the ledger by whoever runs it (the server, a
/// command-line run): the log line, the metrics, the live event, the workers' wake-ups, and
/// the words of the buyer's notices written with the change.
pub trait AfterCommit: Send + Sync + 'static {
    /// Who serves the live streams of the balances this process changes.
    fn stream_server(&self) -> StreamServer;
    /// The bot's words for the notices a change queues.
    fn notice(&self) -> &'static (dyn Notice + Sync);
    fn paid(&self, charge_id: &ChargeId, payload: &str, stars: Stars, outcome: &PaymentOutcome);
    fn refunded(&self, charge_id: &ChargeId, outcome: &RefundOutcome);
    fn operated(&self, request: &Request, decision: &Decision);
}

#[derive(Clone)]
pub struct Ledger {
    books: books::Books,
    effects: Arc<dyn AfterCommit>,
    answers: answers::Answers,
}

impl Ledger {
    /// The ledger of `store`, its writers started (one ledger per process and database).
    pub fn new(store: Store, effects: impl AfterCommit) -> Self {
        Self {
            books: books::Books::start(store, effects.notice()),
            effects: Arc::new(effects),
            answers: answers::Answers::new(),
        }
    }

    pub fn store(&self) -> &Store {
        self.books.store()
    }

    /// How many transactions the payment writer committed so far.
    pub fn payment_commits(&self) -> u64 {
        self.books.payment_commits()
    }

    /// How many shared payment transactions failed and were retried one payment at a time.
    pub fn payment_batches_split(&self) -> u64 {
        self.books.payment_batches_split()
    }

    /// How many attempts of the payment and operation writers panicked (and were rolled back).
    pub fn writer_panics(&self) -> u64 {
        self.books.writer_panics()
    }

    /// Whether both writers run: while one is down its money stands still, so `/readyz` says so.
    pub fn writers_running(&self) -> bool {
        self.books.writers_running()
    }

    /// Faults for tests to inject into the payment and the operation writer.
    #[doc(hidden)]
    pub fn writer_faults(&self) -> (Faults, Faults) {
        self.books.writer_faults()
    }

    /// Records a `successful_payment` (sharing a transaction with the payments arriving at the
    /// same moment) and runs what follows its commit.
    pub async fn pay(&self, payer: Buyer, payment: IncomingPayment) -> StoreResult<PaymentOutcome> {
        let (charge_id, payload, stars) = (
            payment.charge_id.clone(),
            payment.payload.clone(),
            payment.stars,
        );
        let outcome = self
            .books
            .pay(payer, payment, self.effects.stream_server())
            .await?;
        self.effects.paid(&charge_id, &payload, stars, &outcome);
        Ok(outcome)
    }

    /// Decides and applies a service request (a debit, hold, capture, void, expiry or grant) with
    /// the others arriving at the same moment, and runs what follows.
    pub async fn operate(&self, request: Request) -> StoreResult<Decision> {
        self.operate_for(request, None).await
    }

    /// [`Ledger::operate`], for an operator's action: its audit row is written with the change.
    pub async fn operate_for(
        &self,
        request: Request,
        action: Option<NewAction>,
    ) -> StoreResult<Decision> {
        // A key used before is answered from what it remembered, without a transaction (and
        // without a read when this instance has the answer in memory).
        let earlier = match &request.key {
            Some(key) => match self.answers.get(key) {
                Some(kept) => Some(kept),
                None => self
                    .store()
                    .remembered(key)
                    .await?
                    .map(|(earlier, created_at)| {
                        let earlier = Arc::new(earlier);
                        self.answers.keep(key, earlier.clone(), created_at);
                        earlier
                    }),
            },
            None => None,
        };
        let decision = match (earlier, &request.key) {
            (Some(earlier), Some(key)) => answer_again(&earlier, key),
            _ => {
                self.books
                    .operate(request.clone(), action, self.effects.stream_server())
                    .await?
            }
        };
        if let (Some(key), Decision::Applied(change)) = (&request.key, &decision) {
            let answer = Arc::new(StoredAnswer {
                fingerprint: key.fingerprint.clone(),
                receipt: change.receipt.clone(),
            });
            self.answers.keep(key, answer, now_ms());
        }
        self.effects.operated(&request, &decision);
        Ok(decision)
    }

    /// Applies a refund of `charge_id` (once, whatever the redeliveries) and runs what follows.
    pub async fn refund(
        &self,
        user_id: UserId,
        charge_id: &ChargeId,
        stars: Stars,
    ) -> StoreResult<RefundOutcome> {
        Ok(self.refund_for(user_id, charge_id, stars, None).await?.0)
    }

    /// [`Ledger::refund`], for an operator's action: its audit row (with `telegram`, what
    /// Telegram said) is written with the change.
    pub async fn refund_for(
        &self,
        user_id: UserId,
        charge_id: &ChargeId,
        stars: Stars,
        action: Option<(&NewAction, &str)>,
    ) -> StoreResult<(RefundOutcome, Option<ActionResult>)> {
        let (outcome, acted) = self
            .books
            .refund(
                user_id,
                charge_id,
                stars,
                self.effects.stream_server(),
                action,
            )
            .await?;
        if !matches!(acted, Some(ActionResult::Repeated(_))) {
            self.effects.refunded(charge_id, &outcome);
        }
        Ok((outcome, acted))
    }

    /// Credits a held payment (an operator's action), once: its order's NDN, or the package of its
    /// price (`prices`: Stars → NDN) when it has no order; anything but a held payment is left
    /// as it is, and the result says why.
    pub async fn credit_held(
        &self,
        charge_id: &ChargeId,
        prices: &[(i64, i64)],
        action: &NewAction,
    ) -> StoreResult<ActionResult> {
        let (acted, credit) = self
            .books
            .credit_held(charge_id, prices, self.effects.stream_server(), action)
            .await?;
        if let Some(credit) = credit {
            self.effects
                .paid(charge_id, &credit.payload, credit.stars, &credit.outcome);
        }
        Ok(acted)
    }
}
