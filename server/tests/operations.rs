//! What operators and the bot's users need beyond the purchase: commands, the CLI, long
//! polling and metrics.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(
    commands_answer_in_english_and_russian,
    refund_command_twice_debits_once,
    reconcile_credits_a_missing_payment_once,
    reconcile_applies_a_lost_refund_found_past_the_first_page,
    polling_gives_the_same_results_as_the_webhook,
    metrics_count_a_purchase,
);

async fn commands_answer_in_english_and_russian(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-100").await;
    app.deliver(&successful_payment(
        1,
        BUYER,
        &order_id,
        50,
        "charge-for-support",
    ))
    .await;
    let script = [
        ("en", "/balance", "Your balance: 100 NDN."),
        ("ru", "/balance", "Ваш баланс: 100 NDN."),
        ("en", "/help", "/paysupport — help with a payment"),
        ("ru", "/help", "/paysupport — помощь с оплатой"),
        ("en", "/paysupport", "charge-for-support"),
        ("ru", "/paysupport", "Проблема с оплатой?"),
        ("en", "/privacy", "https://ndn.example.org/privacy"),
        ("ru", "/privacy", "Полная политика"),
        ("en", "/terms", "digital in-app currency"),
        ("ru", "/terms", "внутренняя валюта"),
        ("en", "/start@ndn_bot", "Hi, Vladislav!"),
        ("ru", "/start", "Привет, Vladislav!"),
        ("en", "/nonsense", "/help lists"),
        ("ru", "/nonsense", "/help — список"),
    ];
    for (index, (language, text, _)) in script.iter().enumerate() {
        let (status, _) = app
            .deliver(&command(100 + index as i64, BUYER, language, text))
            .await;
        assert_eq!(status, 200);
    }
    // The first message is the payment notice; then one reply per command, in order.
    let messages = app.messages_once_drained(script.len() + 1).await;
    assert_eq!(messages.len(), script.len() + 1);
    for ((language, text, expected), message) in script.iter().zip(&messages[1..]) {
        assert!(
            message.text.contains(expected),
            "{language} {text}: {}",
            message.text
        );
    }
}

async fn refund_command_twice_debits_once(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-500").await;
    let charge = app.telegram.record_charge(UserId(BUYER), 225, &order_id);
    app.deliver(&successful_payment(1, BUYER, &order_id, 225, &charge))
        .await;
    assert_eq!(app.balance(BUYER).await, 500);

    let (code, output) = app.cli(&["refund", &charge]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("debited 500 NDN, balance now 0"),
        "{output}"
    );
    assert!(app.telegram.is_refunded(&charge));
    let (code, output) = app.cli(&["refund", &charge]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("already refunded") && output.contains("ledger already had"),
        "{output}"
    );
    assert_eq!(app.balance(BUYER).await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM transfers WHERE kind = 'refund'")
            .await,
        1
    );

    let (code, output) = app.cli(&["refund", "no-such-charge"]).await;
    assert_ne!(code, 0);
    assert!(output.contains("no payment with charge id"), "{output}");
}

async fn reconcile_credits_a_missing_payment_once(database: Database) {
    let app = TestApp::spawn(database).await;
    let delivered = app.create_order(BUYER, "ndn-100").await;
    let delivered_charge = app.telegram.record_charge(UserId(BUYER), 50, &delivered);
    app.deliver(&successful_payment(
        1,
        BUYER,
        &delivered,
        50,
        &delivered_charge,
    ))
    .await;
    // Paid at Telegram, but the webhook never came.
    let lost = app.create_order(BUYER, "ndn-500").await;
    let lost_charge = app.telegram.record_charge(UserId(BUYER), 225, &lost);

    let (code, output) = app.cli(&["reconcile"]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("credited: 1") && output.contains(&lost_charge),
        "{output}"
    );
    assert_eq!(app.balance(BUYER).await, 600);
    let (_, status) = app
        .call_as(BUYER, "order_status", &[("order_id", &lost)])
        .await;
    assert_eq!(status["status"], "paid");

    let (code, output) = app.cli(&["reconcile"]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("credited: 0") && output.contains("refund applied: 0"),
        "{output}"
    );
    assert_eq!(app.balance(BUYER).await, 600);
    assert_eq!(
        app.messages_once_drained(2).await.len(),
        2,
        "one notice per payment"
    );
}

