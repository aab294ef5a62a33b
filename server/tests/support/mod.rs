//! Test harness: the real server on 127.0.0.1:0 with a fresh database (SQLite file or a new
//! PostgreSQL database) and the fake Telegram Bot API on its own loopback port.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use server::clock::now_ms;
use server::sandbox::fake_telegram::{FakeTelegram, SentMessage};
use server::telegram::init_data::InitDataValidator;
use server::telegram::updates::{
    Message, PreCheckoutQuery, RefundedPayment, SuccessfulPayment, Update, User,
};
use server::wallet::amounts::Stars;
use server::wallet::ids::UserId;
use sqlx::AssertSqlSafe;

pub const TOKEN: &str = "4242:integration-test-token";
pub const SECRET: &str = "integration_test_secret";
pub const BUYER: i64 = 279_058_397;
pub const OTHER_BUYER: i64 = 555_000_111;
/// Order limits no test of the store itself runs into.
pub const NO_LIMITS: server::store::OrderLimits = server::store::OrderLimits {
    per_minute: i64::MAX,
    open: i64::MAX,
};

/// A fresh database for one test.
pub struct Database {
    pub url: String,
    /// PostgreSQL only: the administrative URL and this database's name.
    pub admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/ndn.db", dir.path().display());
        Self {
            url,
            admin: None,
            _dir: Some(dir),
        }
    }

    /// A new database on the local PostgreSQL server; `None` (with one printed line) when no
    /// server is reachable outside CI. Under `CI=true` PostgreSQL is required.
    pub async fn postgres() -> Option<Self> {
        let admin = std::env::var("NDN_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        sqlx::any::install_default_drivers();
        // A server that is not there is known within a second or two (sqlx's default keeps
        // retrying for 30 s, for every test that would skip).
        let connection = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&admin)
            .await;
        let pool = match connection {
            Ok(pool) => pool,
            Err(error) if std::env::var("CI").as_deref() != Ok("true") => {
                println!("skipping PostgreSQL test: no server at {admin} ({error})");
                note_skip(&admin);
                return None;
            }
            Err(error) => panic!("PostgreSQL is required under CI=true: {admin}: {error}"),
        };
        let name = format!("ndn_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .expect("create test database");
        pool.close().await;
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        Some(Self {
            url: format!("{base}/{name}"),
            admin: Some((admin, name)),
            _dir: None,
        })
    }
}

/// Adds a line naming the running test to the file `NDN_TEST_SKIPS` names, if any:
/// `./scripts/test` counts them at the end (cargo shows a skipped test as passed).
fn note_skip(admin: &str) {
    use std::io::Write;
    let Ok(path) = std::env::var("NDN_TEST_SKIPS") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{test}: no PostgreSQL at {admin}");
    }
}

/// Runs `$test(Database)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Database::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(database) = $crate::support::Database::postgres().await {
                        super::$name(database).await;
                    }
                }
            )*
        }
    };
}

pub struct TestApp {
    pub server: server::Running,
    pub telegram: FakeTelegram,
    pub base: String,
    pub http: reqwest::Client,
    pub database: Database,
    pub telegram_url: String,
    validator: InitDataValidator,
    poll: bool,
    extra: Vec<(String, String)>,
}

