//! Money decisions racing each other on one thing, all sent at once (`join_all`), then the
//! books checked by `ledger verify`: a refund and the payment of the same charge; two operators
//! crediting and refunding one held payment; a capture and the expiry of the same hold.
//! Whatever order the server picks, each thing is decided once.

mod support;

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use server::keys::{self, Scope};
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(
    a_refund_racing_its_payment_leaves_nothing_credited,
    two_operators_crediting_and_refunding_one_held_payment_decide_it_once,
    a_capture_racing_the_expiry_of_its_hold_is_one_or_the_other,
);

const OPERATORS: &str = "424242, 777";

async fn verified(app: &TestApp) {
    let report = server::ledger::verify::verify(&app.server.state.store)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report}");
    assert_books_balance(&app.server.state.store).await;
}

/// The charge was credited and taken back, or never credited: `(purchases, refunds)` of it is
/// (1, 1) or (0, 0), its payment ends refunded, and its buyer holds nothing.
async fn decided_once(app: &TestApp, buyer: i64, charge: &str) {
    assert_eq!(app.balance(buyer).await, 0, "{charge}");
    let transfers = |kind: &str| {
        format!("SELECT COUNT(*) FROM transfers WHERE kind = '{kind}' AND reference = '{charge}'")
    };
    let purchases = app.count(&transfers("purchase")).await;
    let refunds = app.count(&transfers("refund")).await;
    assert!(
        (purchases, refunds) == (0, 0) || (purchases, refunds) == (1, 1),
        "{charge}: {purchases} credits, {refunds} refunds"
    );
    let refunded = format!(
        "SELECT COUNT(*) FROM payments WHERE charge_id = '{charge}' AND status = 'refunded'"
    );
    assert_eq!(app.count(&refunded).await, 1, "{charge} ends refunded");
}

/// The payment of a charge and its refund delivered at the same moment, for 20 buyers: the
/// refund first records the charge as refunded so the payment is never credited; the payment
/// first is credited and then taken back. Either way nothing stays credited and the payment
/// ends refunded.
async fn a_refund_racing_its_payment_leaves_nothing_credited(database: Database) {
    let app = TestApp::spawn(database).await;
    let mut charges = Vec::new();
    for index in 0..20 {
        let buyer = 710_000 + index;
        let order = app.create_order(buyer, "ndn-500").await;
        let charge = app.telegram.record_charge(UserId(buyer), 225, &order);
        charges.push((buyer, order, charge));
    }
    let deliveries = charges
        .iter()
        .enumerate()
        .flat_map(|(index, (buyer, order, charge))| {
            let id = 10 * i64::try_from(index).unwrap();
            [
                successful_payment(id + 1, *buyer, order, 225, charge),
                refunded_payment(id + 2, *buyer, order, 225, charge),
                successful_payment(id + 3, *buyer, order, 225, charge),
            ]
        });
    let deliveries: Vec<Value> = deliveries.collect();
    let statuses = join_all(deliveries.iter().map(|update| app.deliver(update))).await;
    assert!(
        statuses.iter().all(|(status, _)| *status == 200),
        "{statuses:?}"
    );

    for (buyer, _, charge) in &charges {
        decided_once(&app, *buyer, charge).await;
    }
    verified(&app).await;
}

/// Two operators at once on each of 10 held payments: both tap Credit, one taps Refund. The
/// payment is credited at most once, refunded at Telegram once, and ends refunded with the
/// buyer back at zero whichever came first.
async fn two_operators_crediting_and_refunding_one_held_payment_decide_it_once(database: Database) {
    let app = TestApp::spawn_configured(database, &[("ADMIN_USER_IDS", OPERATORS)]).await;
    let mut charges = Vec::new();
    for index in 0..10 {
        let buyer = 720_000 + index;
        charges.push((buyer, app.held_payment(index + 1, buyer).await));
    }
    let taps = charges.iter().flat_map(|(_, charge)| {
        [
            (
                424_242,
                "console_credit",
                format!("a-credit-{charge}"),
                charge,
            ),
            (777, "console_credit", format!("b-credit-{charge}"), charge),
            (777, "console_refund", format!("b-refund-{charge}"), charge),
        ]
    });
    let taps: Vec<_> = taps.collect();
    let answers = join_all(
        taps.iter()
            .map(|(operator, function, action, charge)| async {
                let form = [
                    ("action_id", action.as_str()),
                    ("charge_id", charge.as_str()),
                ];
                app.call_as(*operator, function, &form).await
            }),
    )
    .await;
    for ((_, function, _, charge), (status, answer)) in taps.iter().zip(&answers) {
        assert_eq!(*status, 200, "{function} {charge}: {answer}");
    }

    for (buyer, charge) in &charges {
        decided_once(&app, *buyer, charge).await;
        assert!(
            app.telegram.is_refunded(charge),
            "{charge} refunded at Telegram"
        );
    }
    assert_eq!(app.telegram.calls("refundStarPayment"), charges.len());
    verified(&app).await;
}

