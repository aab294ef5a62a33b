//! The system under test: release server processes on a fresh database, and the fake Bot API.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use serde_json::{Value, json};
use server::sandbox::fake_telegram::FakeTelegram;
use server::telegram::init_data::InitDataValidator;
use sqlx::Row;

use crate::Options;
use crate::http1::Connections;
use crate::load::Outcome;
use crate::report::Run;
use server::telegram::updates::{Message, PreCheckoutQuery, SuccessfulPayment, Update, User};
use server::wallet::amounts::Stars;
use server::wallet::ids::UserId;
use sqlx::AssertSqlSafe;

const TOKEN: &str = "5000000005:bench-token";
const SECRET: &str = "bench_secret";
/// The benchmark reads the servers' commit counts from `/metrics`.
const METRICS_TOKEN: &str = "bench-metrics-token-0123456789";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

struct Instance {
    child: tokio::process::Child,
    base: String,
    pid: u32,
    /// Keep-alive connections for the webhook runs.
    webhook: Connections,
}

pub struct Cluster {
    engine: Engine,
    /// How a command-line run of the server binary reaches this cluster's database.
    command_line: (std::path::PathBuf, String, String),
    instances: Vec<Instance>,
    http: reqwest::Client,
    database: sqlx::AnyPool,
    signer: InitDataValidator,
    auth: Mutex<HashMap<i64, String>>,
    cleanup: Option<std::path::PathBuf>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Cluster {
    /// SQLite: one instance. PostgreSQL: two instances on one fresh database.
    pub async fn start(options: &Options, engine: Engine) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, cleanup) = match engine {
            Engine::Sqlite => {
                let dir = std::env::temp_dir()
                    .join(format!("ndn-bench-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir)?;
                (format!("sqlite://{}/ndn.db", dir.display()), Some(dir))
            }
            Engine::Postgres => {
                let admin = sqlx::AnyPool::connect(&options.postgres)
                    .await
                    .context("PostgreSQL for the benchmark")?;
                let name = format!("ndn_bench_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await?;
                let base = options
                    .postgres
                    .rsplit_once('/')
                    .map_or(options.postgres.as_str(), |(b, _)| b);
                (format!("{base}/{name}"), None)
            }
        };

        let telegram = FakeTelegram::new(TOKEN);
        // The benchmark measures the server alone: its Telegram answers at any speed (the
        // notifier still paces itself to BOT_MESSAGES_PER_SECOND).
        telegram.set_flood_limits(None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let router = telegram.router::<()>();
        tokio::spawn(async move { axum::serve(listener, router).await });

        let count = if engine == Engine::Postgres { 2 } else { 1 };
        let mut instances = Vec::new();
        for index in 0..count {
            let port = free_port()?;
            let mut command = tokio::process::Command::new(&options.server);
            command
                .arg("serve")
                .env("TELEGRAM_BOT_TOKEN", TOKEN)
                .env("TELEGRAM_WEBHOOK_SECRET", SECRET)
                .env("TELEGRAM_API_URL", &api_url)
                .env("DATABASE_URL", &url)
                .env(
                    "DATABASE_MAX_CONNECTIONS",
                    if engine == Engine::Postgres {
                        "16"
                    } else {
                        "8"
                    },
                )
                .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
                .env("LEPTOS_SITE_ROOT", &options.site)
                .env("LEPTOS_OUTPUT_NAME", "ndn")
                .env("LEPTOS_HASH_FILE_NAME", options.hash_file())
                .env("LEPTOS_ENV", "PROD")
                .env("PUBLIC_URL", "https://bench.invalid")
                .env("RUST_LOG", "error")
                // The benchmark's buyers create thousands of orders each.
                .env("INVOICE_RATE_PER_MINUTE", "1000000")
                .env("MAX_PENDING_ORDERS", "1000000")
                .env("METRICS_TOKEN", METRICS_TOKEN)
                // The event receiver is the benchmark itself, on loopback.
                .env("ENDPOINTS_ALLOW_PRIVATE", "true")
                .stdout(Stdio::null())
                .kill_on_drop(true);
            let child = command
                .spawn()
                .with_context(|| format!("starting {}", options.server.display()))?;
            let pid = child.id().context("server pid")?;
            instances.push(Instance {
                child,
                base: format!("http://127.0.0.1:{port}"),
                pid,
                webhook: Connections::new(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
            });
            // Let the first instance apply the migrations alone.
            if index == 0 {
                wait_ready(&instances[0].base).await?;
            }
        }
        for instance in &instances {
            wait_ready(&instance.base).await?;
        }
        let database = sqlx::AnyPool::connect(&url).await?;
        Ok(Self {
            engine,
            command_line: (options.server.clone(), url.clone(), api_url.clone()),
            instances,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            database,
            signer: InitDataValidator::new(TOKEN, Duration::from_secs(86_400)),
            auth: Mutex::default(),
            cleanup,
        })
    }

    pub fn label(&self) -> String {
        match self.engine {
            Engine::Sqlite => "SQLite".into(),
            Engine::Postgres => format!("PostgreSQL, {} instances", self.instances.len()),
        }
    }

    fn base(&self, index: usize) -> &str {
        &self.instances[index % self.instances.len()].base
    }

    fn authorization(&self, buyer: i64) -> String {
        let mut cache = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(buyer)
            .or_insert_with(|| {
                let user = json!({ "id": buyer, "first_name": "Bench", "language_code": "en" })
                    .to_string();
                let now = (server::clock::now_ms() / 1000).to_string();
                format!(
                    "tma {}",
                    self.signer.sign(&[("user", &user), ("auth_date", &now)])
                )
            })
            .clone()
    }

    async fn server_fn(
        &self,
        index: usize,
        buyer: i64,
        function: &str,
        body: &'static str,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}/api/{function}", self.base(index)))
            .header("Authorization", self.authorization(buyer))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{function}: HTTP {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// `count` orders of 100 NDN (50 Stars), spread over `buyers`, through `create_invoice`.
    pub async fn create_orders(
        &self,
        buyers: &[i64],
        count: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let outcome = crate::load::run_load(concurrency, count, |i| async move {
            let buyer = buyers[i % buyers.len()];
            let invoice = self
                .server_fn(i, buyer, "create_invoice", "package_id=ndn-100")
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{buyer} {}",
                invoice["order_id"].as_str().unwrap_or_default()
            ))
        })
        .await;
        if outcome.errors > 0 {
            bail!(
                "creating orders: {} failed ({:?})",
                outcome.errors,
                outcome.first_error
            );
        }
        Ok(outcome
            .bodies
            .iter()
            .filter_map(|line| line.split_once(' '))
            .map(|(buyer, order)| (buyer.parse().unwrap_or_default(), order.to_owned()))
            .collect())
    }

    /// Runs the server binary with `args` as an operator would, against this cluster.
    pub async fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let (binary, url, api_url) = &self.command_line;
        let output = tokio::process::Command::new(binary)
            .args(args)
            .env("TELEGRAM_BOT_TOKEN", TOKEN)
            .env("TELEGRAM_WEBHOOK_SECRET", SECRET)
            .env("TELEGRAM_API_URL", api_url)
            .env("DATABASE_URL", url)
            .env("PUBLIC_URL", "https://bench.invalid")
            .env("RUST_LOG", "error")
            .env("ENDPOINTS_ALLOW_PRIVATE", "true")
            .output()
            .await?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "server {}: {text}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(text)
    }

    /// Buyers with empty accounts (as if each had opened the Mini App), written directly.
    pub async fn add_buyers(&self, ids: &[i64]) -> anyhow::Result<()> {
        for chunk in ids.chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|id| format!("({id}, 'Bench', 'en', 0, 0, 0)"))
                .collect();
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO users (id, first_name, language_code, balance, created_at, updated_at)
                 VALUES {}",
                values.join(", ")
            )))
            .execute(&self.database)
            .await?;
        }
        Ok(())
    }

    /// `POST path` of the service API with `key` and an `Idempotency-Key`; the body of a 2xx.
    pub fn instance_count(&self) -> usize {
        self.instances.len()
    }

    pub async fn post_api(
        &self,
        index: usize,
        path: &str,
        key: &str,
        idempotency_key: String,
        body: &[u8],
    ) -> Result<String, String> {
        let instance = &self.instances[index % self.instances.len()];
        let authorization = format!("Bearer {key}");
        let answer = instance
            .webhook
            .post(
                path,
                &[
                    ("Authorization", &authorization),
                    ("Idempotency-Key", &idempotency_key),
                    ("Content-Type", "application/json"),
                ],
                body,
            )
            .await?;
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            Err(format!("HTTP {}: {}", answer.status, answer.body))
        }
    }

    /// The one integer `sql` answers.
    pub async fn scalar(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.database)
            .await?
            .try_get(0)?)
    }

    pub async fn post_webhook(&self, index: usize, body: Bytes) -> Result<String, String> {
        let instance = &self.instances[index % self.instances.len()];
        let answer = instance
            .webhook
            .post(
                "/webhook/telegram",
                &[
                    ("X-Telegram-Bot-Api-Secret-Token", SECRET),
                    ("Content-Type", "application/json"),
                ],
                &body,
            )
            .await?;
        if (200..300).contains(&answer.status) {
            Ok(answer.body)
        } else {
            Err(format!("HTTP {}: {}", answer.status, answer.body))
        }
    }

    /// A buyer's purchase as Telegram delivers it: the pre-checkout, then the payment.
    pub async fn purchase(&self, index: usize, pre: Bytes, pay: Bytes) -> Result<String, String> {
        let answer = self.post_webhook(index, pre).await?;
        if !answer.contains("\"ok\":true") {
            return Err(format!("pre-checkout refused: {answer}"));
        }
        self.post_webhook(index + 1, pay).await
    }

    pub async fn get_page(&self, index: usize) -> Result<String, String> {
        let response = self
            .http
            .get(format!("{}/", self.base(index)))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let _ = response.bytes().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(String::new())
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    /// Payments the database holds as credited (a count every schema version keeps).
    pub async fn credited_payments(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM payments WHERE status = 'credited'")
                .fetch_one(&self.database)
                .await?
                .try_get(0)?,
        )
    }

    /// Sum of `ndn_payment_commits` over the instances.
    pub async fn payment_commits(&self) -> u64 {
        let mut total = 0;
        for instance in &self.instances {
            let Ok(response) = self
                .http
                .get(format!("{}/metrics", instance.base))
                .bearer_auth(METRICS_TOKEN)
                .send()
                .await
            else {
                continue;
            };
            let text = response.text().await.unwrap_or_default();
            total += text
                .lines()
                .find_map(|line| line.strip_prefix("ndn_payment_commits "))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        total
    }

    /// Samples the servers' resident memory until stopped, and counts the CPU time they use.
    pub fn rss_sampler(&self) -> RssSampler {
        let pids: Vec<u32> = self.instances.iter().map(|i| i.pid).collect();
        let server_start = pids.iter().filter_map(|pid| cpu_ticks(*pid)).sum::<u64>();
        let generator_start = cpu_ticks(std::process::id()).unwrap_or(0);
        let peak = Arc::new(Mutex::new(0u64));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let peak = peak.clone();
            async move {
                loop {
                    for pid in &pids {
                        if let Some(kb) = rss_kb(*pid) {
                            let mut peak = peak.lock().unwrap_or_else(|p| p.into_inner());
                            *peak = (*peak).max(kb);
                        }
                    }
                    tokio::select! {
                        _ = &mut stopped => break,
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
            }
        });
        RssSampler {
            peak,
            stop,
            task,
            pids: self.instances.iter().map(|i| i.pid).collect(),
            server_start,
            generator_start,
        }
    }

    /// Time from a webhook's 2xx to the balance event at a client subscribed on the last
    /// instance (another instance than the one that credited, when there are two).
    pub async fn live_event_latency(&self, samples: usize) -> anyhow::Result<Run> {
        let buyer = 8_000_001;
        let orders = self.create_orders(&[buyer], samples, 8).await?;
        let wallet = self
            .server_fn(self.instances.len() - 1, buyer, "wallet", "")
            .await?;
        let token = wallet["events_token"]
            .as_str()
            .context("events token")?
            .to_owned();
        let mut stream = self
            .http
            .get(format!(
                "{}/api/events?token={token}",
                self.base(self.instances.len() - 1)
            ))
            .send()
            .await?;
        let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let reader = tokio::spawn({
            let arrivals = arrivals.clone();
            async move {
                let mut pending = String::new();
                while let Ok(Some(chunk)) = stream.chunk().await {
                    let now = Instant::now();
                    pending.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = pending.find("\n\n") {
                        let event: String = pending.drain(..end + 2).collect();
                        if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: "))
                            && let Ok(value) = serde_json::from_str::<Value>(data)
                            && let Some(order) = value["order_id"].as_str()
                        {
                            arrivals
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(order.to_owned(), now);
                        }
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(samples);
        let mut from_send = Vec::with_capacity(samples);
        let mut errors = Vec::new();
        for (i, (buyer, order)) in orders.iter().enumerate() {
            let body = successful_payment(
                9_000_000 + i as i64,
                *buyer,
                order,
                50,
                &format!("bench-live-{i}"),
            );
            let sent = Instant::now();
            if let Err(error) = self.post_webhook(0, body).await {
                errors.push(error);
                continue;
            }
            let acknowledged = Instant::now();
            let deadline = acknowledged + Duration::from_secs(2);
            loop {
                let seen = arrivals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(order)
                    .copied();
                if let Some(at) = seen {
                    // An event that beat the 2xx to the client counts as zero.
                    latencies.push(
                        u64::try_from(at.saturating_duration_since(acknowledged).as_micros())
                            .unwrap_or(0),
                    );
                    from_send.push(
                        u64::try_from(at.saturating_duration_since(sent).as_micros()).unwrap_or(0),
                    );
                    break;
                }
                if Instant::now() > deadline {
                    errors.push(format!("no event for {order}"));
                    break;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        reader.abort();
        latencies.sort_unstable();
        from_send.sort_unstable();
        let note = format!(
            "sequential; event − 2xx (0 when the event arrives first); event − request sent: p50 {:.2} ms, p99 {:.2} ms",
            crate::load::quantile_ms(&from_send, 0.5),
            crate::load::quantile_ms(&from_send, 0.99)
        );
        let outcome = Outcome {
            ok: latencies.len(),
            errors: errors.len(),
            first_error: errors.into_iter().next(),
            bodies: Vec::new(),
            elapsed: started.elapsed(),
            latencies_us: latencies,
        };
        Ok(Run::new(
            format!("webhook 2xx → live event [{}]", self.label()),
            &outcome,
            None,
            outcome.ok == samples,
            note,
        ))
    }

    pub async fn stop(mut self) {
        for instance in &mut self.instances {
            let _ = instance.child.start_kill();
            let _ = instance.child.wait().await;
        }
        self.database.close().await;
        if let Some(dir) = &self.cleanup {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub struct RssSampler {
    peak: Arc<Mutex<u64>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    pids: Vec<u32>,
    /// CPU ticks of the servers and of this process when sampling started.
    server_start: u64,
    generator_start: u64,
}

/// What a scenario cost: peak memory and CPU seconds of the servers and of the generator.
#[derive(Clone)]
pub struct Usage {
    pub peak_rss_mb: Option<f64>,
    pub server_cpu_secs: f64,
    pub generator_cpu_secs: f64,
}

impl RssSampler {
    pub async fn stop(self) -> Usage {
        let _ = self.stop.send(());
        let _ = self.task.await;
        let kb = *self.peak.lock().unwrap_or_else(|p| p.into_inner());
        let server_now: u64 = self.pids.iter().filter_map(|pid| cpu_ticks(*pid)).sum();
        let generator_now = cpu_ticks(std::process::id()).unwrap_or(0);
        let (server_start, generator_start) = (self.server_start, self.generator_start);
        let ticks_per_second = 100.0; // USER_HZ on Linux
        Usage {
            peak_rss_mb: (kb > 0).then(|| kb as f64 / 1024.0),
            server_cpu_secs: server_now.saturating_sub(server_start) as f64 / ticks_per_second,
            generator_cpu_secs: generator_now.saturating_sub(generator_start) as f64
                / ticks_per_second,
        }
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server at {base} did not become ready")
}

fn user(id: i64) -> User {
    User::person(UserId(id), "Bench", "en")
}

fn encode(update: &Update) -> Bytes {
    Bytes::from(serde_json::to_vec(update).unwrap_or_default())
}

pub fn pre_checkout(update_id: i64, buyer: i64, order: &str, amount: i64) -> Bytes {
    encode(&Update::pre_checkout(
        update_id,
        PreCheckoutQuery {
            id: format!("bench-q-{update_id}"),
            from: user(buyer),
            currency: "XTR".into(),
            total_amount: Stars(amount),
            invoice_payload: order.into(),
        },
    ))
}

pub fn successful_payment(
    update_id: i64,
    buyer: i64,
    order: &str,
    amount: i64,
    charge: &str,
) -> Bytes {
    encode(&Update::message(
        update_id,
        Message::private(update_id, user(buyer))
            .with_payment(SuccessfulPayment::stars(order, amount, charge)),
    ))
}
