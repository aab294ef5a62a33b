//! Signed events to the operator's backend: each kind delivered once, signed, after its change
//! commits and never for one rolled back; retries until a 2xx; a receiver down for a while gets
//! everything in order; two instances send each event once; a killed instance's delivery is
//! made after its restart; private addresses refused unless allowed; failed events listed and
//! replayed; secrets rotated. Receivers here are real HTTP servers on loopback.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use server::keys::{self, Scope};
use server::outgoing::{EventStore, signature};
use sqlx::AssertSqlSafe;
use support::*;

on_both_databases!(
    each_event_is_delivered_once_signed_after_its_change_commits,
    a_receiver_failing_three_times_gets_the_event_exactly_once_more,
    a_receiver_down_gets_everything_in_order_once_it_is_back,
    a_delivery_cut_by_kill_9_is_made_after_the_restart,
    failed_events_are_listed_and_replayed,
    an_event_given_up_lets_the_next_one_go,
    private_addresses_are_refused_unless_allowed,
    a_rotated_secret_and_the_previous_one_both_verify_for_a_day,
    an_endpoint_taking_batches_gets_signed_arrays_in_order,
    events_past_their_retention_are_pruned_and_positions_keep_delivering,
    the_server_prunes_old_events_by_itself,
    a_redirect_is_never_followed,
);

/// Lets private addresses through (receivers are on loopback) and retries quickly.
const FAST: &[(&str, &str)] = &[
    ("ENDPOINTS_ALLOW_PRIVATE", "true"),
    ("EVENTS_FIRST_RETRY_MS", "100"),
];

/// [`FAST`], and an event is given up after a second of failures.
const GIVE_UP_FAST: &[(&str, &str)] = &[
    ("ENDPOINTS_ALLOW_PRIVATE", "true"),
    ("EVENTS_FIRST_RETRY_MS", "100"),
    ("EVENTS_RETRY_WINDOW", "1"),
];

/// One POST as a receiver got it.
#[derive(Debug, Clone)]
struct Post {
    event_id: String,
    kind: String,
    /// `Ndn-Event-Count`, sent with a batch.
    count: String,
    signature: String,
    body: Bytes,
    /// What the receiver answered.
    status: u16,
}

impl Post {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Reads the count `sql` every 50 ms for up to 5 s until it is `wanted`; the last one read.
async fn count_reaches(store: &server::store::Store, sql: &str, wanted: i64) -> i64 {
    let mut count = scalar(store, sql).await;
    for _ in 0..100 {
        if count == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        count = scalar(store, sql).await;
    }
    count
}

/// A receiver on loopback: answers 500 to its first `fail_first` POSTs, leaves the first
/// `hang_first` unanswered, and takes `delay` over each.
#[derive(Clone, Default)]
struct Inbox {
    posts: Arc<Mutex<Vec<Post>>>,
    fail_first: Arc<AtomicUsize>,
    hang_first: Arc<AtomicUsize>,
    delay: Duration,
}

impl Inbox {
    async fn serve(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/ndn", listener.local_addr().unwrap());
        self.serve_on(listener);
        url
    }