/// The fake Telegram Bot API on its own loopback port.
pub async fn serve_fake_telegram() -> (FakeTelegram, String) {
    let telegram = FakeTelegram::new(TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = telegram.router::<()>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (telegram, url)
}

pub fn production_vars(database_url: &str, api_url: &str) -> HashMap<String, String> {
    [
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_WEBHOOK_SECRET", SECRET),
        ("TELEGRAM_API_URL", api_url),
        ("DATABASE_URL", database_url),
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ("PUBLIC_URL", "https://ndn.example.org"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl TestApp {
    pub async fn spawn(database: Database) -> Self {
        Self::spawn_with(database, false).await
    }

    /// A server with extra configuration variables.
    pub async fn spawn_configured(database: Database, extra: &[(&str, &str)]) -> Self {
        let (telegram, telegram_url) = serve_fake_telegram().await;
        let extra = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start(database, telegram, telegram_url, false, extra).await
    }

    /// A server that long-polls the fake Telegram (`serve --poll`) instead of a webhook.
    pub async fn spawn_polling(database: Database) -> Self {
        Self::spawn_with(database, true).await
    }

    async fn spawn_with(database: Database, poll: bool) -> Self {
        let (telegram, telegram_url) = serve_fake_telegram().await;
        Self::start(database, telegram, telegram_url, poll, Vec::new()).await
    }

    async fn start(
        database: Database,
        telegram: FakeTelegram,
        telegram_url: String,
        poll: bool,
        extra: Vec<(String, String)>,
    ) -> Self {
        let mut vars = production_vars(&database.url, &telegram_url);
        vars.extend(extra.iter().cloned());
        let mut config =
            server::config::Config::from_vars(&vars).expect("test configuration is valid");
        config.telegram.poll_updates = poll;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = server::start(config, listener)
            .await
            .expect("server starts");
        Self {
            base: format!("http://{}", server.addr),
            server,
            telegram,
            http: reqwest::Client::new(),
            database,
            telegram_url,
            validator: InitDataValidator::new(TOKEN, Duration::from_secs(86_400)),
            poll,
            extra,
        }
    }

    /// Stops this server and starts a new one on the same database and fake Telegram.
    pub async fn restart(self) -> Self {
        self.restart_configured(&[]).await
    }

    /// Stops this server and starts a new one with `extra` configuration on top of its own.
    pub async fn restart_configured(self, extra: &[(&str, &str)]) -> Self {
        let Self {
            server,
            telegram,
            database,
            telegram_url,
            poll,
            extra: mut vars,
            ..
        } = self;
        server.stop().await;
        vars.retain(|(key, _)| !extra.iter().any(|(name, _)| name == key));
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::start(database, telegram, telegram_url, poll, vars).await
    }

    /// Runs the `server` binary with `args` against this app's database and fake Telegram;
    /// returns its exit code and output.
    pub async fn cli(&self, args: &[&str]) -> (i32, String) {
        self.cli_logging(args, "error").await
    }

    /// Like [`TestApp::cli`], logging at `level` (the log lines are in the output).
    pub async fn cli_logging(&self, args: &[&str], level: &str) -> (i32, String) {
        self.cli_with(args, level, &[]).await
    }

    /// Like [`TestApp::cli`], with `vars` set last (another `DATABASE_URL`, say).
    pub async fn cli_env(&self, args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
        self.cli_with(args, "error", vars).await
    }

    async fn cli_with(&self, args: &[&str], level: &str, vars: &[(&str, &str)]) -> (i32, String) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", level)
            .current_dir(std::env::temp_dir());
        for (key, value) in production_vars(&self.database.url, &self.telegram_url) {
            command.env(key, value);
        }
        // The server's own configuration on top (a CLI run shares it in production too).
        for (key, value) in &self.extra {
            command.env(key, value);
        }
        for (key, value) in vars {
            command.env(key, value);
        }
        let output = command.output().await.expect("the server binary runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    /// initData as Telegram would sign it for `user_id`, dated `age` ago.
    pub fn init_data_aged(&self, user_id: i64, language: &str, age: Duration) -> String {
        let user = json!({ "id": user_id, "first_name": "Vladislav", "language_code": language })
            .to_string();
        let auth_date = (now_ms() / 1000 - age.as_secs() as i64).to_string();
        self.validator.sign(&[
            ("user", &user),
            ("auth_date", &auth_date),
            ("query_id", "AAHdF6IQ"),
        ])
    }

    pub fn init_data(&self, user_id: i64) -> String {
        self.init_data_aged(user_id, "en", Duration::ZERO)
    }

    /// Calls a server function as the Mini App does; returns status and JSON body.
    pub async fn call(
        &self,
        function: &str,
        authorization: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .http
            .post(format!("{}/api/{function}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        send(request).await
    }

    pub async fn call_as(
        &self,
        user_id: i64,
        function: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let auth = format!("tma {}", self.init_data(user_id));
        self.call(function, Some(&auth), form).await
    }

    pub async fn balance(&self, user_id: i64) -> i64 {
        let (status, wallet) = self.call_as(user_id, "wallet", &[]).await;
        assert_eq!(status, 200, "{wallet}");
        wallet["balance"].as_i64().unwrap()
    }

    /// Creates an invoice for `package_id`; returns the order id.
    pub async fn create_order(&self, user_id: i64, package_id: &str) -> String {
        let (status, invoice) = self
            .call_as(user_id, "create_invoice", &[("package_id", package_id)])
            .await;
        assert_eq!(status, 200, "{invoice}");
        invoice["order_id"].as_str().unwrap().to_owned()
    }

    /// Posts an update with the right secret.
    pub async fn deliver(&self, update: &Value) -> (u16, Value) {
        self.deliver_with_secret(update, Some(SECRET)).await
    }

    pub async fn deliver_with_secret(&self, update: &Value, secret: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/webhook/telegram", self.base))
            .json(update);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        send(request).await
    }

    /// The messages the fake Telegram got, once it holds at least `count` and the outbox has
    /// drained (see [`drained_messages`]).
    pub async fn messages_once_drained(&self, count: usize) -> Vec<SentMessage> {
        drained_messages(&self.server.state.store, &self.telegram, count).await
    }

    /// A payment of the wrong amount for its order (200 Stars for the 225 of `ndn-500`):
    /// recorded and held for the operator; its charge id.
    pub async fn held_payment(&self, update: i64, buyer: i64) -> String {
        let order_id = self.create_order(buyer, "ndn-500").await;
        let charge = self.telegram.record_charge(UserId(buyer), 200, &order_id);
        let payment = successful_payment(update, buyer, &order_id, 200, &charge);
        assert_eq!(self.deliver(&payment).await.0, 200);
        charge
    }

    /// The status of `GET path`.
    pub async fn status_of(&self, path: &str) -> u16 {
        let response = self.http.get(format!("{}{path}", self.base)).send().await;
        response.expect("the server answers").status().as_u16()
    }

    /// `GET /metrics` with `METRICS_TOKEN` (the app must be configured with it).
    pub async fn metrics(&self, token: &str) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers");
        response.text().await.expect("a text answer")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        scalar(&self.server.state.store, sql).await
    }
}

/// Waits until the fake Telegram holds at least `count` messages (30 s, and 1.5 s more for
/// each: the bot sends one message a second to a chat, and retries after failures), then until no message is left to send
/// in the outbox, so that a second notice queued for the same chat — sent a second after the
/// first — is among what comes back; then the messages Telegram got.
pub async fn drained_messages(
    store: &server::store::Store,
    telegram: &FakeTelegram,
    count: usize,
) -> Vec<SentMessage> {
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(30)
        + Duration::from_millis(1_500) * u32::try_from(count).unwrap_or(u32::MAX);
    while telegram.sent_messages().len() < count && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A row is marked sent only after Telegram answered: none pending, all of it is here.
    let mut pending = -1;
    while tokio::time::Instant::now() < deadline + Duration::from_secs(10) {
        pending = server::notifier::queue::Queue::new(store)
            .pending()
            .await
            .expect("the outbox is readable");
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0, "the outbox drained");
    telegram.sent_messages()
}

/// A free port on loopback (for a server started as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// In the sandbox at `base`: `user`'s signed launch data and the slug of a new invoice for
/// `package_id`, as the host page gets them.
pub async fn sandbox_invoice(
    http: &reqwest::Client,
    base: &str,
    user: i64,
    package_id: &str,
) -> (String, String) {
    let launch: Value = http
        .get(format!("{base}/sandbox/api/launch?user={user}"))
        .send()
        .await
        .expect("the sandbox answers")
        .json()
        .await
        .expect("a JSON answer");
    let init_data = launch["init_data"].as_str().unwrap().to_owned();
    let invoice = server_function(
        http,
        base,
        "create_invoice",
        &init_data,
        &format!("package_id={package_id}"),
    )
    .await;
    let slug = invoice["invoice_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no invoice: {invoice}"))
        .rsplit('$')
        .next()
        .unwrap()
        .to_owned();
    (init_data, slug)
}

/// initData for `user_id`, signed with the test bot's token as Telegram would.
pub fn signed_init_data(user_id: i64) -> String {
    let signer = InitDataValidator::new(TOKEN, Duration::from_secs(86_400));
    let user = json!({ "id": user_id, "first_name": "Buyer", "language_code": "en" }).to_string();
    let now = (now_ms() / 1000).to_string();
    signer.sign(&[("user", &user), ("auth_date", &now)])
}

/// Waits until the server at `base` answers `/readyz` with 200 (ten seconds at most).
pub async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {base} did not start");
}

/// Calls a server function of the server at `base` with `tma <init_data>`; the JSON answer.
pub async fn server_function(
    http: &reqwest::Client,
    base: &str,
    function: &str,
    init_data: &str,
    body: &str,
) -> Value {
    http.post(format!("{base}/api/{function}"))
        .header("Authorization", format!("tma {init_data}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// Changes a PostgreSQL database's settings (`ALTER DATABASE <name> <change>`) and ends its
/// sessions, so that every connection the server opens next has the new settings.
pub async fn alter_database(admin: &sqlx::AnyPool, name: &str, change: &str) {
    sqlx::query(AssertSqlSafe(format!("ALTER DATABASE {name} {change}")))
        .execute(admin)
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    )))
    .execute(admin)
    .await
    .unwrap();
}

/// An account's balance as its transfers give it (a buyer's id, or a system account's).
pub async fn balance_from_transfers(store: &server::store::Store, account: i64) -> i64 {
    scalar(
        store,
        &format!(
            "SELECT CAST(COALESCE(SUM(CASE WHEN credit_account = {account} THEN amount
                                         ELSE -amount END), 0) AS BIGINT)
             FROM transfers WHERE credit_account = {account} OR debit_account = {account}"
        ),
    )
    .await
}

/// `server ledger verify` on the store's database: fails the test naming every discrepancy.
pub async fn assert_books_balance(store: &server::store::Store) {
    let report = server::ledger::verify::verify(store).await.unwrap();
    assert!(report.is_clean(), "{report}");
}

/// The books over `store` as a server builds them (its effects: metrics, live events for this
/// process, the notifier's wake-up).
pub fn ledger(store: &server::store::Store) -> server::ledger::Ledger {
    let effects = server::http::effects::Effects::serving(
        std::sync::Arc::new(server::telemetry::metrics::Metrics::default()),
        store.engine(),
        server::live::LiveEvents::default(),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    server::ledger::Ledger::new(store.clone(), effects)
}

/// Every line this test binary logs (one subscriber serves all its tests; each test looks for
/// its own ids in it).
pub fn captured_logs() -> CapturedLogs {
    static CAPTURED: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = CapturedLogs::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            captured
        })
        .clone()
}

