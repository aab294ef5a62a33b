//! Ledger invariants under any interleaving of credits, duplicate deliveries, second payments
//! and refunds (property tests on a real SQLite store).

mod support;

use std::collections::HashSet;
use std::time::Duration;

use app::api::Package;
use proptest::prelude::*;
use server::bot_text::BotNotice;
use server::store::{Buyer, IncomingPayment, Store};
use support::{NO_LIMITS, scalar};

const BUYER: i64 = 42;

#[derive(Debug, Clone)]
enum Op {
    /// Charge `charge` pays order `order` (a repeated charge is a redelivery; a new charge on a
    /// paid order is a second payment of the same link).
    Pay {
        charge: u8,
        order: u8,
    },
    Refund {
        charge: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..8, 0u8..4).prop_map(|(charge, order)| Op::Pay { charge, order }),
        1 => (0u8..8).prop_map(|charge| Op::Refund { charge }),
    ]
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/ledger.db", dir.path().display()), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let buyer = Buyer {
        id: BUYER,
        first_name: "P".into(),
        username: None,
        language_code: None,
    };
    store.upsert_buyer(&buyer).await.unwrap();
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
                BUYER,
                &package,
                Duration::from_secs(600),
                NO_LIMITS,
                None,
            )
            .await
            .unwrap();
    }

    // The model: a charge is credited if its first event is a payment; refunded once after.
    let (mut seen, mut credited, mut refunded) = (HashSet::new(), HashSet::new(), HashSet::new());
    for op in ops {
        match op {
            Op::Pay { charge, order } => {
                let payment = IncomingPayment {
                    charge_id: format!("c{charge}"),
                    provider_charge_id: None,
                    payload: format!("o{order}"),
                    currency: "XTR".into(),
                    stars: 50,
                };
                store
                    .apply_payment(buyer.clone(), payment, &BotNotice)
                    .await
                    .unwrap();
                if seen.insert(charge) {
                    credited.insert(charge);
                }
            }
            Op::Refund { charge } => {
                store
                    .apply_refund(BUYER, &format!("c{charge}"), 50, &BotNotice)
                    .await
                    .unwrap();
                seen.insert(charge);
                if credited.contains(&charge) {
                    refunded.insert(charge);
                }
            }
        }
        let balance = store.balance(BUYER).await.unwrap();
        let ledger = scalar(
            &store,
            "SELECT COALESCE(CAST(SUM(delta) AS BIGINT), 0) FROM ledger",
        )
        .await;
        prop_assert_eq!(balance, ledger, "the balance is the sum of the ledger");
        prop_assert_eq!(
            balance,
            100 * (credited.len() as i64 - refunded.len() as i64)
        );
    }
    let credits = scalar(&store, "SELECT COUNT(*) FROM ledger WHERE kind = 'payment'").await;
    let distinct = scalar(
        &store,
        "SELECT COUNT(DISTINCT charge_id) FROM ledger WHERE kind = 'payment'",
    )
    .await;
    prop_assert_eq!(credits, distinct, "no charge credited twice");
    prop_assert_eq!(credits, credited.len() as i64);
    let refunds = scalar(&store, "SELECT COUNT(*) FROM ledger WHERE kind = 'refund'").await;
    prop_assert_eq!(refunds, refunded.len() as i64, "no refund applied twice");
    let notices = scalar(&store, "SELECT COUNT(*) FROM outbox").await;
    prop_assert_eq!(
        notices,
        (credited.len() + refunded.len()) as i64,
        "one notice per credit and refund"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ledger_invariants_hold_for_any_interleaving(ops in prop::collection::vec(op(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops))?;
    }
}