/// A refund whose `refunded_payment` update never came, listed by `getStarTransactions`
/// after 101 payments (pages hold 100): reconcile reads on and applies it, once.
async fn reconcile_applies_a_lost_refund_found_past_the_first_page(database: Database) {
    let app = TestApp::spawn(database).await;
    let mut charges = Vec::new();
    for index in 0..101 {
        let buyer = 700_000 + index;
        let order = app.create_order(buyer, "ndn-100").await;
        let charge = app.telegram.record_charge(UserId(buyer), 50, &order);
        let (status, _) = app
            .deliver(&successful_payment(index + 1, buyer, &order, 50, &charge))
            .await;
        assert_eq!(status, 200);
        charges.push((buyer, charge));
    }
    // The last payment is refunded at Telegram (its entry is the 102nd) and the update lost.
    let (buyer, charge) = charges.last().unwrap().clone();
    assert!(app.telegram.refund(&charge).is_some());
    assert_eq!(app.balance(buyer).await, 100);

    let (code, output) = app.cli(&["reconcile"]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("credited: 0") && output.contains("refund applied: 1"),
        "{output}"
    );
    assert_eq!(app.balance(buyer).await, 0);
    let (code, output) = app.cli(&["reconcile"]).await;
    assert!(
        code == 0 && output.contains("refund applied: 0"),
        "{output}"
    );
    assert_eq!(app.balance(buyer).await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM transfers WHERE kind = 'refund'")
            .await,
        1
    );
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
}

/// The scripted updates of one purchase: pre-checkout, payment, its redelivery, a command.
fn purchase_script(order_id: &str, first_id: i64) -> Vec<Value> {
    vec![
        pre_checkout(first_id, BUYER, order_id, "XTR", 225),
        successful_payment(first_id + 1, BUYER, order_id, 225, "charge-scripted"),
        successful_payment(first_id + 2, BUYER, order_id, 225, "charge-scripted"),
        command(first_id + 3, BUYER, "en", "/balance"),
    ]
}

async fn polling_gives_the_same_results_as_the_webhook(database: Database) {
    let polled = TestApp::spawn_polling(database).await;
    let order_id = polled.create_order(BUYER, "ndn-500").await;
    polled.telegram.open_pre_checkout("pcq1");
    for update in purchase_script(&order_id, 1) {
        polled.telegram.queue_update(update);
    }
    let messages = polled.messages_once_drained(2).await;

    let hooked = TestApp::spawn(Database::sqlite()).await;
    let hooked_order = hooked.create_order(BUYER, "ndn-500").await;
    for update in purchase_script(&hooked_order, 1) {
        assert!(hooked.deliver(&update).await.0 < 300);
    }
    let hooked_messages = hooked.messages_once_drained(2).await;

    assert_eq!(polled.balance(BUYER).await, hooked.balance(BUYER).await);
    assert_eq!(polled.balance(BUYER).await, 500);
    fn texts(messages: &[server::sandbox::fake_telegram::SentMessage]) -> Vec<String> {
        messages.iter().map(|m| m.text.clone()).collect()
    }
    assert_eq!(texts(&messages), texts(&hooked_messages));
    // Without a webhook response, the pre-checkout answer went out as a Bot API call.
    let answer = polled
        .telegram
        .last_call_params("answerPreCheckoutQuery")
        .unwrap();
    assert_eq!(
        (
            answer["pre_checkout_query_id"].as_str(),
            answer["ok"].as_bool()
        ),
        (Some("pcq1"), Some(true))
    );

    // The offset is stored once the four updates (ids 1-4) are processed...
    let store = polled.server.state.store.clone();
    let mut stored = None;
    for _ in 0..100 {
        stored = store.bot_value("poll_offset").await.unwrap();
        if stored == Some(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored, Some(5), "the stored offset");
    // ... and after a restart Telegram is asked from there, never from an earlier update (the
    // fake forgets what is below the offset asked, so only the offset shows a re-fetch).
    let asked_before = polled.telegram.update_offsets().len();
    let polled = polled.restart().await;
    let mut asked = Vec::new();
    for _ in 0..100 {
        asked = polled.telegram.update_offsets().split_off(asked_before);
        if !asked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!asked.is_empty(), "the restarted server polls");
    assert!(asked.iter().all(|offset| *offset == 5), "{asked:?}");
    assert_eq!(polled.telegram.sent_messages().len(), 2);
    assert_eq!(polled.count("SELECT COUNT(*) FROM transfers").await, 1);
}

async fn metrics_count_a_purchase(database: Database) {
    let metrics_token = "operations-metrics-token-0123";
    let app = TestApp::spawn_configured(database, &[("METRICS_TOKEN", metrics_token)]).await;
    let order_id = app.create_order(BUYER, "ndn-500").await;
    app.deliver(&pre_checkout(1, BUYER, &order_id, "XTR", 225))
        .await;
    app.deliver(&pre_checkout(2, BUYER, &order_id, "XTR", 1))
        .await;
    app.deliver(&successful_payment(
        3,
        BUYER,
        &order_id,
        225,
        "charge-metrics",
    ))
    .await;
    app.messages_once_drained(1).await;
    let text = app.metrics(metrics_token).await;
    for expected in [
        "ndn_payments_credited_total 1",
        "ndn_stars_credited_total 225",
        "ndn_updates_received_total{kind=\"pre_checkout_query\"} 2",
        "ndn_updates_received_total{kind=\"successful_payment\"} 1",
        "ndn_pre_checkout_refusals_total{reason=\"wrong_amount\"} 1",
        "ndn_notifications_sent_total 1",
        "ndn_outbox_pending 0",
        "ndn_webhook_duration_seconds_count{kind=\"successful_payment\"} 1",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    assert!(!text.contains(TOKEN) && !text.contains(SECRET));
}

#[tokio::test]
async fn webhook_set_registers_everything_and_info_warns_until_then() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let (code, info) = app.cli(&["webhook", "info"]).await;
    assert_eq!(code, 0, "{info}");
    assert!(info.contains("WARNING: no webhook is set"), "{info}");
    assert!(
        info.contains(
            "`pre_checkout_query` is not in allowed_updates — every payment will time out"
        ),
        "{info}"
    );

    let (code, output) = app.cli(&["webhook", "set"]).await;
    assert_eq!(code, 0, "{output}");
    let webhook = app.telegram.last_call_params("setWebhook").unwrap();
    assert_eq!(webhook["url"], "https://ndn.example.org/webhook/telegram");
    assert_eq!(webhook["secret_token"], SECRET);
    assert_eq!(
        webhook["allowed_updates"],
        json!(["message", "pre_checkout_query"])
    );
    assert_eq!(app.telegram.calls("setMyCommands"), 2);
    let russian = app.telegram.last_call_params("setMyCommands").unwrap();
    assert_eq!(russian["language_code"], "ru");
    let names: Vec<&str> = russian["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["start", "balance", "paysupport", "privacy", "terms", "help"]
    );
    let menu = app.telegram.last_call_params("setChatMenuButton").unwrap();
    assert_eq!(
        menu["menu_button"]["web_app"]["url"],
        "https://ndn.example.org/"
    );

    let (_, info) = app.cli(&["webhook", "info"]).await;
    assert!(!info.contains("WARNING"), "{info}");
    assert!(
        info.contains("allowed updates: message, pre_checkout_query"),
        "{info}"
    );

    let (code, output) = app
        .cli(&["webhook", "delete", "--drop-pending-updates"])
        .await;
    assert_ne!(code, 0, "one flag is not enough to drop payments: {output}");
    let (code, output) = app.cli(&["webhook", "delete"]).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("pending updates kept"), "{output}");
}

