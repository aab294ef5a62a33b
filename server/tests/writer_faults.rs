//! The money path under faults inside the group-commit writers, on both databases: a sum past
//! what the books can count is refused and changes nothing; a batch that panics fails alone and
//! the writer goes on with the next; a writer that stops makes `/readyz` say so, and a retry
//! of what it applied before still gets its answer.

mod support;

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use server::keys::{self, Scope};
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(
    a_grant_past_the_largest_balance_is_refused_and_changes_nothing,
    a_panicking_batch_fails_alone_and_later_batches_are_applied,
    readyz_is_unavailable_while_a_writer_is_down,
);

const SECOND: i64 = 5_550_002;

async fn grant(
    app: &TestApp,
    key: &str,
    user_id: i64,
    amount: i64,
    idempotency: &str,
) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/v1/credits", app.base))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency)
        .json(&json!({ "user_id": user_id, "amount": amount, "reason": "bonus" }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn granting_key(app: &TestApp) -> String {
    keys::create(
        &app.server.state.store,
        "granter",
        &[Scope::Grant, Scope::Read],
    )
    .await
    .unwrap()
}

async fn a_grant_past_the_largest_balance_is_refused_and_changes_nothing(database: Database) {
    let app = TestApp::spawn(database).await;
    app.balance(BUYER).await;
    app.balance(SECOND).await;
    // The books as they would be after grants worth i64::MAX - 5 (too many to make one by one):
    // the transfer and the cached balance, consistent with each other.
    let big = i64::MAX - 5;
    let pool = app.server.state.store.pool();
    sqlx::query(
        "INSERT INTO transfers (debit_account, credit_account, amount, kind, reference, stars,
             created_at) VALUES (-3, $1, $2, 'grant', 'crd_seed', 0, $3)",
    )
    .bind(BUYER)
    .bind(big)
    .bind(server::clock::now_ms())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE users SET balance = $1 WHERE id = $2")
        .bind(big)
        .bind(BUYER)
        .execute(pool)
        .await
        .unwrap();
    let key = granting_key(&app).await;
    let transfers = app.count("SELECT COUNT(*) FROM transfers").await;

    let (status, refused) = grant(&app, &key, BUYER, 10, "past-the-top").await;
    assert_eq!(
        (status, &refused["error"]),
        (409, &json!("balance_limit")),
        "{refused}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM transfers").await, transfers);
    assert_eq!(
        app.count(&format!("SELECT balance FROM users WHERE id = {BUYER}"))
            .await,
        big
    );
    // Up to the top is fine; the writer goes on with everyone else.
    let (status, answer) = grant(&app, &key, BUYER, 5, "to-the-top").await;
    assert_eq!(
        (status, &answer["account"]["balance"]),
        (201, &json!(i64::MAX))
    );
    let (status, answer) = grant(&app, &key, SECOND, 10, "someone-else").await;
    assert_eq!((status, &answer["account"]["balance"]), (201, &json!(10)));
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
}

async fn a_panicking_batch_fails_alone_and_later_batches_are_applied(database: Database) {
    let app =
        TestApp::spawn_configured(database, &[("METRICS_TOKEN", "scrape-the-metrics-token")]).await;
    app.balance(SECOND).await;
    let key = granting_key(&app).await;
    let (payments, operations) = app.server.state.ledger.writer_faults();

    // A service request whose batch panics: a 500, nothing written, then the writer goes on.
    operations.panics.store(1, Ordering::SeqCst);
    let (status, answer) = grant(&app, &key, SECOND, 10, "panics").await;
    assert_eq!(
        (status, &answer["error"]),
        (500, &json!("internal")),
        "{answer}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM transfers").await, 0);
    for (index, expected) in [(1, 10), (2, 20)] {
        let (status, answer) = grant(&app, &key, SECOND, 10, &format!("after-{index}")).await;
        assert_eq!(
            (status, &answer["account"]["balance"]),
            (201, &json!(expected))
        );
    }
    // The same key again, now that the writer is back: applied once.
    let (status, answer) = grant(&app, &key, SECOND, 10, "panics").await;
    assert_eq!((status, &answer["account"]["balance"]), (201, &json!(30)));

    // A payment whose batch panics: Telegram gets a 5xx and delivers again; credited once.
    payments.panics.store(1, Ordering::SeqCst);
    let order_id = app.create_order(BUYER, "ndn-500").await;
    let charge = app.telegram.record_charge(UserId(BUYER), 225, &order_id);
    let update = successful_payment(7, BUYER, &order_id, 225, &charge);
    let (status, _) = app.deliver(&update).await;
    assert!(status >= 500, "{status}");
    assert_eq!(app.balance(BUYER).await, 0);
    assert_eq!(app.deliver(&update).await.0, 200);
    assert_eq!(app.deliver(&update).await.0, 200);
    assert_eq!(app.balance(BUYER).await, 500);

    assert_eq!(app.server.state.ledger.writer_panics(), 2);
    let metrics = app.metrics("scrape-the-metrics-token").await;
    assert!(metrics.contains("ndn_writer_panics 2"), "{metrics}");
    assert_eq!(app.status_of("/readyz").await, 200, "both writers run");
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
}

async fn readyz_is_unavailable_while_a_writer_is_down(database: Database) {
    let app = TestApp::spawn(database).await;
    app.balance(SECOND).await;
    let key = granting_key(&app).await;
    assert_eq!(app.status_of("/readyz").await, 200);
    let (status, first) = grant(&app, &key, SECOND, 10, "before-the-fault").await;
    assert_eq!(status, 201, "{first}");
    let (_, operations) = app.server.state.ledger.writer_faults();
    operations.crash.store(true, Ordering::SeqCst);
    let (status, _) = grant(&app, &key, SECOND, 10, "lost-writer").await;
    assert_eq!(status, 500);
    assert_eq!(app.status_of("/readyz").await, 503);
    assert_eq!(app.count("SELECT COUNT(*) FROM transfers").await, 1);
    // A retry of what was applied before needs no writer: it gets its first answer again.
    let (status, again) = grant(&app, &key, SECOND, 10, "before-the-fault").await;
    assert_eq!((status, &again), (201, &first));
    assert_eq!(app.count("SELECT COUNT(*) FROM transfers").await, 1);
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
}
