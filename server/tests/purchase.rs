//! The purchase loop end to end over HTTP: server functions, webhook, ledger, notifications.

mod support;

use std::time::Duration;

use serde_json::json;
use server::sandbox::fake_telegram::Fault;
use support::*;

on_both_databases!(
    purchase_credits_balance_and_notifies_buyer,
    concurrent_duplicate_payment_credits_once,
    pre_checkout_refuses_what_it_must,
    webhook_without_the_secret_is_rejected_and_changes_nothing,
    server_functions_reject_missing_forged_and_expired_init_data,
    second_payment_of_a_paid_order_is_credited_as_its_own,
    payment_with_unknown_payload_is_recorded_not_credited,
    refunded_payment_twice_debits_once,
    rate_limited_notification_is_sent_once_after_retry_after,
    restart_between_credit_and_notification_sends_once,
    a_message_refused_for_good_is_given_up_and_the_chat_goes_on,
    database_outage_answers_5xx_and_readiness_fails,
    malformed_and_unhandled_updates,
    orders_are_private_and_packages_validated,
    redelivered_command_is_answered_once,
    payment_from_a_buyer_with_any_profile_text_is_credited,
);

async fn purchase_credits_balance_and_notifies_buyer(database: Database) {
    let app = TestApp::spawn(database).await;
    let (status, wallet) = app.call_as(BUYER, "wallet", &[]).await;
    assert_eq!(status, 200, "{wallet}");
    assert_eq!(wallet["balance"], 0);
    assert_eq!(wallet["user"]["id"], BUYER);
    let packages = wallet["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 3);
    assert!(
        packages
            .iter()
            .any(|p| p["id"] == "ndn-500" && p["ndn"] == 500 && p["stars"] == 225)
    );

    let (status, invoice) = app
        .call_as(BUYER, "create_invoice", &[("package_id", "ndn-500")])
        .await;
    assert_eq!(status, 200, "{invoice}");
    let order_id = invoice["order_id"].as_str().unwrap();
    let link = app
        .telegram
        .invoice(invoice["invoice_url"].as_str().unwrap())
        .expect("link created at Telegram");
    assert_eq!(
        (link.payload.as_str(), link.amount, link.title.as_str()),
        (order_id, 225, "500 NDN")
    );

    let (status, answer) = app
        .deliver(&pre_checkout(1, BUYER, order_id, "XTR", 225))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({ "method": "answerPreCheckoutQuery", "pre_checkout_query_id": "pcq1", "ok": true })
    );

    let (status, _) = app
        .deliver(&successful_payment(2, BUYER, order_id, 225, "charge-happy"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.balance(BUYER).await, 500);
    let (_, order) = app
        .call_as(BUYER, "order_status", &[("order_id", order_id)])
        .await;
    assert_eq!(
        (order["status"].as_str(), order["balance"].as_i64()),
        (Some("paid"), Some(500))
    );

    let messages = app.messages_once_drained(1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].chat_id, BUYER);
    assert!(
        messages[0].text.starts_with("+500 NDN"),
        "{}",
        messages[0].text
    );

    let (_, wallet) = app.call_as(BUYER, "wallet", &[]).await;
    assert_eq!(wallet["history"][0]["order_id"], order_id);
    assert_eq!(wallet["history"][0]["status"], "paid");
    let store = &app.server.state.store;
    assert_eq!(balance_from_transfers(store, BUYER).await, 500);
    assert_books_balance(store).await;
}

async fn concurrent_duplicate_payment_credits_once(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-1000").await;
    let update = successful_payment(10, BUYER, &order_id, 400, "charge-duplicated");
    let deliveries = (0..20).map(|_| app.deliver(&update));
    let statuses: Vec<u16> = futures::future::join_all(deliveries)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.balance(BUYER).await, 1000);
    assert_eq!(app.count("SELECT COUNT(*) FROM transfers").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(app.messages_once_drained(1).await.len(), 1);
    assert_books_balance(&app.server.state.store).await;
}

