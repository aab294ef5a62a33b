//! The books' writing half: every statement that changes a balance, and the group-commit
//! writers that run them. The module is private to [`crate::ledger`] and its doors are
//! `pub(in crate::ledger)`, so a handler, a worker or the command line holding a [`Store`]
//! cannot change a balance: it has to ask the [`Ledger`](super::Ledger).
//!
//! Outside the ledger the books cannot be named, nor reached through the ledger:
//!
//! ```compile_fail,E0603
//! use server::ledger::books::Books;
//! ```
//!
//! ```compile_fail,E0616
//! fn reach_in(ledger: &server::ledger::Ledger) {
//!     let _ = &ledger.books;
//! }
//! ```
//!
//! while the door itself is public:
//!
//! ```
//! fn door(ledger: &server::ledger::Ledger) -> &server::store::Store {
//!     ledger.store()
//! }
//! ```
//!
//! | module | what it writes |
//! |---|---|
//! | `accounts` | transfers and the buyers' cached balances and held NDN: the one writer |
//! | `payments` | `successful_payment`s, a group commit at a time |
//! | `operations` | the service API's debits, holds and grants, a group commit at a time |
//! | `refunds` | refunds, each in its transaction |
//! | `held` | held payments credited from the console |
//! | `consequences` | what each change brings with it: notice, event, balance note |

mod accounts;
mod consequences;
mod held;
mod operations;
mod payments;
mod refunds;

use std::sync::atomic::Ordering;

use crate::store::Store;
use crate::store::writer::{Counters, Faults, Writer};
use crate::wallet::model::Notice;

/// The store, with the two group-commit writers of the books (payments, service requests) and
/// their counts.
#[derive(Clone)]
pub(in crate::ledger) struct Books {
    store: Store,
    /// The bot's words for the notices a change queues.
    notice: &'static (dyn Notice + Sync),
    payments: Writer<payments::Payments>,
    payment_counters: Counters,
    operations: Writer<operations::Operations>,
    operation_counters: Counters,
}

impl Books {
    /// Starts the writers on `store`'s pool.
    pub(in crate::ledger) fn start(store: Store, notice: &'static (dyn Notice + Sync)) -> Self {
        let payment_counters = Counters::default();
        let payments = Writer::start(
            store.pool().clone(),
            store.engine(),
            payments::Payments { notice },
            payment_counters.clone(),
        );
        let operation_counters = Counters::default();
        let operations = Writer::start(
            store.pool().clone(),
            store.engine(),
            operations::Operations { notice },
            operation_counters.clone(),
        );
        Self {
            store,
            notice,
            payments,
            payment_counters,
            operations,
            operation_counters,
        }
    }

    /// The store the books write to.
    pub(in crate::ledger) fn store(&self) -> &Store {
        &self.store
    }

    /// How many transactions the payment writer committed so far.
    pub(in crate::ledger) fn payment_commits(&self) -> u64 {
        self.payment_counters.commits.load(Ordering::Relaxed)
    }

    /// How many shared payment transactions failed and were retried one payment at a time.
    pub(in crate::ledger) fn payment_batches_split(&self) -> u64 {
        self.payment_counters.splits.load(Ordering::Relaxed)
    }

    /// How many attempts of the payment and operation writers panicked (and were rolled back).
    pub(in crate::ledger) fn writer_panics(&self) -> u64 {
        [&self.payment_counters, &self.operation_counters]
            .iter()
            .map(|counters| counters.panics.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether both writers run: while one is down its money stands still.
    pub(in crate::ledger) fn writers_running(&self) -> bool {
        [&self.payment_counters, &self.operation_counters]
            .iter()
            .all(|counters| counters.running.load(Ordering::SeqCst))
    }

    /// Faults for tests to inject into the payment and the operation writer.
    pub(in crate::ledger) fn writer_faults(&self) -> (Faults, Faults) {
        (
            self.payment_counters.faults.clone(),
            self.operation_counters.faults.clone(),
        )
    }
}
