//! The sandbox: Telegram's stand-in keeps Telegram's rules, delivers over real HTTP, and does
//! not exist in production.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use server::sandbox::fake_telegram::FakeTelegram;
use server::telegram::bot_api::{BotApi, BotApiError, StarsInvoice};
use server::telegram::updates::PreCheckoutAnswer;
use server::wallet::ids::UserId;
use support::*;

fn description(result: Result<impl std::fmt::Debug, BotApiError>) -> String {
    match result {
        Err(BotApiError::Api { description, .. }) => description,
        other => panic!("expected a Telegram error, got {other:?}"),
    }
}

async fn fake_bot_api() -> (FakeTelegram, BotApi) {
    let telegram = FakeTelegram::new(TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = telegram.router::<()>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (telegram, BotApi::new(&url, TOKEN, false))
}

#[tokio::test]
async fn fake_bot_api_keeps_telegrams_invoice_rules() {
    let (_, bot) = fake_bot_api().await;
    let good = StarsInvoice {
        title: "500 NDN",
        description: "d",
        payload: "order",
        label: "500 NDN",
        amount: 225,
    };
    let link = bot.create_invoice_link(&good).await.unwrap();
    assert!(link.starts_with("https://t.me/$"));

    let long_title = "x".repeat(33);
    let too_long = StarsInvoice {
        title: &long_title,
        ..good.clone()
    };
    assert!(description(bot.create_invoice_link(&too_long).await).contains("title"));
    let long_payload = "p".repeat(129);
    let big_payload = StarsInvoice {
        payload: &long_payload,
        ..good.clone()
    };
    assert!(description(bot.create_invoice_link(&big_payload).await).contains("payload"));

    let base = json!({ "title": "t", "description": "d", "payload": "p", "currency": "XTR",
                       "prices": [{ "label": "a", "amount": 1 }] });
    let with = |key: &str, value: Value| {
        let mut params = base.clone();
        params[key] = value;
        params
    };
    let two_prices = with(
        "prices",
        json!([{ "label": "a", "amount": 1 }, { "label": "b", "amount": 2 }]),
    );
    let call = |params: Value| {
        let bot = bot.clone();
        async move { bot.call::<_, String>("createInvoiceLink", &params).await }
    };
    assert!(description(call(two_prices).await).contains("STARS_INVOICE_INVALID"));
    assert!(
        description(call(with("provider_token", json!("tok"))).await)
            .contains("PAYMENT_PROVIDER_INVALID")
    );
    assert!(
        description(call(with("max_tip_amount", json!(5))).await).contains("STARS_INVOICE_INVALID")
    );
    assert!(description(call(with("currency", json!("XTS"))).await).contains("CURRENCY_INVALID"));
}

fn answer(query_id: &str, ok: bool, error_message: Option<&str>) -> PreCheckoutAnswer {
    PreCheckoutAnswer {
        pre_checkout_query_id: query_id.into(),
        ok,
        error_message: error_message.map(str::to_owned),
    }
}

#[tokio::test]
async fn fake_bot_api_checks_pre_checkout_answers_and_refunds() {
    let (telegram, bot) = fake_bot_api().await;
    assert!(
        description(
            bot.answer_pre_checkout_query(&answer("never-sent", true, None))
                .await
        )
        .contains("QUERY_ID_INVALID")
    );
    telegram.open_pre_checkout("q1");
    assert!(
        description(
            bot.answer_pre_checkout_query(&answer("q1", false, None))
                .await
        )
        .contains("ERROR_MESSAGE_EMPTY")
    );
    assert!(
        bot.answer_pre_checkout_query(&answer("q1", false, Some("sold out")))
            .await
            .unwrap()
    );
    assert_eq!(
        telegram.pre_checkout_answer("q1"),
        Some((false, Some("sold out".into())))
    );
    assert!(
        description(
            bot.answer_pre_checkout_query(&answer("q1", true, None))
                .await
        )
        .contains("QUERY_ID_INVALID")
    );

    let charge = telegram.record_charge(UserId(BUYER), 50, "order");
    assert!(
        description(bot.refund_star_payment(UserId(BUYER), "unknown").await)
            .contains("CHARGE_NOT_FOUND")
    );
    assert!(
        bot.refund_star_payment(UserId(BUYER), &charge)
            .await
            .unwrap()
    );
    assert!(
        description(bot.refund_star_payment(UserId(BUYER), &charge).await)
            .contains("CHARGE_ALREADY_REFUNDED")
    );

    let unreachable = BotApi::new(&format!("http://{}", "127.0.0.1:1"), TOKEN, false);
    assert!(matches!(
        unreachable.get_me().await,
        Err(BotApiError::Transport { .. })
    ));
}

#[tokio::test]
async fn production_mode_serves_nothing_of_the_sandbox() {
    let app = TestApp::spawn(Database::sqlite()).await;
    for path in [
        "/sandbox",
        "/sandbox/host.js",
        "/sandbox/api/users",
        "/sandbox/telegram-web-app.js",
        &format!("/sandbox/bot-api/bot{TOKEN}/getMe"),
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let pay = app
        .http
        .post(format!("{}/sandbox/api/pay", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status(), 404);
}

/// The sandbox server, as `cargo leptos watch` runs it without a token.
async fn sandbox_server(database: &Database) -> (server::Running, String, reqwest::Client) {
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", database.url.as_str()),
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ("NDN_SANDBOX", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = server::config::Config::from_vars(&vars).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = server::start(config, listener).await.unwrap();
    let base = format!("http://{}", running.addr);
    (running, base, reqwest::Client::new())
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn post_json(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = http.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A counter of the server's metrics, by its full name and labels (0 before its first count).
fn counter(running: &server::Running, name: &str) -> u64 {
    running
        .state
        .metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// Waits (10 s at most) until the webhook has received at least `copies` updates of `kind`
/// and answered every one it received; how many it answered.
async fn webhook_done(running: &server::Running, kind: &str, copies: u64) -> u64 {
    let received = format!("ndn_updates_received_total{{kind=\"{kind}\"}}");
    let answered = format!("ndn_webhook_duration_seconds_count{{kind=\"{kind}\"}}");
    for _ in 0..200 {
        let got = counter(running, &received);
        if got >= copies && counter(running, &answered) == got {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    counter(running, &answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_purchase_with_duplicates_and_a_lost_answer_credits_once() {
    let database = Database::sqlite();
    let (running, base, http) = sandbox_server(&database).await;
    let alice = 100_001;
    let knobs = post_json(
        &http,
        format!("{base}/sandbox/api/knobs"),
        json!({ "copies": 5, "drop_first": true }),
    )
    .await;
    assert_eq!(
        knobs.1,
        json!({ "copies": 5, "delay_secs": 0, "drop_first": true })
    );

    let (_, slug) = sandbox_invoice(&http, &base, alice, "ndn-500").await;

    let (status, paid) = post_json(
        &http,
        format!("{base}/sandbox/api/pay"),
        json!({ "user": alice, "slug": slug }),
    )
    .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (200, Some("paid")),
        "{paid}"
    );

    let store = &running.state.store;
    // Every copy reached the webhook and was answered (five, and the first again after its
    // answer was lost): credited once though the server handled them all.
    let handled = webhook_done(&running, "successful_payment", 6).await;
    assert!(handled >= 6, "the webhook handled {handled} copies");
    assert_eq!(store.balance(UserId(alice)).await.unwrap(), 500);
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM transfers").await,
        1,
        "one purchase transfer"
    );
    // The notice is sent and nothing else waits in the outbox: the chat below is complete.
    for _ in 0..200 {
        let sent = scalar(store, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await;
        if sent >= 1
            && server::notifier::queue::Queue::new(store)
                .pending()
                .await
                .unwrap()
                == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server::notifier::queue::Queue::new(store)
            .pending()
            .await
            .unwrap(),
        0
    );
    let chat = get_json(&http, format!("{base}/sandbox/api/chat?user={alice}")).await;
    assert_eq!(chat.as_array().unwrap().len(), 1, "{chat}");
    assert!(chat[0]["text"].as_str().unwrap().starts_with("+500 NDN"));

    // A refund from Telegram's side reaches the webhook as refunded_payment, applied once.
    let charge = paid["charge_id"].as_str().unwrap();
    let (status, _) = post_json(
        &http,
        format!("{base}/sandbox/api/refund"),
        json!({ "charge_id": charge }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post_json(
        &http,
        format!("{base}/sandbox/api/refund"),
        json!({ "charge_id": charge }),
    )
    .await;
    assert_eq!(status, 409);
    let handled = webhook_done(&running, "refunded_payment", 6).await;
    assert!(
        handled >= 6,
        "the webhook handled {handled} copies of the refund"
    );
    assert_eq!(store.balance(UserId(alice)).await.unwrap(), 0);
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM transfers").await,
        2,
        "the purchase and one refund"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_answers_requests_addressed_to_this_machine_only() {
    let database = Database::sqlite();
    let (running, base, http) = sandbox_server(&database).await;
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    let port = running.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let request = http.get(format!("{base}/sandbox")).header("Host", &host);
        assert_eq!(status(request).await, 200, "{host}");
    }
    // A tunnel or proxy forwarding a public name, or a page rebinding its name to 127.0.0.1.
    for host in [
        "ndn.example.org",
        "attacker.example:3000",
        "127.0.0.1.nip.io",
    ] {
        let request = http.get(format!("{base}/api/wallet")).header("Host", host);
        assert_eq!(status(request).await, 403, "{host}");
    }
    let proxied = http
        .get(format!("{base}/sandbox"))
        .header("X-Forwarded-For", "203.0.113.9");
    assert_eq!(status(proxied).await, 403);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_refused_checkout_reports_the_bots_reason() {
    let database = Database::sqlite();
    let (running, base, http) = sandbox_server(&database).await;
    // An invoice whose order does not exist: the server refuses the pre-checkout.
    let bot = BotApi::new(
        &format!("{base}/sandbox/bot-api"),
        server::config::SANDBOX_BOT_TOKEN,
        false,
    );
    let invoice = StarsInvoice {
        title: "100 NDN",
        description: "d",
        payload: "no-such-order",
        label: "x",
        amount: 50,
    };
    let url = bot.create_invoice_link(&invoice).await.unwrap();
    let slug = url.rsplit('$').next().unwrap();
    let (_, result) = post_json(
        &http,
        format!("{base}/sandbox/api/pay"),
        json!({ "user": 100_002, "slug": slug }),
    )
    .await;
    assert_eq!(result["status"], "failed");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("Заказ не найден"),
        "{result}"
    );
    running.stop().await;
}