    fn serve_on(self, listener: tokio::net::TcpListener) {
        let router = axum::Router::new()
            .route("/hooks/ndn", axum::routing::post(receive))
            .with_state(self);
        tokio::spawn(async move { axum::serve(listener, router).await });
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// The events accepted (2xx), each id once, in the order they first arrived.
    fn accepted(&self) -> Vec<Post> {
        let mut seen = std::collections::HashSet::new();
        self.posts()
            .into_iter()
            .filter(|post| post.status == 200 && seen.insert(post.event_id.clone()))
            .collect()
    }

    async fn wait_for_accepted(&self, count: usize, within: Duration) -> Vec<Post> {
        let deadline = tokio::time::Instant::now() + within;
        while self.accepted().len() < count && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.accepted()
    }
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let take = |counter: &AtomicUsize| {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    let hang = take(&inbox.hang_first);
    let status = if take(&inbox.fail_first) { 500 } else { 200 };
    inbox.posts.lock().unwrap().push(Post {
        event_id: header("ndn-event-id"),
        kind: header("ndn-event-type"),
        count: header("ndn-event-count"),
        signature: header("ndn-signature"),
        body,
        status: if hang { 0 } else { status },
    });
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    tokio::time::sleep(inbox.delay).await;
    StatusCode::from_u16(status).unwrap()
}

/// A listener that only counts the connections made to it and closes them: where nothing
/// may connect, it shows whether anything tried (a TLS client reaching a plain HTTP server
/// would never make a POST it could see).
#[derive(Clone, Default)]
struct Tripwire(Arc<AtomicUsize>);

impl Tripwire {
    async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = self.0.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        addr
    }

    fn connections(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Every endpoint's `last_error`, once each has one (after 10 s, what there is).
async fn endpoint_errors(store: &server::store::Store) -> Vec<String> {
    let mut errors = Vec::new();
    for _ in 0..200 {
        let endpoints = EventStore::new(store).list().await.unwrap();
        errors = endpoints
            .iter()
            .filter_map(|endpoint| endpoint.last_error.clone())
            .collect();
        if !endpoints.is_empty() && errors.len() == endpoints.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    errors
}

/// Waits (20 s at most) until no delivery waits on any endpoint: every event accepted and
/// recorded, so nothing more will be sent and the receivers' posts are final.
async fn nothing_waits(store: &server::store::Store) {
    let mut waiting = -1;
    for _ in 0..400 {
        waiting = EventStore::new(store)
            .waiting(server::clock::now_ms())
            .await
            .unwrap()
            .0;
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{waiting} deliveries still wait");
}

/// Adds an endpoint with the CLI, as an operator would; returns its secret.
async fn subscribe(app: &TestApp, url: &str, events: &str) -> String {
    let (code, output) = app
        .cli(&["endpoints", "add", url, "--events", events])
        .await;
    assert_eq!(code, 0, "{output}");
    let secret = output.lines().next().unwrap().trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{output}");
    secret
}

fn now_secs() -> i64 {
    server::clock::now_ms() / 1000
}

fn assert_signed(post: &Post, secret: &str) {
    assert_eq!(
        signature::verify(secret, &post.signature, &post.body, now_secs()),
        Ok(()),
        "{post:?}"
    );
    let event = post.json();
    assert_eq!(event["id"], post.event_id.as_str());
    assert_eq!(event["type"], post.kind.as_str());
}

/// A purchase of `package` by `user` through the webhook; returns the charge id.
async fn buy(app: &TestApp, user: i64, package: &str, update_id: i64) -> String {
    let order_id = app.create_order(user, package).await;
    let stars = match package {
        "ndn-100" => 50,
        "ndn-500" => 225,
        _ => 400,
    };
    let charge = format!("charge-{}", uuid::Uuid::new_v4().simple());
    let (status, _) = app
        .deliver(&successful_payment(
            update_id, user, &order_id, stars, &charge,
        ))
        .await;
    assert_eq!(status, 200);
    charge
}

/// The service API with one key of every scope.
async fn service_call(app: &TestApp, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(key)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A trigger that makes any hold of exactly `amount` fail inside its transaction.
async fn refuse_holds_of(app: &TestApp, amount: i64) {
    let pool = app.server.state.store.pool();
    match app.server.state.store.engine() {
        server::store::Engine::Sqlite => {
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TRIGGER refuse_hold BEFORE INSERT ON holds WHEN NEW.amount = {amount}
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )))
            .execute(pool)
            .await
            .unwrap();
        }
        server::store::Engine::Postgres => {
            sqlx::query(AssertSqlSafe(format!(
                "CREATE FUNCTION refuse_hold() RETURNS trigger AS $$
                 BEGIN IF NEW.amount = {amount} THEN RAISE EXCEPTION 'refused by the test'; END IF;
                 RETURN NEW; END $$ LANGUAGE plpgsql"
            )))
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse_hold BEFORE INSERT ON holds
                 FOR EACH ROW EXECUTE FUNCTION refuse_hold()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

async fn each_event_is_delivered_once_signed_after_its_change_commits(database: Database) {
    let app = TestApp::spawn_configured(database, FAST).await;
    let inbox = Inbox::default();
    let url = inbox.clone().serve().await;
    let secret = subscribe(&app, &url, "all").await;
    let key = keys::create(
        &app.server.state.store,
        "game",
        &[Scope::Read, Scope::Spend, Scope::Grant],
    )
    .await
    .unwrap();

    // payment.credited, payment.refunded, payment.held
    let charge = buy(&app, BUYER, "ndn-500", 1).await;
    let (status, _) = app
        .deliver(&refunded_payment(2, BUYER, "", 225, &charge))
        .await;
    assert_eq!(status, 200);
    let held_charge = "charge-no-such-order";
    app.deliver(&successful_payment(
        3,
        BUYER,
        "ord_unknown",
        225,
        held_charge,
    ))
    .await;
    // credit.granted, debit.created, hold.created, hold.captured, hold.released
    let (status, credit) = service_call(
        &app,
        &key,
        "/v1/credits",
        json!({"user_id": BUYER, "amount": 300, "reason": "gift"}),
    )
    .await;
    assert_eq!(status, 201, "{credit}");
    let (status, _) = service_call(
        &app,
        &key,
        "/v1/debits",
        json!({"user_id": BUYER, "amount": 40, "reason": "sword"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, hold) = service_call(
        &app,
        &key,
        "/v1/holds",
        json!({"user_id": BUYER, "amount": 100, "expires_in": 600, "reason": "match"}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["id"].as_str().unwrap();
    let (status, _) = service_call(
        &app,
        &key,
        &format!("/v1/holds/{hold_id}/capture"),
        json!({"amount": 60}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, other) = service_call(
        &app,
        &key,
        "/v1/holds",
        json!({"user_id": BUYER, "amount": 10, "expires_in": 600}),
    )
    .await;
    assert_eq!(status, 201);
    let other_id = other["id"].as_str().unwrap();
    let (status, _) =
        service_call(&app, &key, &format!("/v1/holds/{other_id}/void"), json!({})).await;
    assert_eq!(status, 200);

    // A change that rolls back (the database refuses the hold inside its transaction) and a
    // refused debit write no event.
    refuse_holds_of(&app, 13).await;
    let (status, _) = service_call(
        &app,
        &key,
        "/v1/holds",
        json!({"user_id": BUYER, "amount": 13, "expires_in": 600}),
    )
    .await;
    assert!(status >= 500, "the hold's transaction failed: {status}");
    let (status, _) = service_call(
        &app,
        &key,
        "/v1/debits",
        json!({"user_id": BUYER, "amount": 1_000_000, "reason": "too much"}),
    )
    .await;
    assert_eq!(status, 409);

    let accepted = inbox.wait_for_accepted(9, Duration::from_secs(20)).await;
    nothing_waits(&app.server.state.store).await;
    let posts = inbox.posts();
    assert_eq!(posts.len(), 9, "each event once, nothing more: {posts:#?}");
    let kinds: Vec<&str> = accepted.iter().map(|post| post.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "payment.credited",
            "payment.refunded",
            "payment.held",
            "credit.granted",
            "debit.created",
            "hold.created",
            "hold.captured",
            "hold.created",
            "hold.released",
        ],
        "in the order of their changes"
    );
    for post in &accepted {
        assert_signed(post, &secret);
    }
    let by_kind: HashMap<&str, Value> = accepted
        .iter()
        .map(|post| (post.kind.as_str(), post.json()))
        .collect();
    let credited = &by_kind["payment.credited"]["data"];
    assert_eq!(
        (
            credited["charge_id"].as_str(),
            credited["amount"].as_i64(),
            credited["balance"].as_i64(),
            credited["stars"].as_i64()
        ),
        (Some(charge.as_str()), Some(500), Some(500), Some(225))
    );
    let refunded = &by_kind["payment.refunded"]["data"];
    assert_eq!(
        (refunded["amount"].as_i64(), refunded["balance"].as_i64()),
        (Some(500), Some(0))
    );
    assert_eq!(by_kind["payment.held"]["data"]["charge_id"], held_charge);
    assert_eq!(by_kind["credit.granted"]["data"]["account"]["balance"], 300);
    assert_eq!(by_kind["debit.created"]["data"]["account"]["balance"], 260);
    assert_eq!(by_kind["hold.captured"]["data"]["captured"], 60);
    assert_eq!(by_kind["hold.captured"]["data"]["account"]["balance"], 200);
    assert_eq!(by_kind["hold.released"]["data"]["status"], "voided");
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 9);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE body LIKE '%\"amount\":13,%'")
            .await,
        0
    );
    assert_eq!(app.count("SELECT delivered FROM endpoints").await, 9);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries").await,
        0,
        "no exceptions"
    );
    assert_books_balance(&app.server.state.store).await;
}

async fn a_receiver_failing_three_times_gets_the_event_exactly_once_more(database: Database) {
    let app = TestApp::spawn_configured(database, FAST).await;
    let inbox = Inbox::default();
    inbox.fail_first.store(3, Ordering::SeqCst);
    let url = inbox.clone().serve().await;
    let secret = subscribe(&app, &url, "payment.credited").await;
    buy(&app, BUYER, "ndn-100", 1).await;

    let accepted = inbox.wait_for_accepted(1, Duration::from_secs(20)).await;
    assert_eq!(accepted.len(), 1);
    nothing_waits(&app.server.state.store).await;
    let posts = inbox.posts();
    let statuses: Vec<u16> = posts.iter().map(|post| post.status).collect();
    assert_eq!(
        statuses,
        [500, 500, 500, 200],
        "three failures, then once more: {posts:?}"
    );
    assert!(
        posts
            .iter()
            .all(|post| post.event_id == accepted[0].event_id)
    );
    for post in &posts {
        assert_signed(post, &secret);
    }
    let (code, listed) = app.cli(&["endpoints", "list"]).await;
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.contains("0 waiting, 1 delivered, 0 failed") && !listed.contains("FAILING"),
        "{listed}"
    );
}

/// An address on loopback nobody listens on (yet).
fn unused_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Five purchases of 100 NDN by [`BUYER`], each followed by a 10 NDN debit through the
/// service API (`item 1` … `item 5`); returns the purchases' charge ids.
async fn buy_and_spend_five_times(app: &TestApp) -> Vec<String> {
    let key = keys::create(&app.server.state.store, "game", &[Scope::Spend])
        .await
        .unwrap();
    let mut charges = Vec::new();
    for update_id in 1..=5 {
        charges.push(buy(app, BUYER, "ndn-100", update_id).await);
        let (status, _) = service_call(
            app,
            &key,
            "/v1/debits",
            json!({"user_id": BUYER, "amount": 10, "reason": format!("item {update_id}")}),
        )
        .await;
        assert_eq!(status, 201);
    }
    charges
}

/// Checks that `events` are those of [`buy_and_spend_five_times`], in the order of the
/// changes: each credit or debit by its charge id or reason, with the balance after it.
fn assert_in_order_of_the_changes(events: &[Value], charges: &[String]) {
    let order: Vec<(String, i64)> = events
        .iter()
        .map(|event| {
            let key = event["data"]["charge_id"].as_str().map_or_else(
                || event["data"]["reason"].as_str().unwrap().to_owned(),
                str::to_owned,
            );
            (
                key,
                event["data"]["balance"]
                    .as_i64()
                    .or(event["data"]["account"]["balance"].as_i64())
                    .unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = (1..=5)
        .flat_map(|i| {
            [
                (charges[i - 1].clone(), 90 * (i as i64 - 1) + 100),
                (format!("item {i}"), 90 * i as i64),
            ]
        })
        .collect();
    assert_eq!(order, expected, "every event, in the order of the changes");
}

async fn a_receiver_down_gets_everything_in_order_once_it_is_back(database: Database) {
    let app = TestApp::spawn_configured(database, FAST).await;
    let addr = unused_address();
    let url = format!("http://{addr}/hooks/ndn");
    let secret = subscribe(&app, &url, "payment.credited,debit.created").await;
    let charges = buy_and_spend_five_times(&app).await;
    // The endpoint fails and backs off.
    count_reaches(
        &app.server.state.store,
        "SELECT COUNT(*) FROM endpoints WHERE failures >= 2",
        1,
    )
    .await;
    let (code, listed) = app.cli(&["endpoints", "list"]).await;
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.contains("10 waiting") && listed.contains("FAILING"),
        "{listed}"
    );

    let inbox = Inbox::default();
    inbox
        .clone()
        .serve_on(tokio::net::TcpListener::bind(addr).await.unwrap());
    let accepted = inbox.wait_for_accepted(10, Duration::from_secs(30)).await;
    assert_eq!(accepted.len(), 10);
    for post in &accepted {
        assert_signed(post, &secret);
    }
    let events: Vec<Value> = accepted.iter().map(Post::json).collect();
    assert_in_order_of_the_changes(&events, &charges);
    assert_eq!(inbox.posts().len(), 10, "nothing twice");
}

/// The server binary, killed with SIGKILL while a receiver holds its POST open.
async fn a_delivery_cut_by_kill_9_is_made_after_the_restart(database: Database) {
    let (_telegram, telegram_url) = serve_fake_telegram().await;
    let inbox = Inbox::default();
    inbox.hang_first.store(1, Ordering::SeqCst);
    let url = inbox.clone().serve().await;
    let vars = {
        let mut vars = production_vars(&database.url, &telegram_url);
        vars.extend(
            [
                ("ENDPOINTS_ALLOW_PRIVATE", "true"),
                ("EVENTS_FIRST_RETRY_MS", "100"),
                ("EVENTS_LEASE", "1"),
                ("EVENTS_TIMEOUT", "2"),
                ("RUST_LOG", "error"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        vars
    };
    let start = |port: u16| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&vars)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .current_dir(std::env::temp_dir())
            .kill_on_drop(true);
        command.spawn().expect("the server starts")
    };
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&vars)
            .current_dir(std::env::temp_dir());
        command.output().expect("the CLI runs")
    };
    // A new database: migrated first, as an operator does (no other command migrates).
    let output = cli(&["migrate"]);
    assert!(output.status.success(), "{output:?}");
    let output = cli(&["endpoints", "add", &url, "--events", "credit.granted"]);
    assert!(output.status.success(), "{output:?}");
    let secret = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = start(port);
    wait_ready(&base).await;
    let store = server::store::Store::connect(&database.url, 2)
        .await
        .unwrap();
    let key = keys::create(&store, "game", &[Scope::Grant]).await.unwrap();
    // The buyer opens the Mini App once (an account to credit).
    server_function(&http, &base, "wallet", &signed_init_data(BUYER), "").await;
    let credit = http
        .post(format!("{base}/v1/credits"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "gift-1")
        .json(&json!({"user_id": BUYER, "amount": 50, "reason": "gift"}))
        .send()
        .await
        .unwrap();
    assert_eq!(credit.status(), 201);
    // The POST is open at the receiver: kill the server there.
    for _ in 0..200 {
        if !inbox.posts().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(inbox.posts().len(), 1, "the delivery began");
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let mut second = start(port);
    wait_ready(&base).await;
    let accepted = inbox.wait_for_accepted(1, Duration::from_secs(20)).await;
    assert_eq!(accepted.len(), 1, "delivered after the restart");
    let posts = inbox.posts();
    assert_eq!(posts.len(), 2, "the cut attempt, then one more: {posts:?}");
    assert_eq!(
        posts[0].event_id, posts[1].event_id,
        "the same event: the receiver deduplicates"
    );
    assert_signed(&accepted[0], &secret);
    // Recorded once the receiver's 2xx is back at the server, a moment after it left.
    let delivered = count_reaches(&store, "SELECT delivered FROM endpoints", 1).await;
    assert_eq!(delivered, 1);
    second.start_kill().unwrap();
    let _ = second.wait().await;
}

/// An event given up after its retry window does not hold back the endpoint: once the
/// receiver is back, the next event goes, and the given-up one only on a replay.
async fn an_event_given_up_lets_the_next_one_go(database: Database) {
    let app = TestApp::spawn_configured(database, GIVE_UP_FAST).await;
    let inbox = Inbox::default();
    inbox.fail_first.store(1_000_000, Ordering::SeqCst);
    let url = inbox.clone().serve().await;
    subscribe(&app, &url, "payment.credited").await;
    let first = buy(&app, BUYER, "ndn-100", 1).await;
    let given_up = count_reaches(
        &app.server.state.store,
        "SELECT COUNT(*) FROM deliveries WHERE status = 'failed'",
        1,
    )
    .await;
    assert_eq!(given_up, 1);
    inbox.fail_first.store(0, Ordering::SeqCst);
    let second = buy(&app, BUYER, "ndn-100", 2).await;
    let accepted = inbox.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].json()["data"]["charge_id"], second);
    nothing_waits(&app.server.state.store).await;
    assert!(
        inbox
            .posts()
            .iter()
            .filter(|post| post.status == 200)
            .all(|post| post.json()["data"]["charge_id"] != first),
        "the given-up event is not sent again by itself"
    );
}

async fn failed_events_are_listed_and_replayed(database: Database) {
    let app = TestApp::spawn_configured(database, GIVE_UP_FAST).await;
    let inbox = Inbox::default();
    inbox.fail_first.store(1_000_000, Ordering::SeqCst);
    let url = inbox.clone().serve().await;
    subscribe(&app, &url, "payment.credited").await;
    buy(&app, BUYER, "ndn-100", 1).await;
    count_reaches(
        &app.server.state.store,
        "SELECT COUNT(*) FROM deliveries WHERE status = 'failed'",
        1,
    )
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'")
            .await,
        1
    );
    let failed_attempts = inbox.posts().len();
    assert!(failed_attempts >= 2, "retried within its window first");
    let event_id = inbox.posts()[0].event_id.clone();
    let (code, listed) = app.cli(&["events", "list", "--failed"]).await;
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.contains(&event_id)
            && listed.contains("failed after")
            && listed.contains("HTTP 500"),
        "{listed}"
    );
    let metrics = app.server.state.metrics.render();
    assert!(metrics.contains("ndn_events_failed_total 1"), "{metrics}");

    // Fixed: replay it.
    inbox.fail_first.store(0, Ordering::SeqCst);
    let (code, output) = app.cli(&["events", "replay", &event_id]).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("1 deliveries queued"), "{output}");
    let accepted = inbox.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].event_id, event_id);
    let (code, listed) = app.cli(&["events", "list", "--failed"]).await;
    assert_eq!((code, listed.trim()), (0, "no failed events"));

    // --since sends everything again; the receiver gets the same id once more.
    let (code, output) = app.cli(&["events", "replay", "--since", "1h"]).await;
    assert_eq!(code, 0, "{output}");
    for _ in 0..100 {
        if inbox
            .posts()
            .iter()
            .filter(|post| post.status == 200)
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        inbox
            .posts()
            .iter()
            .filter(|post| post.status == 200)
            .count(),
        2
    );
    let (code, output) = app.cli(&["events", "replay", "evt_nope"]).await;
    assert!(
        code != 0 && output.contains("no event evt_nope"),
        "{output}"
    );
}

async fn private_addresses_are_refused_unless_allowed(database: Database) {
    let app = TestApp::spawn(database).await;
    let inbox = Inbox::default();
    let url = inbox.clone().serve().await;
    for refused in [
        url.clone(),
        url.replacen("http://", "https://", 1),
        "https://localhost/hooks".into(),
        "https://169.254.169.254/latest/meta-data".into(),
        "https://[::1]:8443/".into(),
        "https://[::127.0.0.1]/".into(),
        "https://[::ffff:0:127.0.0.1]/".into(),
        "https://[::ffff:127.0.0.1]/".into(),
        "https://[64:ff9b:1::a00:1]/".into(),
        "https://[fd12::1]/".into(),
    ] {
        let (code, output) = app.cli(&["endpoints", "add", &refused]).await;
        assert_ne!(code, 0, "{refused} accepted: {output}");
        assert!(
            output.contains("private") || output.contains("https://"),
            "{output}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM endpoints").await, 0);

    // Endpoints written while private addresses were allowed are refused on every connection:
    // a name that resolves to loopback (after resolution) and a literal loopback address (no
    // resolver is asked for it). Neither gets as far as a TCP connection.
    let tripwire = Tripwire::default();
    let port = tripwire.serve().await.port();
    for url in [
        format!("https://localhost:{port}/hooks/ndn"),
        format!("https://127.0.0.1:{port}/hooks/ndn"),
    ] {
        server::outgoing::add_endpoint(&app.server.state.store, &url, "all", 1, true)
            .await
            .unwrap();
    }
    buy(&app, BUYER, "ndn-100", 1).await;
    let errors = endpoint_errors(&app.server.state.store).await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    for error in &errors {
        assert!(error.contains("private"), "{error}");
    }
    assert_eq!(
        tripwire.connections(),
        0,
        "a private address was connected to"
    );
    assert!(inbox.posts().is_empty());
}

/// A receiver answering `302` to another address on this machine: the event is not
/// delivered (a redirect is not a 2xx), the attempt says why, and nothing connects there.
async fn a_redirect_is_never_followed(database: Database) {
    let app = TestApp::spawn_configured(database, FAST).await;
    let tripwire = Tripwire::default();
    let elsewhere = format!("http://{}/hooks/ndn", tripwire.serve().await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ndn", listener.local_addr().unwrap());
    let redirect = axum::Router::new().route(
        "/hooks/ndn",
        axum::routing::post(move || {
            let elsewhere = elsewhere.clone();
            async move {
                (
                    StatusCode::FOUND,
                    [(axum::http::header::LOCATION, elsewhere)],
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, redirect).await });
    subscribe(&app, &url, "payment.credited").await;
    buy(&app, BUYER, "ndn-100", 1).await;
    let errors = endpoint_errors(&app.server.state.store).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("redirect"), "{errors:?}");
    assert_eq!(
        app.count("SELECT delivered FROM endpoints").await,
        0,
        "nothing counts as delivered"
    );
    assert_eq!(tripwire.connections(), 0, "the redirect was followed");
}

async fn a_rotated_secret_and_the_previous_one_both_verify_for_a_day(database: Database) {
    let app = TestApp::spawn_configured(database, FAST).await;
    let inbox = Inbox::default();
    let url = inbox.clone().serve().await;
    let old = subscribe(&app, &url, "payment.credited").await;
    let (code, output) = app.cli(&["endpoints", "rotate-secret", "1"]).await;
    assert_eq!(code, 0, "{output}");
    let new = output.lines().next().unwrap().trim().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    buy(&app, BUYER, "ndn-100", 1).await;
    let accepted = inbox.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(accepted.len(), 1);
    assert_signed(&accepted[0], &new);
    assert_signed(&accepted[0], &old);
    assert_eq!(accepted[0].signature.matches("v1=").count(), 2);
    let (code, listed) = app.cli(&["endpoints", "list"]).await;
    assert!(code == 0 && listed.contains("rotating"), "{listed}");
    // Past the day, only the new one signs.
    sqlx::query("UPDATE endpoints SET previous_until = 1")
        .execute(app.server.state.store.pool())
        .await
        .unwrap();
    buy(&app, BUYER, "ndn-100", 2).await;
    let accepted = inbox.wait_for_accepted(2, Duration::from_secs(10)).await;
    assert_signed(&accepted[1], &new);
    assert!(
        signature::verify(&old, &accepted[1].signature, &accepted[1].body, now_secs()).is_err()
    );
    let (code, output) = app.cli(&["endpoints", "remove", "1"]).await;
    assert_eq!((code, output.trim()), (0, "endpoint 1 removed"));
    assert_eq!(app.count("SELECT COUNT(*) FROM endpoints").await, 0);
}

/// An endpoint set to take batches of 4: while it is down ten events wait; back, it gets them
/// as signed JSON arrays of at most 4, in order, a failed batch again whole, each event
/// accepted once. Set back to one at a time, the next event comes alone.
async fn an_endpoint_taking_batches_gets_signed_arrays_in_order(database: Database) {
    let app = TestApp::spawn_configured(database, FAST).await;
    for size in ["0", "1001", "x"] {
        let (code, output) = app
            .cli(&["endpoints", "add", "http://127.0.0.1:9/h", "--batch", size])
            .await;
        assert_ne!(code, 0, "--batch {size}: {output}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM endpoints").await, 0);
    let addr = unused_address();
    let url = format!("http://{addr}/hooks/ndn");
    let (code, output) = app
        .cli(&[
            "endpoints",
            "add",
            &url,
            "--events",
            "payment.credited,debit.created",
            "--batch",
            "4",
        ])
        .await;
    assert_eq!(code, 0, "{output}");
    let secret = output.lines().next().unwrap().trim().to_owned();
    let charges = buy_and_spend_five_times(&app).await;
    count_reaches(
        &app.server.state.store,
        "SELECT COUNT(*) FROM endpoints WHERE failures >= 1",
        1,
    )
    .await;
    let (code, listed) = app.cli(&["endpoints", "list"]).await;
    assert!(
        code == 0 && listed.contains("up to 4 events per POST") && listed.contains("10 waiting"),
        "{listed}"
    );

    // Back, it refuses the first batch once.
    let inbox = Inbox::default();
    inbox.fail_first.store(1, Ordering::SeqCst);
    inbox
        .clone()
        .serve_on(tokio::net::TcpListener::bind(addr).await.unwrap());
    let delivered = "SELECT delivered FROM endpoints";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.count(delivered).await < 10 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count(delivered).await, 10);
    let posts = inbox.posts();
    let batches: Vec<Vec<Value>> = posts
        .iter()
        .map(|post| post.json().as_array().cloned().expect("a JSON array"))
        .collect();
    let shape: Vec<(u16, usize)> = posts
        .iter()
        .zip(&batches)
        .map(|(post, batch)| (post.status, batch.len()))
        .collect();
    assert_eq!(shape, [(500, 4), (200, 4), (200, 4), (200, 2)], "{posts:?}");
    assert_eq!(
        batches[0], batches[1],
        "the failed batch is sent again whole"
    );
    for (post, batch) in posts.iter().zip(&batches) {
        assert_eq!(
            signature::verify(&secret, &post.signature, &post.body, now_secs()),
            Ok(())
        );
        assert_eq!(post.count, batch.len().to_string());
        assert!(post.event_id.is_empty() && post.kind.is_empty(), "{post:?}");
    }
    let accepted: Vec<Value> = batches[1..].concat();
    let ids: std::collections::HashSet<&str> = accepted
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 10, "each event once");
    assert_in_order_of_the_changes(&accepted, &charges);

    // One at a time again: the next event comes alone, its id in the headers.
    let (code, output) = app.cli(&["endpoints", "batch", "1", "1"]).await;
    assert_eq!(
        (code, output.trim()),
        (0, "endpoint 1 takes one event per POST")
    );
    buy(&app, BUYER, "ndn-100", 6).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while inbox.posts().len() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = inbox.posts().pop().unwrap();
    assert!(last.json().is_object(), "{last:?}");
    assert_signed(&last, &secret);
    assert!(last.count.is_empty());
    let (code, _) = app.cli(&["endpoints", "batch", "7", "10"]).await;
    assert_ne!(code, 0, "no endpoint 7");
}

/// Two instances on one PostgreSQL database, both delivering: each event reaches the receiver
/// once while both run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_event_once() {
    let Some(database) = Database::postgres().await else {
        return;
    };
    let first = TestApp::spawn_configured(database, FAST).await;
    let inbox = Inbox {
        delay: Duration::from_millis(3),
        ..Inbox::default()
    };
    let url = inbox.clone().serve().await;
    subscribe(&first, &url, "credit.granted").await;
    let second = {
        let mut vars = production_vars(&first.database.url, "http://127.0.0.1:9");
        vars.extend(FAST.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = server::config::Config::from_vars(&vars).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        server::start(config, listener).await.unwrap()
    };
    let key = keys::create(&first.server.state.store, "game", &[Scope::Grant])
        .await
        .unwrap();
    let bases = [first.base.clone(), format!("http://{}", second.addr)];
    let http = reqwest::Client::new();
    for i in 0..200 {
        server_function(
            &http,
            &bases[i % 2],
            "wallet",
            &signed_init_data(1000 + i as i64),
            "",
        )
        .await;
    }
    let grants = (0..200).map(|i| {
        let (http, key, base) = (http.clone(), key.clone(), bases[i % 2].clone());
        async move {
            let response = http
                .post(format!("{base}/v1/credits"))
                .bearer_auth(key)
                .header("Idempotency-Key", format!("grant-{i}"))
                .json(&json!({"user_id": 1000 + i as i64, "amount": 5, "reason": "gift"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
    });
    futures::future::join_all(grants).await;
    let accepted = inbox.wait_for_accepted(200, Duration::from_secs(60)).await;
    assert_eq!(accepted.len(), 200);
    nothing_waits(&first.server.state.store).await;
    assert_eq!(inbox.posts().len(), 200, "no event sent twice");
    second.stop().await;
}

/// A transaction that writes its event before another's and commits after it (a slow change)
/// still has its event delivered, first: the worker reads no further than the oldest
/// transaction still running, so no endpoint's position passes an event yet to commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_is_not_passed_over() {
    let Some(database) = Database::postgres().await else {
        return;
    };
    let app = TestApp::spawn_configured(database, FAST).await;
    let inbox = Inbox::default();
    let url = inbox.clone().serve().await;
    subscribe(&app, &url, "payment.credited,credit.granted").await;
    // The slow change, staged by hand: an event row written, its transaction left open.
    let mut slow = app.server.state.store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (id, type, user_id, body, created_at)
         VALUES ('evt_slow', 'credit.granted', $1, '{\"id\":\"evt_slow\"}', $2)",
    )
    .bind(BUYER)
    .bind(server::clock::now_ms())
    .execute(&mut *slow)
    .await
    .unwrap();
    let charge = buy(&app, BUYER, "ndn-100", 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        inbox.posts().is_empty(),
        "nothing goes while an older transaction may still commit an event"
    );
    let (code, listed) = app.cli(&["endpoints", "list"]).await;
    assert!(code == 0 && listed.contains("1 waiting"), "{listed}");

    slow.commit().await.unwrap();
    let accepted = inbox.wait_for_accepted(2, Duration::from_secs(10)).await;
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[0].event_id, "evt_slow");
    assert_eq!(accepted[1].json()["data"]["charge_id"], charge);
    nothing_waits(&app.server.state.store).await;
    assert_eq!(inbox.posts().len(), 2, "each once");
}

/// The upkeep prunes by itself (its first pass runs when the server starts): events written
/// two days ago, past a one-day retention and delivered, are gone after a restart, but the
/// newest, and the count of pruned ones is kept.
async fn the_server_prunes_old_events_by_itself(database: Database) {
    let logs = captured_logs();
    let app = TestApp::spawn_configured(database, FAST).await;
    let inbox = Inbox::default();
    let url = inbox.clone().serve().await;
    subscribe(&app, &url, "payment.credited").await;
    for update in 1..=3 {
        buy(&app, BUYER, "ndn-100", update).await;
    }
    assert_eq!(
        inbox
            .wait_for_accepted(3, Duration::from_secs(10))
            .await
            .len(),
        3
    );
    nothing_waits(&app.server.state.store).await;
    sqlx::query("UPDATE events SET created_at = created_at - $1")
        .bind(2 * server::clock::DAY_MS)
        .execute(app.server.state.store.pool())
        .await
        .unwrap();
    let app = app
        .restart_configured(&[("EVENTS_RETENTION_DAYS", "1")])
        .await;
    let left = count_reaches(&app.server.state.store, "SELECT COUNT(*) FROM events", 1).await;
    assert_eq!(left, 1, "all but the newest pruned");
    let (pruned, _) = EventStore::new(&app.server.state.store)
        .pruned()
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    // The operator's log says how many went, once the pruning has found nothing more.
    let said = |text: &str| {
        text.lines().any(|line| {
            line.contains("events past their retention deleted") && line.contains("pruned=2")
        })
    };
    for _ in 0..200 {
        if said(&logs.text()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(said(&logs.text()), "{}", logs.text());
    // A pass that found nothing to prune says nothing (every server here ran one as it started).
    assert!(
        !logs.text().lines().any(|line| line.contains("pruned=0")),
        "{}",
        logs.text()
    );
}

async fn events_past_their_retention_are_pruned_and_positions_keep_delivering(database: Database) {
    let app = TestApp::spawn_configured(database, FAST).await;
    let store = &app.server.state.store;
    let inbox = Inbox::default();
    let url = inbox.clone().serve().await;
    subscribe(&app, &url, "payment.credited").await;
    for update in 1..=3 {
        buy(&app, BUYER, "ndn-100", update).await;
    }
    let delivered = inbox.wait_for_accepted(3, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 3);

    // Every event so far is past a retention that ends now, and the endpoint has them all:
    // all go but the newest, which stays as the floor of the numbering.
    let now = server::clock::now_ms();
    assert_eq!(
        EventStore::new(store)
            .prune(now + 1, 500, now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 1);
    let (code, listed) = app.cli(&["events", "list"]).await;
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.contains("pruned: 2 events older than 30 days"),
        "{listed}"
    );
    let (code, output) = app.cli(&["events", "replay", &delivered[0].event_id]).await;
    assert!(code != 0 && output.contains("pruned"), "{output}");

    // The position keeps delivering: new events are numbered after it, none passed over.
    for update in 4..=5 {
        buy(&app, BUYER, "ndn-100", update).await;
    }
    assert_eq!(
        inbox
            .wait_for_accepted(5, Duration::from_secs(10))
            .await
            .len(),
        5
    );

    // An event the endpoint has not had yet is never pruned, however old.
    inbox.fail_first.store(1_000_000, Ordering::SeqCst);
    for update in 6..=7 {
        buy(&app, BUYER, "ndn-100", update).await;
    }
    while !inbox.posts().iter().any(|post| post.status == 500) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waiting: Vec<String> =
        sqlx::query_scalar("SELECT id FROM events ORDER BY seq DESC LIMIT 2")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let now = server::clock::now_ms();
    assert_eq!(
        EventStore::new(store)
            .prune(now + 1, 500, now)
            .await
            .unwrap(),
        3,
        "3, 4 and 5"
    );
    for id in &waiting {
        assert!(
            EventStore::new(store).exists(id).await.unwrap(),
            "{id} pruned while waiting"
        );
    }
    inbox.fail_first.store(0, Ordering::SeqCst);
    let all = inbox.wait_for_accepted(7, Duration::from_secs(20)).await;
    assert_eq!(all.len(), 7);
    assert_eq!(
        all.iter()
            .map(|post| post.event_id.clone())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        7,
        "each once"
    );
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
}
