//! Group commit: concurrent payments share transactions, each answered only after its commit.

mod support;

use app::api::Package;
use server::bot_text::BotNotice;
use server::store::{Buyer, IncomingPayment, PaymentOutcome, Store};
use support::*;

on_both_databases!(concurrent_payments_share_commits_and_duplicates_in_a_batch_credit_once);

async fn concurrent_payments_share_commits_and_duplicates_in_a_batch_credit_once(
    database: Database,
) {
    let store = Store::connect(&database.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let package = Package {
        id: "ndn-100".into(),
        ndn: 100,
        stars: 50,
        title: "100 NDN".into(),
    };
    let buyer = |id: i64| Buyer {
        id,
        first_name: "B".into(),
        username: None,
        language_code: Some("en".into()),
    };
    store.upsert_buyer(&buyer(BUYER)).await.unwrap();
    for i in 0..100 {
        store
            .create_order(
                &format!("order-{i}"),
                BUYER,
                &package,
                std::time::Duration::from_secs(600),
            )
            .await
            .unwrap();
    }
    // 100 distinct payments, each also sent a second time, all at once.
    let jobs = (0..200).map(|i| {
        let store = store.clone();
        let n = i % 100;
        async move {
            let payment = IncomingPayment {
                charge_id: format!("charge-{n}"),
                provider_charge_id: None,
                payload: format!("order-{n}"),
                currency: "XTR".into(),
                stars: 50,
            };
            store
                .apply_payment(buyer(BUYER), payment, &BotNotice)
                .await
                .unwrap()
        }
    });
    let outcomes = futures::future::join_all(jobs).await;
    let credited = outcomes
        .iter()
        .filter(|o| matches!(o, PaymentOutcome::Credited { .. }))
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| **o == PaymentOutcome::Duplicate)
        .count();
    assert_eq!((credited, duplicates), (100, 100));
    assert_eq!(store.balance(BUYER).await.unwrap(), 100 * 100);
    let commits = store.payment_commits();
    assert!(
        commits < 100,
        "200 concurrent payments took {commits} commits"
    );
    // The balances the buyer was told are exactly 100, 200, … 10 000: none skipped, none twice.
    let mut told: Vec<i64> = outcomes
        .iter()
        .filter_map(|o| match o {
            PaymentOutcome::Credited { balance, .. } => Some(*balance),
            _ => None,
        })
        .collect();
    told.sort_unstable();
    assert_eq!(told, (1..=100).map(|k| k * 100).collect::<Vec<_>>());
}