/// 30 holds expiring at the same moment, each captured just then: every hold ends either
/// captured (the capture answered 200 and its NDN were spent) or expired (the capture answered
/// 409 and nothing was spent), never both; nothing stays reserved.
async fn a_capture_racing_the_expiry_of_its_hold_is_one_or_the_other(database: Database) {
    let app = TestApp::spawn(database).await;
    let key = keys::create(
        &app.server.state.store,
        "game",
        &[Scope::Read, Scope::Spend, Scope::Grant],
    )
    .await
    .unwrap();
    let post = |path: String, idempotency: String, body: Value| {
        let request = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&key)
            .header("Idempotency-Key", idempotency)
            .json(&body);
        send(request)
    };
    app.balance(BUYER).await;
    let (status, body) = post(
        "/v1/credits".into(),
        "fund".into(),
        json!({"user_id": BUYER, "amount": 1_000, "reason": "fund"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let mut holds = Vec::new();
    for index in 0..30 {
        let (status, hold) = post(
            "/v1/holds".into(),
            format!("hold-{index}"),
            json!({"user_id": BUYER, "amount": 10, "expires_in": 2, "reason": "entry"}),
        )
        .await;
        assert_eq!(status, 201, "{hold}");
        holds.push(hold);
    }
    // Wait until the first hold's time is up (they were made within a moment of each other)...
    let first_expiry = holds
        .iter()
        .filter_map(|hold| hold["expires_at"].as_i64())
        .min()
        .expect("holds say when they expire (Unix seconds)");
    let due_ms = first_expiry * 1_000 - server::clock::now_ms();
    tokio::time::sleep(Duration::from_millis(u64::try_from(due_ms).unwrap_or(0))).await;
    // ... and capture them all while the expiry worker releases them.
    let captures = join_all(holds.iter().enumerate().map(|(index, hold)| {
        let id = hold["id"].as_str().unwrap().to_owned();
        post(
            format!("/v1/holds/{id}/capture"),
            format!("capture-{index}"),
            json!({}),
        )
    }))
    .await;

    // A refused capture leaves its hold to the worker, which has released it within a second.
    for _ in 0..100 {
        if app
            .count("SELECT COUNT(*) FROM holds WHERE status = 'active'")
            .await
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut captured = 0;
    for (hold, (status, answer)) in holds.iter().zip(&captures) {
        let id = hold["id"].as_str().unwrap();
        let row = app
            .count(&format!(
                "SELECT CASE status WHEN 'captured' THEN 1 WHEN 'expired' THEN 2 ELSE 0 END
                 FROM holds WHERE id = '{id}'"
            ))
            .await;
        match status {
            201 | 200 => {
                assert_eq!(row, 1, "{id} answered captured: {answer}");
                captured += 1;
            }
            409 => {
                assert_eq!(answer["error"], "hold_not_active", "{answer}");
                assert_eq!(row, 2, "{id} refused, so it expired: {answer}");
            }
            other => panic!("{id}: {other} {answer}"),
        }
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM transfers WHERE kind = 'spend'")
            .await,
        captured,
        "one spend per capture"
    );
    let (_, account) = send(
        app.http
            .get(format!("{}/v1/accounts/{BUYER}", app.base))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(account["held"], 0, "{account}");
    assert_eq!(account["balance"], 1_000 - 10 * captured, "{account}");
    verified(&app).await;
}