#[tokio::test]
async fn help_documents_every_command() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let (code, help) = app.cli(&["--help"]).await;
    assert_eq!(code, 0);
    for command in ["serve", "migrate", "webhook", "refund", "reconcile"] {
        assert!(help.contains(command), "{help}");
    }
    let (_, serve) = app.cli(&["serve", "--help"]).await;
    assert!(serve.contains("--poll"), "{serve}");
}

#[tokio::test]
async fn test_environment_uses_telegrams_test_paths() {
    let app = TestApp::spawn_configured(Database::sqlite(), &[("TELEGRAM_TEST_ENV", "true")]).await;
    app.create_order(BUYER, "ndn-100").await;
    // The server also asks getMe once, after its start.
    for _ in 0..100 {
        if app.telegram.calls("getMe") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.telegram.calls("createInvoiceLink"), 1);
    assert_eq!(app.telegram.calls("getMe"), 1);
    assert_eq!(app.telegram.test_environment_calls(), 2);
}

/// SIGTERM while a buyer's invoice is being made (Telegram slow to answer): the request gets
/// its 200 and its invoice link, then the process exits 0.
#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in production_vars(&app.database.url, &app.telegram_url) {
        command.env(key, value);
    }
    let child = command
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    app.telegram
        .delay("createInvoiceLink", Duration::from_millis(1_500));
    let in_flight = tokio::spawn({
        let request = app
            .http
            .post(format!("{base}/api/create_invoice"))
            .header("Authorization", format!("tma {}", app.init_data(BUYER)))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("package_id=ndn-100");
        async move { send(request).await }
    });
    for _ in 0..200 {
        if app.telegram.calls("createInvoiceLink") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        app.telegram.calls("createInvoiceLink"),
        1,
        "the request is in flight"
    );
    let pid = child.id().unwrap().to_string();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let (status, invoice) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{invoice}");
    assert!(invoice["invoice_url"].as_str().is_some(), "{invoice}");
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "exit: {:?}", output.status);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(logs.contains("shutting down"), "{logs}");
}
