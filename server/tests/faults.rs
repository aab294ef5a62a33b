//! Failures of what the server depends on: the Bot API down, the database locked. Webhooks
//! never answer 2xx without a commit, and everything recovers by itself.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use server::sandbox::fake_telegram::Fault;
use sqlx::Connection;
use support::*;

on_both_databases!(bot_api_outage_delays_notifications_but_loses_and_doubles_none);

async fn bot_api_outage_delays_notifications_but_loses_and_doubles_none(database: Database) {
    let app = TestApp::spawn_configured(database, &[("TELEGRAM_API_TIMEOUT", "1")]).await;
    // Down for a while: no answer at all (timeouts), server errors, flood control, then back.
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 0,
        retry_after: None,
        times: 2,
    });
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 500,
        retry_after: None,
        times: 4,
    });
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 502,
        retry_after: None,
        times: 2,
    });
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 429,
        retry_after: Some(1),
        times: 2,
    });
    let buyers: Vec<i64> = (0..5).map(|i| 600_000 + i).collect();
    for (i, buyer) in buyers.iter().enumerate() {
        let order = app.create_order(*buyer, "ndn-100").await;
        let (status, _) = app
            .deliver(&successful_payment(
                i as i64,
                *buyer,
                &order,
                50,
                &format!("outage-{i}"),
            ))
            .await;
        assert_eq!(
            status, 200,
            "payments are acknowledged while Telegram's API is down"
        );
    }
    let mut per_chat: HashMap<i64, usize> = HashMap::new();
    for message in app.messages_once_drained(buyers.len()).await {
        *per_chat.entry(message.chat_id).or_default() += 1;
    }
    assert_eq!(per_chat.len(), buyers.len(), "every buyer was notified");
    assert!(
        per_chat.values().all(|count| *count == 1),
        "nobody twice: {per_chat:?}"
    );
    assert!(
        app.telegram.calls("sendMessage") > buyers.len(),
        "the failures really happened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_sqlite_answers_5xx_never_2xx_and_recovers() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let order = app.create_order(BUYER, "ndn-100").await;
    // Another process holds the database's write lock longer than the busy timeout.
    let mut intruder = sqlx::SqliteConnection::connect(&app.database.url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut intruder)
        .await
        .unwrap();
    let payment = successful_payment(1, BUYER, &order, 50, "locked-charge");
    let (status, _) = app.deliver(&payment).await;
    assert!(
        status >= 500,
        "answered {status} without being able to commit"
    );
    sqlx::query("ROLLBACK")
        .execute(&mut intruder)
        .await
        .unwrap();
    intruder.close().await.unwrap();

    // Telegram delivers again; now it goes through, once.
    let (status, _) = app.deliver(&payment).await;
    assert_eq!(status, 200);
    assert_eq!(app.deliver(&payment).await.0, 200);
    assert_eq!(app.balance(BUYER).await, 100);
    assert_eq!(app.count("SELECT COUNT(*) FROM transfers").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_answers_5xx_and_recovers() {
    let Some(database) = Database::postgres().await else {
        return;
    };
    let (admin_url, name) = database.admin.clone().unwrap();
    let app = TestApp::spawn(database).await;
    let order = app.create_order(BUYER, "ndn-100").await;
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    alter_database(&admin, &name, "SET default_transaction_read_only = on").await;
    let payment = successful_payment(1, BUYER, &order, 50, "read-only-charge");
    let mut refused = false;
    for _ in 0..20 {
        let (status, _) = app.deliver(&payment).await;
        assert_ne!(status, 200, "no 2xx without a commit");
        if status >= 500 {
            refused = true;
            break;
        }
    }
    assert!(refused);
    alter_database(&admin, &name, "SET default_transaction_read_only = off").await;
    let mut accepted = false;
    for _ in 0..50 {
        if app.deliver(&payment).await.0 == 200 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "the server recovers by itself");
    assert_eq!(app.balance(BUYER).await, 100);
    assert_eq!(app.count("SELECT COUNT(*) FROM transfers").await, 1);
}
