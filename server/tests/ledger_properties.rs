//! The books under any interleaving of credits, duplicate deliveries, second payments, held
//! payments, refunds, and the service API's debits, grants, holds, captures and voids, by two
//! buyers (property tests on a real SQLite store, through the ledger's one door): every balance
//! is what a simple model says and the sum of its transfers, nothing but a refund overdraws, the
//! books sum to zero, and `ledger verify` finds nothing.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use app::api::Package;
use proptest::prelude::*;
use server::store::Store;
use server::wallet::amounts::{Ndn, Stars};
use server::wallet::ids::{HoldId, UserId};
use server::wallet::model::{Buyer, IncomingPayment};
use server::wallet::operations::{Decision, Operation, Request};
use support::{NO_LIMITS, assert_books_balance, balance_from_transfers, ledger, scalar};

/// The API key the model's service requests come from (it makes and settles every hold).
const SERVICE: i64 = 1;
const BUYERS: [i64; 2] = [42, 43];

#[derive(Debug, Clone)]
enum Op {
    /// Charge `charge` by buyer `payer` pays order `order` (order 4 does not exist: the payment
    /// is held). A repeated charge is a redelivery; a new charge on a paid order is a second
    /// payment of the same link.
    Pay {
        charge: u8,
        order: u8,
        payer: usize,
    },
    /// The right order, the wrong amount: held.
    PayWrongAmount {
        charge: u8,
        order: u8,
        payer: usize,
    },
    Refund {
        charge: u8,
    },
    Debit {
        amount: i64,
        payer: usize,
    },
    Grant {
        amount: i64,
        payer: usize,
    },
    Hold {
        amount: i64,
        payer: usize,
    },
    Capture {
        hold: usize,
    },
    Void {
        hold: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..10, 0u8..5, 0usize..2)
            .prop_map(|(charge, order, payer)| Op::Pay { charge, order, payer }),
        1 => (0u8..10, 0u8..4, 0usize..2)
            .prop_map(|(charge, order, payer)| Op::PayWrongAmount { charge, order, payer }),
        2 => (0u8..10).prop_map(|charge| Op::Refund { charge }),
        2 => (1i64..150, 0usize..2).prop_map(|(amount, payer)| Op::Debit { amount, payer }),
        1 => (1i64..100, 0usize..2).prop_map(|(amount, payer)| Op::Grant { amount, payer }),
        2 => (1i64..150, 0usize..2).prop_map(|(amount, payer)| Op::Hold { amount, payer }),
        1 => (0usize..6).prop_map(|hold| Op::Capture { hold }),
        1 => (0usize..6).prop_map(|hold| Op::Void { hold }),
    ]
}

