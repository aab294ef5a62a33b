//! Group commit: concurrent payments share transactions, each answered only after its commit.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use app::api::Package;
use server::live::BalanceBroadcast;
use server::store::{BALANCE_CHANNEL, Engine, Store};
use server::wallet::ids::{OrderId, UserId};
use server::wallet::model::{Buyer, IncomingPayment, PaymentOutcome};
use support::*;

on_both_databases!(
    concurrent_payments_share_commits_and_duplicates_in_a_batch_credit_once,
    a_mixed_batch_gives_what_one_payment_at_a_time_gives,
    a_payment_that_fails_inside_a_batch_fails_alone,
);

async fn concurrent_payments_share_commits_and_duplicates_in_a_batch_credit_once(
    database: Database,
) {
    let store = open_store(&database).await;
    add_orders(&store, BUYER, (0..100).map(|i| format!("order-{i}"))).await;
    // On PostgreSQL, every credit is announced to the other instances by its transaction.
    let mut listener = match store.engine() {
        Engine::Postgres => {
            let mut listener = sqlx::postgres::PgListener::connect(&database.url)
                .await
                .unwrap();
            listener.listen(BALANCE_CHANNEL).await.unwrap();
            Some(listener)
        }
        Engine::Sqlite => None,
    };
    // 100 distinct payments, each also sent a second time, all at once.
    let ledger = ledger(&store);
    let jobs = (0..200).map(|i| {
        let ledger = ledger.clone();
        let n = i % 100;
        async move {
            let payment = payment(&format!("charge-{n}"), &format!("order-{n}"), 50);
            ledger.pay(buyer(BUYER, "en"), payment).await.unwrap()
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
    assert_eq!(store.balance(UserId(BUYER)).await.unwrap(), 100 * 100);
    let commits = ledger.payment_commits();
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

    // The announced balances are the same ones, each once, in notifications under
    // PostgreSQL's 8000-byte limit (a batch of many needs several).
    if let Some(listener) = listener.as_mut() {
        let mut heard = Vec::new();
        while heard.len() < 100 {
            let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .expect("all credits announced within 5 s")
                .unwrap();
            assert!(notification.payload().len() < 8000);
            let changes: Vec<BalanceBroadcast> =
                serde_json::from_str(notification.payload()).unwrap();
            heard.extend(changes.into_iter().map(|change| {
                assert_eq!(change.user_id, UserId(BUYER));
                change.event.balance
            }));
        }
        heard.sort_unstable();
        assert_eq!(heard, told);
    }
    assert_books_balance(&store).await;
}

async fn open_store(database: &Database) -> Store {
    let store = Store::connect(&database.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// The buyer, with an open 50-Star order of 100 NDN for each id.
async fn add_orders(store: &Store, buyer_id: i64, order_ids: impl IntoIterator<Item = String>) {
    store.upsert_buyer(&buyer(buyer_id, "en")).await.unwrap();
    for order_id in order_ids {
        store
            .create_order(
                &OrderId::from(order_id),
                UserId(buyer_id),
                &package(),
                Duration::from_secs(600),
                NO_LIMITS,
                None,
            )
            .await
            .unwrap();
    }
}

fn package() -> Package {
    Package {
        id: "ndn-100".into(),
        ndn: 100,
        stars: 50,
        title: "100 NDN".into(),
    }
}

fn buyer(id: i64, language: &str) -> Buyer {
    Buyer {
        id: UserId(id),
        first_name: format!("Buyer {id}"),
        username: Some(format!("user{id}")),
        language_code: Some(language.into()),
    }
}

fn payment(charge: &str, payload: &str, stars: i64) -> IncomingPayment {
    IncomingPayment::in_stars(charge, payload, stars)
}

/// Several buyers (two of them unknown until they pay), first and second payments of the same
/// order, wrong amounts, unknown payloads, each delivered three times, all at once: the result
/// is what applying them one at a time gives, whatever batches they fell into.
async fn a_mixed_batch_gives_what_one_payment_at_a_time_gives(database: Database) {
    let store = open_store(&database).await;
    let known = [1001_i64, 1002, 1003];
    let unknown = [2001_i64, 2002];
    for id in known {
        add_orders(&store, id, (0..10).map(|n| format!("o{id}-{n}"))).await;
    }
    // (payer, charge, payload, stars, credited?)
    let mut cases: Vec<(i64, String, String, i64, bool)> = Vec::new();
    for id in known {
        for n in 0..10 {
            let order = format!("o{id}-{n}");
            let stars = if n == 7 { 49 } else { 50 };
            cases.push((id, format!("c{id}-{n}"), order.clone(), stars, n != 7));
            if n % 3 == 0 {
                // A second payment of the same invoice link: its own purchase.
                cases.push((id, format!("c{id}-{n}-again"), order, 50, true));
            }
        }
    }
    for id in unknown {
        cases.push((id, format!("c{id}-lost"), "no-such-order".into(), 50, false));
    }
    let ledger = ledger(&store);
    let deliveries = cases.iter().cycle().take(cases.len() * 3).map(|case| {
        let ledger = ledger.clone();
        let (payer, charge, payload, stars, _) = case.clone();
        async move {
            let outcome = ledger
                .pay(buyer(payer, "ru"), payment(&charge, &payload, stars))
                .await
                .unwrap();
            (payer, charge, outcome)
        }
    });
    let outcomes = futures::future::join_all(deliveries).await;

    let mut told: HashMap<i64, Vec<i64>> = HashMap::new();
    for (payer, charge, _, _, credited) in &cases {
        let results: Vec<&PaymentOutcome> = outcomes
            .iter()
            .filter(|(_, c, _)| c == charge)
            .map(|(_, _, outcome)| outcome)
            .collect();
        let firsts: Vec<&&PaymentOutcome> = results
            .iter()
            .filter(|o| ***o != PaymentOutcome::Duplicate)
            .collect();
        assert_eq!(firsts.len(), 1, "{charge}: {results:?}");
        match firsts[0] {
            PaymentOutcome::Credited {
                user_id,
                ndn,
                balance,
                ..
            } => {
                assert!(credited, "{charge} should be held");
                assert_eq!((user_id.get(), ndn.get()), (*payer, 100));
                told.entry(*payer).or_default().push(*balance);
            }
            PaymentOutcome::Held { user_id, .. } => {
                assert!(!credited, "{charge} should be credited");
                assert_eq!(user_id.get(), *payer);
            }
            PaymentOutcome::Duplicate => unreachable!(),
        }
    }
    for id in known.iter().chain(&unknown) {
        let credits = cases.iter().filter(|c| c.0 == *id && c.4).count() as i64;
        assert_eq!(
            store.balance(UserId(*id)).await.unwrap(),
            credits * 100,
            "buyer {id}"
        );
        assert_eq!(
            balance_from_transfers(&store, *id).await,
            credits * 100,
            "transfers of buyer {id}"
        );
        // Each credit told the balance right after it: 100, 200, … with none twice.
        let mut balances = told.remove(id).unwrap_or_default();
        balances.sort_unstable();
        assert_eq!(balances, (1..=credits).map(|k| k * 100).collect::<Vec<_>>());
        // The latest profile is stored, including for buyers first seen paying.
        let language = scalar(
            &store,
            &format!("SELECT COUNT(*) FROM users WHERE id = {id} AND language_code = 'ru'"),
        )
        .await;
        assert_eq!(language, 1, "profile of buyer {id}");
    }
    let count = |sql: &'static str| scalar(&store, sql);
    assert_eq!(
        count("SELECT COUNT(*) FROM payments").await,
        cases.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM payments WHERE status = 'held'").await,
        cases.iter().filter(|c| !c.4).count() as i64
    );
    // Every order with a right payment is paid; the one paid the wrong amount is not.
    assert_eq!(
        count("SELECT COUNT(*) FROM orders WHERE status = 'paid' AND paid_at IS NOT NULL").await,
        27
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM orders WHERE status = 'pending'").await,
        3
    );
    // One notice per charge, none for the redeliveries.
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox").await,
        cases.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox WHERE text LIKE '+100 NDN — баланс%'").await,
        cases.iter().filter(|c| c.4).count() as i64
    );
    assert_books_balance(&store).await;
}

/// A payment the database refuses fails by itself; the payments that shared its transaction
/// are credited once the batch is retried without it.
async fn a_payment_that_fails_inside_a_batch_fails_alone(database: Database) {
    let store = open_store(&database).await;
    let refuse = match store.engine() {
        Engine::Sqlite => vec![
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON payments
             WHEN NEW.charge_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned charge'); END",
        ],
        Engine::Postgres => vec![
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
             BEGIN
                 IF NEW.charge_id = 'poison' THEN RAISE EXCEPTION 'poisoned charge'; END IF;
                 RETURN NEW;
             END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON payments
             FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
    };
    for statement in refuse {
        sqlx::query(statement).execute(store.pool()).await.unwrap();
    }
    add_orders(&store, BUYER, (0..60).map(|n| format!("order-{n}"))).await;
    let ledger = ledger(&store);
    let deliveries = (0..60).map(|n| {
        let ledger = ledger.clone();
        let charge = if n == 30 {
            "poison".to_owned()
        } else {
            format!("charge-{n}")
        };
        async move {
            let result = ledger
                .pay(
                    buyer(BUYER, "en"),
                    payment(&charge, &format!("order-{n}"), 50),
                )
                .await;
            (charge, result)
        }
    });
    let results = futures::future::join_all(deliveries).await;
    for (charge, result) in &results {
        if charge == "poison" {
            let error = result.as_ref().expect_err("the poisoned charge fails");
            assert!(error.to_string().contains("poisoned"), "{error}");
        } else {
            assert!(
                matches!(result, Ok(PaymentOutcome::Credited { .. })),
                "{charge}: {result:?}"
            );
        }
    }
    assert_eq!(store.balance(UserId(BUYER)).await.unwrap(), 59 * 100);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM payments").await, 59);
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM payments WHERE charge_id = 'poison'"
        )
        .await,
        0
    );
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM transfers").await, 59);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM outbox").await, 59);
    // It did share a transaction with others, and only that transaction was split.
    assert_eq!(ledger.payment_batches_split(), 1);
    assert_books_balance(&store).await;
}
