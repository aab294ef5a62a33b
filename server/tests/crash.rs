//! Crash safety: the server is killed with SIGKILL in the middle of a payment load, restarted,
//! and Telegram's redeliveries replayed. Every charge that ever got a 2xx is credited exactly
//! once, and every credit gets exactly one notification.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use server::fake_telegram::Fault;
use support::*;

struct Process {
    child: tokio::process::Child,
    base: String,
}

async fn start_server(database: &Database, telegram_url: &str, port: u16) -> Process {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true);
    for (key, value) in production_vars(&database.url, telegram_url) {
        command.env(key, value);
    }
    command.env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"));
    // Notices the killed process had claimed are released when their lease runs out.
    command.env("OUTBOX_LEASE", "2");
    let child = command.spawn().expect("server binary starts");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    Process { child, base }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn post(http: &reqwest::Client, base: &str, update: &Value) -> Option<u16> {
    let response = http
        .post(format!("{base}/webhook/telegram"))
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .json(update)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_nothing_and_doubles_nothing() {
    let database = Database::sqlite();
    let (telegram, telegram_url) = serve_fake_telegram().await;
    // Telegram's Bot API is down until after the crash, so every notice is still queued when
    // the process dies (see README: a crash between Telegram accepting a message and us
    // recording it is the one case that can repeat a message; the Bot API has no idempotency).
    telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 503,
        retry_after: None,
        times: u32::MAX,
    });
    let port = free_port();
    let mut server = start_server(&database, &telegram_url, port).await;
    let http = reqwest::Client::new();

    const PAYMENTS: usize = 150;
    let mut updates = Vec::new();
    for i in 0..PAYMENTS {
        let buyer = 500_000 + i as i64;
        let invoice = server_function(
            &http,
            &server.base,
            "create_invoice",
            &signed_init_data(buyer),
            "package_id=ndn-100",
        )
        .await;
        let order = invoice["order_id"].as_str().unwrap().to_owned();
        updates.push(successful_payment(
            i as i64,
            buyer,
            &order,
            50,
            &format!("crash-charge-{i}"),
        ));
    }

    // Deliver everything at once; kill the process once some payments were acknowledged.
    let acknowledged: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let load = {
        let (http, base, updates, acknowledged) = (
            http.clone(),
            server.base.clone(),
            updates.clone(),
            acknowledged.clone(),
        );
        tokio::spawn(async move {
            futures::stream::iter(0..PAYMENTS)
                .for_each_concurrent(24, |i| {
                    let (http, base, update, acknowledged) =
                        (&http, &base, &updates[i], acknowledged.clone());
                    async move {
                        if post(http, base, update).await == Some(200) {
                            acknowledged.lock().unwrap().insert(i);
                        }
                    }
                })
                .await;
        })
    };
    while acknowledged.lock().unwrap().len() < PAYMENTS / 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    // Telegram's API is back: the queued notices go out after the restart.
    telegram.clear_faults();
    let _ = load.await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() < PAYMENTS,
        "the kill came too late to test anything"
    );

    // Restart; Telegram delivers again every update that did not get a 2xx, and (as it may)
    // some that did.
    let server = start_server(&database, &telegram_url, free_port()).await;
    for (i, update) in updates.iter().enumerate() {
        if acknowledged.contains(&i) && i % 5 != 0 {
            continue;
        }
        let mut status = None;
        for _ in 0..20 {
            status = post(&http, &server.base, update).await;
            if status == Some(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            status,
            Some(200),
            "update {i} is accepted after the restart"
        );
    }

    let store = server::store::Store::connect(&database.url, 1)
        .await
        .unwrap();
    let credited = scalar(
        &store,
        "SELECT COUNT(*) FROM transfers WHERE kind = 'purchase'",
    )
    .await;
    let distinct = scalar(
        &store,
        "SELECT COUNT(DISTINCT reference) FROM transfers WHERE kind = 'purchase'",
    )
    .await;
    assert_eq!(
        (credited, distinct),
        (PAYMENTS as i64, PAYMENTS as i64),
        "each charge credited exactly once"
    );
    assert_books_balance(&store).await;

    for _ in 0..300 {
        if telegram.sent_messages().len() >= PAYMENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = telegram.sent_messages();
    let chats: HashSet<i64> = messages.iter().map(|m| m.chat_id).collect();
    assert_eq!(
        messages.len(),
        PAYMENTS,
        "one notice per credit, none twice"
    );
    assert_eq!(chats.len(), PAYMENTS);
    drop(server);
}
