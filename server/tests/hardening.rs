//! What outside testing found, each fixed and kept fixed: stream tokens that outlive the launch
//! data, writes on every launch and before the rate limit, bot commands in groups, a webhook
//! that read bodies before the secret, public metrics, development pages with a real bot, and
//! invoice limits that held per instance only.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_databases!(
    a_launch_writes_the_profile_only_when_it_changed,
    a_refused_invoice_writes_nothing,
    invoice_limits_hold_under_concurrent_requests,
    commands_in_a_group_say_nothing_about_money,
);

const DAY: u64 = 86_400;

async fn updated_at(app: &TestApp, user_id: i64) -> i64 {
    app.count(&format!(
        "SELECT updated_at FROM users WHERE id = {user_id}"
    ))
    .await
}

async fn stored_language(app: &TestApp, user_id: i64) -> String {
    use sqlx::Row;
    sqlx::query(AssertSqlSafe(format!(
        "SELECT language_code FROM users WHERE id = {user_id}"
    )))
    .fetch_one(app.server.state.store.pool())
    .await
    .unwrap()
    .try_get(0)
    .unwrap()
}

async fn wallet_in(app: &TestApp, user_id: i64, language: &str) -> Value {
    let auth = format!(
        "tma {}",
        app.init_data_aged(user_id, language, Duration::ZERO)
    );
    let (status, wallet) = app.call("wallet", Some(&auth), &[]).await;
    assert_eq!(status, 200, "{wallet}");
    wallet
}

async fn a_launch_writes_the_profile_only_when_it_changed(database: Database) {
    let app = TestApp::spawn(database).await;
    wallet_in(&app, BUYER, "en").await;
    let first = updated_at(&app, BUYER).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..3 {
        wallet_in(&app, BUYER, "en").await;
    }
    assert_eq!(
        updated_at(&app, BUYER).await,
        first,
        "an unchanged profile is not written again"
    );
    // A new language is a change: stored once.
    let wallet = wallet_in(&app, BUYER, "ru").await;
    assert_eq!(wallet["user"]["language"], "ru");
    assert_eq!(stored_language(&app, BUYER).await, "ru");
    assert!(updated_at(&app, BUYER).await > first);
}

async fn a_refused_invoice_writes_nothing(database: Database) {
    let app = TestApp::spawn_configured(database, &[("INVOICE_RATE_PER_MINUTE", "1")]).await;
    app.create_order(BUYER, "ndn-100").await;
    let before = updated_at(&app, BUYER).await;
    // Over the limit, with a changed profile that would otherwise be stored.
    let auth = format!("tma {}", app.init_data_aged(BUYER, "ru", Duration::ZERO));
    let (status, body) = app
        .call("create_invoice", Some(&auth), &[("package_id", "ndn-100")])
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(stored_language(&app, BUYER).await, "en");
    assert_eq!(updated_at(&app, BUYER).await, before);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 1);
}

