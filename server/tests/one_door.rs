//! One door for every balance change: a credit made by reconciliation and a debit made by
//! `server refund` have the webhook's effects — the live event in the buyer's open stream, the
//! metric, the log line and the notice — served or from the command line, on both databases.

mod support;

use std::time::Duration;

use serde_json::Value;
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(
    a_credit_by_reconciliation_inside_the_server_has_the_webhooks_effects,
    the_refund_and_reconcile_commands_reach_the_open_mini_app,
    a_refund_through_the_ledger_counts_logs_and_tells_the_app,
);

fn order_event(order_id: &str, balance: i64, status: &str) -> impl Fn(&Value) -> bool {
    let order_id = order_id.to_owned();
    let status = status.to_owned();
    move |event: &Value| {
        event["order_id"] == order_id.as_str()
            && event["balance"] == balance
            && event["status"] == status.as_str()
    }
}

fn metric(app: &TestApp, line: &str) -> bool {
    app.server.state.metrics.render().lines().any(|l| l == line)
}

/// Waits (up to 5 s) for a log line containing every one of `parts`.
async fn logged(logs: &CapturedLogs, parts: &[&str]) -> bool {
    for _ in 0..100 {
        if logs
            .text()
            .lines()
            .any(|line| parts.iter().all(|part| line.contains(part)))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn a_credit_by_reconciliation_inside_the_server_has_the_webhooks_effects(database: Database) {
    let logs = captured_logs();
    let app = TestApp::spawn_configured(database, &[("RECONCILE_INTERVAL", "1")]).await;
    let stream = EventStream::open(&app.http, &app.base, BUYER).await;
    // Paid at Telegram; the webhook never comes.
    let order_id = app.create_order(BUYER, "ndn-500").await;
    let charge = app.telegram.record_charge(UserId(BUYER), 225, &order_id);

    let event = stream.wait_for(order_event(&order_id, 500, "paid")).await;
    assert!(event.is_some(), "no live event: {:?}", stream.events());
    assert!(metric(&app, "ndn_payments_credited_total 1"));
    assert!(metric(&app, "ndn_stars_credited_total 225"));
    assert!(logged(&logs, &["payment credited", &charge, &order_id]).await);
    let messages = app.messages_once_drained(1).await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].text.starts_with("+500 NDN"),
        "{}",
        messages[0].text
    );
    assert_books_balance(&app.server.state.store).await;
}

async fn the_refund_and_reconcile_commands_reach_the_open_mini_app(database: Database) {
    let app = TestApp::spawn(database).await;
    let stream = EventStream::open(&app.http, &app.base, BUYER).await;
    let order_id = app.create_order(BUYER, "ndn-500").await;
    let charge = app.telegram.record_charge(UserId(BUYER), 225, &order_id);
    app.deliver(&successful_payment(1, BUYER, &order_id, 225, &charge))
        .await;
    assert!(
        stream
            .wait_for(order_event(&order_id, 500, "paid"))
            .await
            .is_some()
    );

    // Another process: its change reaches this server's stream through the database.
    let (code, output) = app.cli_logging(&["refund", &charge], "info").await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output
            .lines()
            .any(|line| line.contains("refund debited") && line.contains(&charge)),
        "{output}"
    );
    let event = stream.wait_for(order_event(&order_id, 0, "refunded")).await;
    assert!(event.is_some(), "no live event: {:?}", stream.events());

    // A payment whose webhook never came, found by `server reconcile`.
    let lost = app.create_order(BUYER, "ndn-100").await;
    let lost_charge = app.telegram.record_charge(UserId(BUYER), 50, &lost);
    let (code, output) = app.cli_logging(&["reconcile"], "info").await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output
            .lines()
            .any(|line| line.contains("payment credited") && line.contains(&lost_charge)),
        "{output}"
    );
    let event = stream.wait_for(order_event(&lost, 100, "paid")).await;
    assert!(event.is_some(), "no live event: {:?}", stream.events());
    // The server's notifier sends what the commands queued: the credit, the refund, the credit.
    let messages = app.messages_once_drained(3).await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[1].text.starts_with("Refund: 225 ⭐"),
        "{messages:?}"
    );
    assert_books_balance(&app.server.state.store).await;
}

async fn a_refund_through_the_ledger_counts_logs_and_tells_the_app(database: Database) {
    let logs = captured_logs();
    let app = TestApp::spawn(database).await;
    let stream = EventStream::open(&app.http, &app.base, BUYER).await;
    let order_id = app.create_order(BUYER, "ndn-100").await;
    let charge = app.telegram.record_charge(UserId(BUYER), 50, &order_id);
    app.deliver(&successful_payment(1, BUYER, &order_id, 50, &charge))
        .await;
    // What `server refund` runs, in the server's own process.
    let state = &app.server.state;
    let report = server::bot::operator::refund(&state.bot, &state.ledger, &charge.as_str().into())
        .await
        .unwrap();
    assert!(
        report.contains("debited 100 NDN, balance now 0"),
        "{report}"
    );
    assert!(metric(&app, "ndn_refunds_applied_total 1"));
    assert!(logged(&logs, &["refund debited", &charge]).await);
    let event = stream.wait_for(order_event(&order_id, 0, "refunded")).await;
    assert!(event.is_some(), "no live event: {:?}", stream.events());
    assert_books_balance(&state.store).await;
}
