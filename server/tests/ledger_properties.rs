//! The books under any interleaving of credits, duplicate deliveries, second payments, held
//! payments and refunds, by two buyers (property tests on a real SQLite store, through the
//! ledger's one door): every balance is the sum of its transfers, the books sum to zero, and
//! `ledger verify` finds nothing.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use app::api::Package;
use proptest::prelude::*;
use server::store::Store;
use server::wallet::model::{Buyer, IncomingPayment};
use support::{NO_LIMITS, assert_books_balance, balance_from_transfers, ledger, scalar};

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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..10, 0u8..5, 0usize..2)
            .prop_map(|(charge, order, payer)| Op::Pay { charge, order, payer }),
        1 => (0u8..10, 0u8..4, 0usize..2)
            .prop_map(|(charge, order, payer)| Op::PayWrongAmount { charge, order, payer }),
        2 => (0u8..10).prop_map(|charge| Op::Refund { charge }),
    ]
}

/// What the model says a charge became.
#[derive(Default)]
struct Model {
    seen: HashSet<u8>,
    /// Charges credited, with their payer.
    credited: Vec<(u8, usize)>,
    held: HashSet<u8>,
    refunded: HashSet<u8>,
}

impl Model {
    fn balance(&self, payer: usize) -> i64 {
        self.credited
            .iter()
            .filter(|(charge, by)| *by == payer && !self.refunded.contains(charge))
            .count() as i64
            * 100
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/ledger.db", dir.path().display()), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let ledger = ledger(&store);
    let buyer = |index: usize| Buyer {
        id: BUYERS[index],
        first_name: format!("P{index}"),
        username: None,
        language_code: None,
    };
    store.upsert_buyer(&buyer(0)).await.unwrap();
    let package = Package {
        id: "ndn-100".into(),
        ndn: 100,
        stars: 50,
        title: "100 NDN".into(),
    };
    for order in 0..4 {
        store
            .create_order(
                &format!("o{order}"),
                BUYERS[0],
                &package,
                Duration::from_secs(600),
                NO_LIMITS,
                None,
            )
            .await
            .unwrap();
    }

    let mut model = Model::default();
    for op in ops {
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
                    } else {
                        model.held.insert(charge);
                    }
                }
            }
            Op::Refund { charge } => {
                ledger
                    .refund(BUYERS[0], &format!("c{charge}"), 50)
                    .await
                    .unwrap();
                model.seen.insert(charge);
                if model.credited.iter().any(|(c, _)| *c == charge) {
                    model.refunded.insert(charge);
                }
            }
        }
        for (index, id) in BUYERS.iter().enumerate() {
            let balance = store.balance(*id).await.unwrap();
            prop_assert_eq!(
                balance,
                balance_from_transfers(&store, *id).await,
                "the cached balance is the sum of the transfers"
            );
            prop_assert_eq!(balance, model.balance(index), "buyer {}", id);
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
        (model.credited.len() + model.held.len() + model.refunded.len()) as i64,
        "one notice per credit, held payment and refund"
    );
    assert_books_balance(&store).await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_books_balance_for_any_interleaving(ops in prop::collection::vec(op(), 1..28)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}