/// What the model says happened.
#[derive(Default)]
struct Model {
    seen: HashSet<u8>,
    /// Charges credited, with their payer.
    credited: Vec<(u8, usize)>,
    held: HashSet<u8>,
    refunded: HashSet<u8>,
    balances: [i64; 2],
    reserved: [i64; 2],
    /// Holds made: id, payer, amount, still active.
    holds: Vec<(String, usize, i64, bool)>,
    /// Credits granted (each is told to the buyer).
    grants: usize,
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/ledger.db", dir.path().display()), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let ledger = ledger(&store);
    let buyer = |index: usize| Buyer {
        id: UserId(BUYERS[index]),
        first_name: format!("P{index}"),
        username: None,
        language_code: None,
    };
    store.upsert_buyer(&buyer(0)).await.unwrap();
    store.upsert_buyer(&buyer(1)).await.unwrap();
    let package = Package {
        id: "ndn-100".into(),
        ndn: 100,
        stars: 50,
        title: "100 NDN".into(),
    };
    for order in 0..4 {
        store
            .create_order(
                &format!("o{order}").into(),
                UserId(BUYERS[0]),
                &package,
                Duration::from_secs(600),
                NO_LIMITS,
                None,
            )
            .await
            .unwrap();
    }

    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Pay {
                charge,
                order,
                payer,
            }
            | Op::PayWrongAmount {
                charge,
                order,
                payer,
            } => {
                let right = matches!(op, Op::Pay { .. }) && order < 4;
                let stars = if matches!(op, Op::Pay { .. }) { 50 } else { 49 };
                let payment =
                    IncomingPayment::in_stars(&format!("c{charge}"), &format!("o{order}"), stars);
                ledger.pay(buyer(payer), payment).await.unwrap();
                if model.seen.insert(charge) {
                    if right {
                        model.credited.push((charge, payer));
                        model.balances[payer] += 100;
                    } else {
                        model.held.insert(charge);
                    }
                }
            }
            Op::Refund { charge } => {
                ledger
                    .refund(UserId(BUYERS[0]), &format!("c{charge}").into(), Stars(50))
                    .await
                    .unwrap();
                model.seen.insert(charge);
                if let Some((_, payer)) = model.credited.iter().find(|(c, _)| *c == charge)
                    && model.refunded.insert(charge)
                {
                    model.balances[*payer] -= 100;
                }
            }
            Op::Debit { amount, payer } => {
                let available = model.balances[payer] - model.reserved[payer];
                let decision = operate(
                    &ledger,
                    Operation::Debit {
                        id: format!("d{step}"),
                        user_id: UserId(BUYERS[payer]),
                        amount: Ndn::new(amount).unwrap(),
                        reason: "spend".into(),
                        reference: None,
                        metadata: None,
                    },
                )
                .await;
                prop_assert_eq!(
                    matches!(decision, Decision::Applied(_)),
                    available >= amount
                );
                if available >= amount {
                    model.balances[payer] -= amount;
                }
            }
            Op::Grant { amount, payer } => {
                operate(
                    &ledger,
                    Operation::Grant {
                        id: format!("g{step}"),
                        user_id: UserId(BUYERS[payer]),
                        amount: Ndn::new(amount).unwrap(),
                        reason: "gift".into(),
                    },
                )
                .await;
                model.balances[payer] += amount;
                model.grants += 1;
            }
            Op::Hold { amount, payer } => {
                let id = format!("h{step}");
                let available = model.balances[payer] - model.reserved[payer];
                let decision = operate(
                    &ledger,
                    Operation::Hold {
                        id: HoldId::from(id.clone()),
                        user_id: UserId(BUYERS[payer]),
                        amount: Ndn::new(amount).unwrap(),
                        reason: None,
                        reference: None,
                        expires_at: i64::MAX / 2,
                        owner: SERVICE,
                    },
                )
                .await;
                prop_assert_eq!(
                    matches!(decision, Decision::Applied(_)),
                    available >= amount
                );
                if available >= amount {
                    model.reserved[payer] += amount;
                    model.holds.push((id, payer, amount, true));
                }
            }
            Op::Capture { hold } | Op::Void { hold } => {
                let Some((id, payer, amount, active)) = model.holds.get(hold).cloned() else {
                    continue;
                };
                let capture = matches!(op, Op::Capture { .. });
                let operation = if capture {
                    Operation::Capture {
                        hold_id: HoldId::from(id),
                        amount: None,
                        by: SERVICE,
                    }
                } else {
                    Operation::Void {
                        hold_id: HoldId::from(id),
                        by: SERVICE,
                    }
                };
                let decision = operate(&ledger, operation).await;
                // A capture must leave available at zero or above: after a refund took back
                // reserved NDN, it waits until the buyer has them again (or is voided).
                let available = model.balances[payer] - model.reserved[payer];
                let applies = active && (!capture || available >= 0);
                prop_assert_eq!(
                    matches!(decision, Decision::Applied(_)),
                    applies,
                    "{:?}",
                    decision
                );
                if applies {
                    model.reserved[payer] -= amount;
                    if capture {
                        model.balances[payer] -= amount;
                    }
                    model.holds[hold].3 = false;
                }
            }
        }
        for (index, id) in BUYERS.iter().enumerate() {
            let balance = store.balance(UserId(*id)).await.unwrap();
            prop_assert_eq!(
                balance,
                balance_from_transfers(&store, *id).await,
                "the cached balance is the sum of the transfers"
            );
            prop_assert_eq!(balance, model.balances[index], "buyer {}", id);
            let funds = store.funds(UserId(*id)).await.unwrap().unwrap();
            prop_assert_eq!(funds.held, model.reserved[index], "held by buyer {}", id);
        }
        let report = server::ledger::verify::verify(&store).await.unwrap();
        prop_assert!(report.is_clean(), "{}", report);
    }
    let credits = scalar(
        &store,
        "SELECT COUNT(*) FROM transfers WHERE kind = 'purchase'",
    )
    .await;
    let distinct = scalar(
        &store,
        "SELECT COUNT(DISTINCT reference) FROM transfers WHERE kind = 'purchase'",
    )
    .await;
    prop_assert_eq!(credits, distinct, "no charge credited twice");
    prop_assert_eq!(credits, model.credited.len() as i64);
    let refunds = scalar(
        &store,
        "SELECT COUNT(*) FROM transfers WHERE kind = 'refund'",
    )
    .await;
    prop_assert_eq!(
        refunds,
        model.refunded.len() as i64,
        "no refund applied twice"
    );
    let notices = scalar(&store, "SELECT COUNT(*) FROM outbox").await;
    prop_assert_eq!(
        notices,
        (model.credited.len() + model.held.len() + model.refunded.len() + model.grants) as i64,
        "one notice per credit, held payment, refund and grant"
    );
    assert_books_balance(&store).await;
    Ok(())
}

async fn operate(ledger: &server::ledger::Ledger, operation: Operation) -> Decision {
    ledger
        .operate(Request {
            operation,
            key: None,
        })
        .await
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_books_balance_for_any_interleaving(ops in prop::collection::vec(op(), 1..32)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}