async fn pre_checkout_refuses_what_it_must(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-500").await;
    let app = &app;
    let refused = |update| async move {
        let (status, answer) = app.deliver(&update).await;
        assert_eq!(status, 200);
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(!answer["error_message"].as_str().unwrap().is_empty());
        answer["error_message"].as_str().unwrap().to_owned()
    };
    refused(pre_checkout(1, BUYER, "no-such-order", "XTR", 225)).await;
    assert!(
        refused(pre_checkout(2, OTHER_BUYER, &order_id, "XTR", 225))
            .await
            .contains("another user")
    );
    refused(pre_checkout(3, BUYER, &order_id, "XTR", 224)).await;
    refused(pre_checkout(4, BUYER, &order_id, "XTR", 22_500)).await;
    refused(pre_checkout(5, BUYER, &order_id, "XTS", 225)).await;

    app.deliver(&successful_payment(6, BUYER, &order_id, 225, "charge-paid"))
        .await;
    assert!(
        refused(pre_checkout(7, BUYER, &order_id, "XTR", 225))
            .await
            .contains("already paid")
    );
    // Nothing a refusal does credits anything.
    assert_eq!(app.balance(BUYER).await, 500);
}

async fn webhook_without_the_secret_is_rejected_and_changes_nothing(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-100").await;
    let update = successful_payment(1, BUYER, &order_id, 50, "charge-no-secret");
    assert_eq!(app.deliver_with_secret(&update, None).await.0, 401);
    assert_eq!(app.deliver_with_secret(&update, Some("wrong")).await.0, 401);
    assert_eq!(
        app.deliver_with_secret(&update, Some(&format!("{SECRET}x")))
            .await
            .0,
        401
    );
    assert_eq!(app.balance(BUYER).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM payments").await, 0);
}

async fn server_functions_reject_missing_forged_and_expired_init_data(database: Database) {
    let app = TestApp::spawn(database).await;
    let (status, error) = app.call("wallet", None, &[]).await;
    assert_eq!((status, error), (401, json!({ "Unauthorized": "Missing" })));

    let genuine = app.init_data(BUYER);
    let forged = genuine.replace(&BUYER.to_string(), &OTHER_BUYER.to_string());
    assert_ne!(forged, genuine);
    let (status, error) = app
        .call("wallet", Some(&format!("tma {forged}")), &[])
        .await;
    assert_eq!((status, error), (401, json!({ "Unauthorized": "Invalid" })));

    let stale = app.init_data_aged(BUYER, "en", Duration::from_secs(86_400 + 5));
    for function in ["wallet", "create_invoice", "order_status"] {
        let form: &[(&str, &str)] = match function {
            "create_invoice" => &[("package_id", "ndn-100")],
            "order_status" => &[("order_id", "x")],
            _ => &[],
        };
        let (status, error) = app
            .call(function, Some(&format!("tma {stale}")), form)
            .await;
        assert_eq!(
            (status, error),
            (401, json!({ "Unauthorized": "Expired" })),
            "{function}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
}

async fn second_payment_of_a_paid_order_is_credited_as_its_own(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-100").await;
    app.deliver(&successful_payment(1, BUYER, &order_id, 50, "charge-first"))
        .await;
    let (status, _) = app
        .deliver(&successful_payment(
            2,
            BUYER,
            &order_id,
            50,
            "charge-second",
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.balance(BUYER).await, 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'credited'")
            .await,
        2
    );
    assert_eq!(app.messages_once_drained(2).await.len(), 2);
}

/// Telegram's names are any text: NUL characters (which PostgreSQL's text cannot hold),
/// quotes, JSON and SQL look-alikes, emoji. None of it may keep a paid charge from its credit.
async fn payment_from_a_buyer_with_any_profile_text_is_credited(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-100").await;
    let mut update = successful_payment(1, BUYER, &order_id, 50, "charge-odd-name");
    update["message"]["from"]["first_name"] = json!("Nul\u{0}In\"the'] \\ name 🙂");
    update["message"]["from"]["username"] = json!("\u{0}");
    update["message"]["from"]["language_code"] = json!("r\u{0}u");
    let (status, answer) = app.deliver(&update).await;
    assert_eq!(status, 200, "{answer}");
    // Stored as sent, less the NULs (checked before the wallet call below renames the buyer
    // from their initData).
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM users WHERE first_name = 'NulIn\"the''] \\ name 🙂'
             AND username = '' AND language_code = 'ru'"
        )
        .await,
        1
    );
    assert_eq!(app.balance(BUYER).await, 100);
    assert_eq!(app.messages_once_drained(1).await.len(), 1);
    // A payload no order of ours can have is refused, not a storage error.
    let (status, answer) = app
        .deliver(&pre_checkout(
            2,
            BUYER,
            &format!("{order_id}\u{0}"),
            "XTR",
            50,
        ))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], false, "{answer}");
}

