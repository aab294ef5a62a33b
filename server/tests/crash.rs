//! Crash safety: the server is killed with SIGKILL in the middle of a payment load, restarted,
//! and Telegram's redeliveries replayed. Every charge that ever got a 2xx is credited exactly
//! once, and every credit gets exactly one notification.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use server::sandbox::fake_telegram::Fault;
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
    sigkill_mid_load(Database::sqlite(), 1).await;
}

/// Two instances on one PostgreSQL database take the sale between them; one is killed with
/// SIGKILL mid-load while the other goes on; Telegram's redeliveries reach the survivor and
/// the restarted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_two_postgres_instances_loses_nothing_and_doubles_nothing() {
    let Some(database) = Database::postgres().await else {
        return;
    };
    sigkill_mid_load(database, 2).await;
}

/// `instances` servers on `database` share the load; the first is killed once a third of the
/// payments were acknowledged.
async fn sigkill_mid_load(database: Database, instances: usize) {
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
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(start_server(&database, &telegram_url, free_port()).await);
    }
    let bases: Vec<String> = servers.iter().map(|server| server.base.clone()).collect();
    let http = reqwest::Client::new();

    const PAYMENTS: usize = 150;
    let mut updates = Vec::new();
    for i in 0..PAYMENTS {
        let buyer = 500_000 + i as i64;
        let invoice = server_function(
            &http,
            &bases[i % instances],
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

    // Deliver everything at once, spread over the instances; kill the first once some
    // payments were acknowledged.
    let acknowledged: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let load = {
        let (http, bases, updates, acknowledged) = (
            http.clone(),
            bases.clone(),
            updates.clone(),
            acknowledged.clone(),
        );
        tokio::spawn(async move {
            futures::stream::iter(0..PAYMENTS)
                .for_each_concurrent(24, |i| {
                    let (http, base, update, acknowledged) = (
                        &http,
                        &bases[i % bases.len()],
                        &updates[i],
                        acknowledged.clone(),
                    );
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
    let killed = &mut servers[0];
    killed.child.start_kill().unwrap();
    killed.child.wait().await.unwrap();
    // Telegram's API is back: the queued notices go out after the restart.
    telegram.clear_faults();
    let _ = load.await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    let lost_to_the_kill = (0..PAYMENTS)
        .filter(|i| i % instances == 0 && !acknowledged.contains(i))
        .count();
    assert!(
        lost_to_the_kill > 0,
        "the kill came too late to test anything"
    );

    // The killed one restarts; Telegram delivers again every update that did not get a 2xx,
    // and (as it may) some that did, to any instance.
    servers[0] = start_server(&database, &telegram_url, free_port()).await;
    let bases: Vec<String> = servers.iter().map(|server| server.base.clone()).collect();
    for (i, update) in updates.iter().enumerate() {
        if acknowledged.contains(&i) && i % 5 != 0 {
            continue;
        }
        let base = &bases[(i + 1) % instances];
        let mut status = None;
        for _ in 0..20 {
            status = post(&http, base, update).await;
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

    let messages = drained_messages(&store, &telegram, PAYMENTS).await;
    let chats: HashSet<i64> = messages.iter().map(|m| m.chat_id).collect();
    assert_eq!(
        messages.len(),
        PAYMENTS,
        "one notice per credit, none twice"
    );
    assert_eq!(chats.len(), PAYMENTS);
    drop(servers);
}

/// An acknowledged payment survives a power cut on SQLite only with `synchronous = FULL` (WAL's
/// NORMAL may lose the last commits): every connection of the pool has it, WAL on.
#[tokio::test]
async fn every_sqlite_connection_syncs_each_commit_to_disk() {
    let database = Database::sqlite();
    let store = server::store::Store::connect(&database.url, 4)
        .await
        .unwrap();
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(store.pool().acquire().await.unwrap());
    }
    for connection in &mut connections {
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
    }
}