/// `count` invoice requests of one buyer at once, spread over `bases`; their statuses.
async fn invoices_at_once(http: &reqwest::Client, bases: &[String], count: usize) -> Vec<u16> {
    let init_data = signed_init_data(BUYER);
    let requests = (0..count).map(|i| {
        let request = http
            .post(format!("{}/api/create_invoice", bases[i % bases.len()]))
            .header("Authorization", format!("tma {init_data}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("package_id=ndn-100")
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let mut statuses = futures::future::join_all(requests).await;
    statuses.sort_unstable();
    statuses
}

fn tally(statuses: &[u16]) -> (usize, usize) {
    let created = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(created + refused, statuses.len(), "{statuses:?}");
    (created, refused)
}

async fn invoice_limits_hold_under_concurrent_requests(database: Database) {
    let app = TestApp::spawn_configured(
        database,
        &[
            ("INVOICE_RATE_PER_MINUTE", "100"),
            ("MAX_PENDING_ORDERS", "3"),
        ],
    )
    .await;
    let statuses = invoices_at_once(&app.http, std::slice::from_ref(&app.base), 16).await;
    assert_eq!(tally(&statuses), (3, 13));
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_limits_hold_across_two_instances() {
    let Some(database) = Database::postgres().await else {
        return;
    };
    let (_telegram, telegram_url) = serve_fake_telegram().await;
    let http = reqwest::Client::new();
    for (rate, open, expected) in [("4", "100", 4), ("100", "3", 3)] {
        let mut instances = Vec::new();
        for _ in 0..2 {
            let mut vars = production_vars(&database.url, &telegram_url);
            vars.insert("INVOICE_RATE_PER_MINUTE".into(), rate.into());
            vars.insert("MAX_PENDING_ORDERS".into(), open.into());
            let config = server::config::Config::from_vars(&vars).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            instances.push(server::start(config, listener).await.unwrap());
        }
        let bases: Vec<String> = instances
            .iter()
            .map(|instance| format!("http://{}", instance.addr))
            .collect();
        let statuses = invoices_at_once(&http, &bases, 12).await;
        assert_eq!(
            tally(&statuses).0,
            expected,
            "rate {rate}, open {open}: {statuses:?}"
        );
        let store = &instances[0].state.store;
        assert_eq!(
            scalar(store, "SELECT COUNT(*) FROM orders").await,
            expected as i64,
            "one order per 200"
        );
        sqlx::query("DELETE FROM orders")
            .execute(store.pool())
            .await
            .unwrap();
        for instance in instances {
            instance.stop().await;
        }
    }
}

/// A command typed in a group the bot is in.
fn group_command(update_id: i64, from: i64, text: &str) -> Value {
    json!({ "update_id": update_id, "message": {
        "message_id": update_id, "from": user(from, "en"),
        "chat": { "id": -1_001_234_567_890_i64, "type": "supergroup", "title": "Friends" },
        "date": 1_700_000_000, "text": text,
    } })
}

async fn commands_in_a_group_say_nothing_about_money(database: Database) {
    let app = TestApp::spawn(database).await;
    let order_id = app.create_order(BUYER, "ndn-500").await;
    app.deliver(&successful_payment(
        1,
        BUYER,
        &order_id,
        225,
        "group-charge",
    ))
    .await;
    assert_eq!(app.messages_once_drained(1).await.len(), 1);

    for (id, text) in [
        (2, "/balance"),
        (3, "/paysupport"),
        (4, "/balance@ndn_sandbox_bot"),
        (5, "/help"),
        (6, "/start@someone_elses_bot"),
    ] {
        let (status, _) = app.deliver(&group_command(id, BUYER, text)).await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, _) = app.deliver(&group_command(7, BUYER, "/start")).await;
    assert_eq!(status, 200);
    let messages = app.messages_once_drained(2).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let answer = &messages[1];
    assert_eq!(answer.chat_id, -1_001_234_567_890);
    assert!(
        !answer.text.contains("500") && !answer.text.contains("group-charge"),
        "{}",
        answer.text
    );
    let button = &answer.reply_markup.as_ref().unwrap()["inline_keyboard"][0][0];
    assert_eq!(button["url"], "https://t.me/ndn_sandbox_bot?start=shop");
    assert!(
        button.get("web_app").is_none(),
        "no Mini App button in a group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_token_expires_with_the_launch_data_and_the_open_stream_ends_then() {
    let app = TestApp::spawn(Database::sqlite()).await;
    // Launch data with three seconds left.
    let aged = app.init_data_aged(BUYER, "en", Duration::from_secs(DAY - 3));
    let (status, wallet) = app.call("wallet", Some(&format!("tma {aged}")), &[]).await;
    assert_eq!(status, 200, "{wallet}");
    let token = wallet["events_token"].as_str().unwrap().to_owned();
    let expires: i64 = token.split('.').nth(1).unwrap().parse().unwrap();
    let launched = now_seconds() - (DAY as i64 - 3);
    assert!(
        (expires - (launched + DAY as i64)).abs() <= 1,
        "expires {expires}, launch data expires {}",
        launched + DAY as i64
    );

    let url = format!("{}/api/events?token={token}", app.base);
    let mut stream = app.http.get(&url).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream is still open: {seen}");
    assert!(seen.contains("event: expired"), "{seen}");
    assert!(
        now_seconds() >= expires,
        "it ended no sooner than the launch data"
    );
    assert_eq!(
        app.status_of(&format!("/api/events?token={token}")).await,
        401
    );
}

fn now_seconds() -> i64 {
    server::clock::now_ms() / 1000
}

#[tokio::test]
async fn a_webhook_call_without_the_secret_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let mut socket = tokio::net::TcpStream::connect(app.server.addr)
        .await
        .unwrap();
    // Announces a large body and never sends it.
    let head = format!(
        "POST /webhook/telegram HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         X-Telegram-Bot-Api-Secret-Token: wrong\r\nContent-Length: 200000\r\n\r\n",
        app.server.addr
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn metrics_are_private_unless_configured() {
    // A real bot without METRICS_TOKEN or METRICS_ADDR: not served beside the app.
    let closed = TestApp::spawn(Database::sqlite()).await;
    assert_eq!(closed.status_of("/metrics").await, 404);

    let token = "metrics-token-for-the-tests-0123";
    let guarded = TestApp::spawn_configured(Database::sqlite(), &[("METRICS_TOKEN", token)]).await;
    let url = format!("{}/metrics", guarded.base);
    for wrong in [
        None,
        Some("Bearer nope"),
        Some("Basic bWV0cmljcw=="),
        Some(token),
    ] {
        assert_eq!(scrape(&guarded.http, &url, wrong).await.0, 401, "{wrong:?}");
    }
    for right in [format!("Bearer {token}"), format!("bearer {token}")] {
        let (status, text) = scrape(&guarded.http, &url, Some(&right)).await;
        assert_eq!(status, 200);
        assert!(text.contains("ndn_payments_credited"), "{text}");
    }

    let apart =
        TestApp::spawn_configured(Database::sqlite(), &[("METRICS_ADDR", "127.0.0.1:0")]).await;
    assert_eq!(apart.status_of("/metrics").await, 404);
    let metrics_addr = apart.server.metrics_addr.expect("a metrics listener");
    let url = format!("http://{metrics_addr}/metrics");
    let (status, text) = scrape(&apart.http, &url, None).await;
    assert_eq!(status, 200);
    assert!(text.contains("ndn_payments_credited"), "{text}");
}

/// `GET url` with an optional `Authorization` value: the status and the text.
async fn scrape(http: &reqwest::Client, url: &str, authorization: Option<&str>) -> (u16, String) {
    let mut request = http.get(url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_real_bot_serves_production_pages_whatever_leptos_env_says() {
    let database = Database::sqlite();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    for (key, value) in production_vars(&database.url, "http://127.0.0.1:9") {
        command.env(key, value);
    }
    // What cargo leptos passes in development.
    let mut child = command
        .env("LEPTOS_OUTPUT_NAME", "ndn")
        .env("LEPTOS_ENV", "DEV")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut banner = Vec::new();
    let mut byte = [0u8; 1];
    while !banner.ends_with(b"\n") {
        let read = tokio::time::timeout(Duration::from_secs(20), stdout.read(&mut byte))
            .await
            .expect("the server starts")
            .unwrap();
        assert_eq!(
            read,
            1,
            "the server stopped: {}",
            String::from_utf8_lossy(&banner)
        );
        banner.push(byte[0]);
    }
    let banner = String::from_utf8_lossy(&banner);
    let base = banner
        .split("running on ")
        .nth(1)
        .expect("the address in the banner")
        .trim()
        .trim_end_matches('/');
    let page = reqwest::get(format!("{base}/")).await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("connect-src 'self';"), "{policy}");
    assert!(!policy.contains("ws:"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("3001"), "no live-reload script in the page");
    child.kill().await.unwrap();
}