async fn payment_with_unknown_payload_is_recorded_not_credited(database: Database) {
    let app = TestApp::spawn(database).await;
    let (status, _) = app
        .deliver(&successful_payment(
            1,
            BUYER,
            "not-an-order",
            75,
            "charge-orphan",
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.balance(BUYER).await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments WHERE charge_id = 'charge-orphan' AND status = 'held' AND stars = 75").await,
        1
    );
    let messages = app.messages_once_drained(1).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].text.contains("/paysupport"));
}

async fn refunded_payment_twice_debits_once(database: Database) {
    let app = TestApp::spawn(database).await;
    let first = app.create_order(BUYER, "ndn-500").await;
    app.deliver(&successful_payment(1, BUYER, &first, 225, "charge-kept"))
        .await;
    let second = app.create_order(BUYER, "ndn-100").await;
    app.deliver(&successful_payment(
        2,
        BUYER,
        &second,
        50,
        "charge-refunded",
    ))
    .await;
    assert_eq!(app.balance(BUYER).await, 600);

    let refund = refunded_payment(3, BUYER, &second, 50, "charge-refunded");
    assert_eq!(app.deliver(&refund).await.0, 200);
    assert_eq!(
        app.deliver(&refunded_payment(4, BUYER, &second, 50, "charge-refunded"))
            .await
            .0,
        200
    );
    assert_eq!(app.balance(BUYER).await, 500);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM transfers WHERE kind = 'refund'")
            .await,
        1
    );
    let (_, status) = app
        .call_as(BUYER, "order_status", &[("order_id", &second)])
        .await;
    assert_eq!(status["status"], "refunded");
    let messages = app.messages_once_drained(3).await;
    assert_eq!(messages.len(), 3);
    assert!(
        messages[2].text.starts_with("Refund"),
        "{}",
        messages[2].text
    );
}

async fn rate_limited_notification_is_sent_once_after_retry_after(database: Database) {
    let app = TestApp::spawn(database).await;
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 429,
        retry_after: Some(1),
        times: 1,
    });
    let order_id = app.create_order(BUYER, "ndn-100").await;
    app.deliver(&successful_payment(1, BUYER, &order_id, 50, "charge-429"))
        .await;
    let messages = app.messages_once_drained(1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        app.telegram.calls("sendMessage"),
        2,
        "one refused, one delivered"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
            .await,
        1
    );
}

/// Telegram refuses the payment notice with a 403 (the buyer blocked the bot, then unblocked
/// it): a 4xx other than 429 is not retried, the notice is marked failed, and the next message
/// to the same chat goes out.
async fn a_message_refused_for_good_is_given_up_and_the_chat_goes_on(database: Database) {
    let app = TestApp::spawn(database).await;
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 403,
        retry_after: None,
        times: 1,
    });
    let order_id = app.create_order(BUYER, "ndn-100").await;
    let (status, _) = app
        .deliver(&successful_payment(
            1,
            BUYER,
            &order_id,
            50,
            "charge-blocked",
        ))
        .await;
    assert_eq!(status, 200);
    let failed = "SELECT COUNT(*) FROM outbox WHERE status = 'failed'";
    for _ in 0..200 {
        if app.count(failed).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count(failed).await, 1, "the notice is given up");
    let (status, _) = app.deliver(&command(2, BUYER, "en", "/balance")).await;
    assert_eq!(status, 200);
    let messages = app.messages_once_drained(1).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].text.contains("100 NDN"), "{}", messages[0].text);
    assert_eq!(
        app.telegram.calls("sendMessage"),
        2,
        "the refused notice was not tried again"
    );
    assert_eq!(app.balance(BUYER).await, 100);
}