#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A live event stream of one buyer, read in the background.
pub struct EventStream {
    seen: std::sync::Arc<std::sync::Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// Opens `user_id`'s stream on the server at `base` with a token from `wallet`.
    pub async fn open(http: &reqwest::Client, base: &str, user_id: i64) -> Self {
        let wallet = server_function(http, base, "wallet", &signed_init_data(user_id), "").await;
        let token = wallet["events_token"].as_str().expect("a token");
        let mut response = http
            .get(format!("{base}/api/events?token={token}"))
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(response.status(), 200);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok(Some(chunk)) = response.chunk().await {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(&String::from_utf8_lossy(&chunk));
                }
            }
        });
        // Let the subscription (and on PostgreSQL the listener) settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Self { seen, reader }
    }

    /// The event data received so far.
    pub fn events(&self) -> Vec<Value> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    }

    /// Waits (up to 5 s) for an event matching `wanted`.
    pub async fn wait_for(&self, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        for _ in 0..100 {
            if let Some(event) = self.events().into_iter().find(|event| wanted(event)) {
                return Some(event);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The one integer a query answers (a count, a sum, a balance).
pub async fn scalar(store: &server::store::Store, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Sends a request; returns the status and the body as JSON (or as a JSON string).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn user(id: i64, language: &str) -> Value {
    to_value(&User::person(UserId(id), "Vladislav", language))
}

fn to_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("updates encode")
}

pub fn pre_checkout(
    update_id: i64,
    from: i64,
    payload: &str,
    currency: &str,
    amount: i64,
) -> Value {
    to_value(&Update::pre_checkout(
        update_id,
        PreCheckoutQuery {
            id: format!("pcq{update_id}"),
            from: User::person(UserId(from), "Vladislav", "en"),
            currency: currency.into(),
            total_amount: Stars(amount),
            invoice_payload: payload.into(),
        },
    ))
}

/// A `message` update in the user's private chat, made by `content` from a bare message.
fn private_message(
    update_id: i64,
    from: i64,
    language: &str,
    content: impl FnOnce(Message) -> Message,
) -> Value {
    let message = Message::private(update_id, User::person(UserId(from), "Vladislav", language));
    to_value(&Update::message(update_id, content(message)))
}

pub fn successful_payment(
    update_id: i64,
    from: i64,
    payload: &str,
    amount: i64,
    charge_id: &str,
) -> Value {
    private_message(update_id, from, "en", |message| {
        message.with_payment(SuccessfulPayment::stars(payload, amount, charge_id))
    })
}

pub fn refunded_payment(
    update_id: i64,
    from: i64,
    payload: &str,
    amount: i64,
    charge_id: &str,
) -> Value {
    private_message(update_id, from, "en", |message| {
        message.with_refund(RefundedPayment::stars(payload, amount, charge_id))
    })
}

pub fn command(update_id: i64, from: i64, language: &str, text: &str) -> Value {
    private_message(update_id, from, language, |message| message.with_text(text))
}
