//! `server ledger verify` names each kind of broken book it promises to catch, on both
//! databases: each test corrupts a real database the way a bug or a hand-edit would, and reads
//! the discrepancy from the report (exit 4).

mod support;

use server::wallet::ids::UserId;
use support::*;

on_both_databases!(
    a_tampered_cached_balance_is_named,
    a_second_transfer_for_one_charge_is_named,
    an_overdraft_by_anything_but_a_refund_is_named,
    a_held_amount_that_disagrees_with_the_open_holds_is_named,
);

/// A buyer with one credited purchase of 500 NDN; its charge id. The books verify clean.
async fn clean_books(app: &TestApp) -> String {
    let order_id = app.create_order(BUYER, "ndn-500").await;
    let charge = app.telegram.record_charge(UserId(BUYER), 225, &order_id);
    let (status, _) = app
        .deliver(&successful_payment(1, BUYER, &order_id, 225, &charge))
        .await;
    assert_eq!(status, 200);
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
    charge
}

async fn corrupt(app: &TestApp, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(app.server.state.store.pool())
        .await
        .unwrap();
}

/// `ledger verify` fails, naming every one of `problems`.
async fn verify_names(app: &TestApp, problems: &[&str]) {
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 4, "{report}");
    for problem in problems {
        assert!(report.contains(problem), "`{problem}` not in:\n{report}");
    }
}

async fn a_tampered_cached_balance_is_named(database: Database) {
    let app = TestApp::spawn(database).await;
    clean_books(&app).await;
    corrupt(
        &app,
        &format!("UPDATE users SET balance = 507 WHERE id = {BUYER}"),
    )
    .await;
    verify_names(
        &app,
        &[
            &format!("buyer {BUYER}: cached balance 507 NDN, transfers say 500 NDN"),
            "the books sum to 7 NDN, not 0",
        ],
    )
    .await;
}

async fn a_second_transfer_for_one_charge_is_named(database: Database) {
    let app = TestApp::spawn(database).await;
    let charge = clean_books(&app).await;
    // A refund transfer for a payment still marked credited, its balance moved with it: the
    // sums agree, the charge does not.
    corrupt(
        &app,
        &format!(
            "INSERT INTO transfers (debit_account, credit_account, amount, kind, reference,
                 stars, created_at) VALUES ({BUYER}, -2, 500, 'refund', '{charge}', 225, 0)"
        ),
    )
    .await;
    corrupt(
        &app,
        &format!("UPDATE users SET balance = 0 WHERE id = {BUYER}"),
    )
    .await;
    verify_names(
        &app,
        &[&format!(
            "charge {charge}: payment credited with 500 NDN has 1 matching purchase and 1 \
             matching refund transfers (2 in all)"
        )],
    )
    .await;
}

async fn an_overdraft_by_anything_but_a_refund_is_named(database: Database) {
    let app = TestApp::spawn(database).await;
    clean_books(&app).await;
    corrupt(
        &app,
        &format!(
            "INSERT INTO transfers (debit_account, credit_account, amount, kind, reference,
                 stars, created_at) VALUES ({BUYER}, -4, 900, 'spend', 'dbt_too_much', 0, 0)"
        ),
    )
    .await;
    corrupt(
        &app,
        &format!("UPDATE users SET balance = -400 WHERE id = {BUYER}"),
    )
    .await;
    let transfer = app
        .count("SELECT MAX(id) FROM transfers WHERE reference = 'dbt_too_much'")
        .await;
    verify_names(
        &app,
        &[&format!(
            "transfer {transfer} left buyer {BUYER} at -400 NDN; only a refund may overdraw"
        )],
    )
    .await;
}

async fn a_held_amount_that_disagrees_with_the_open_holds_is_named(database: Database) {
    let app = TestApp::spawn(database).await;
    clean_books(&app).await;
    corrupt(
        &app,
        &format!("UPDATE users SET held = 50 WHERE id = {BUYER}"),
    )
    .await;
    verify_names(
        &app,
        &[&format!(
            "buyer {BUYER}: 50 NDN cached as held, active holds reserve 0 NDN"
        )],
    )
    .await;
}