async fn restart_between_credit_and_notification_sends_once(database: Database) {
    let app = TestApp::spawn(database).await;
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 502,
        retry_after: None,
        times: 1000,
    });
    let order_id = app.create_order(BUYER, "ndn-100").await;
    assert_eq!(
        app.deliver(&successful_payment(
            1,
            BUYER,
            &order_id,
            50,
            "charge-restart"
        ))
        .await
        .0,
        200
    );
    // The notifier has tried (and Telegram refused): the notice waits in the outbox.
    let tried = "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND attempts >= 1";
    for _ in 0..200 {
        if app.count(tried).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count(tried).await, 1, "one notice, tried and waiting");
    assert!(app.telegram.sent_messages().is_empty());

    let app = app.restart().await;
    app.telegram.clear_faults();
    // The queued message was retried with backoff; it survives the restart and goes out once.
    let messages = app.messages_once_drained(1).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(app.balance(BUYER).await, 100);
}

async fn database_outage_answers_5xx_and_readiness_fails(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-100").await;
    let ready = app.status_of("/readyz").await;
    assert_eq!(ready, 200);

    app.server.state.store.close().await;
    let (status, _) = app
        .deliver(&successful_payment(
            1,
            BUYER,
            &order_id,
            50,
            "charge-outage",
        ))
        .await;
    assert!(status >= 500, "got {status}");
    let (status, _) = app
        .deliver(&pre_checkout(2, BUYER, &order_id, "XTR", 50))
        .await;
    assert!(status >= 500, "got {status}");
    let ready = app.status_of("/readyz").await;
    assert_eq!(ready, 503);
    let live = app.status_of("/healthz").await;
    assert_eq!(live, 200);

    // Telegram retries on the 5xx; a server on the same database credits the payment then.
    let app = app.restart().await;
    assert_eq!(
        app.deliver(&successful_payment(
            1,
            BUYER,
            &order_id,
            50,
            "charge-outage"
        ))
        .await
        .0,
        200
    );
    assert_eq!(app.balance(BUYER).await, 100);
}

async fn malformed_and_unhandled_updates(database: Database) {
    let app = TestApp::spawn(database).await;
    let response = app
        .http
        .post(format!("{}/webhook/telegram", app.base))
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/updates/unhandled_my_chat_member.json"
    ))
    .unwrap();
    let (status, _) = app.deliver(&serde_json::from_str(&fixture).unwrap()).await;
    assert_eq!(status, 200);
    // A command the bot would answer, but over the size limit: refused, so never answered.
    let huge = command(
        2,
        BUYER,
        "en",
        &format!("/start {}", "x".repeat(300 * 1024)),
    );
    assert_eq!(app.deliver(&huge).await.0, 413);
    let stored = "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM users) \
                  + (SELECT COUNT(*) FROM transfers)";
    assert_eq!(app.count(stored).await, 0, "nothing was stored or queued");
    // The same command at a normal size is answered: the counts above could have moved.
    assert_eq!(app.deliver(&command(3, BUYER, "en", "/start")).await.0, 200);
    assert_eq!(app.messages_once_drained(1).await.len(), 1);
}

async fn orders_are_private_and_packages_validated(database: Database) {
    let app = TestApp::spawn(database).await;
    let (status, error) = app
        .call_as(BUYER, "create_invoice", &[("package_id", "ndn-7")])
        .await;
    assert_eq!(status, 400);
    assert!(error["InvalidInput"].as_str().unwrap().contains("ndn-7"));
    let order_id = app.create_order(BUYER, "ndn-100").await;
    let (status, _) = app
        .call_as(OTHER_BUYER, "order_status", &[("order_id", &order_id)])
        .await;
    assert_eq!(status, 404);
    let (status, order) = app
        .call_as(BUYER, "order_status", &[("order_id", &order_id)])
        .await;
    assert_eq!((status, order["status"].as_str()), (200, Some("pending")));
}

async fn redelivered_command_is_answered_once(database: Database) {
    let app = TestApp::spawn(database).await;
    let start = command(77, BUYER, "ru", "/start");
    assert_eq!(app.deliver(&start).await.0, 200);
    assert_eq!(app.deliver(&start).await.0, 200);
    let messages = app.messages_once_drained(1).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].text.starts_with("Привет"));
    let button = &messages[0].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0];
    assert_eq!(button["web_app"]["url"], "https://ndn.example.org/");
}
