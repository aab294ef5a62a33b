//! The benchmark: starts the release server (SQLite, or PostgreSQL with two instances) with a
//! fresh database and a fake Bot API on loopback, creates orders through the real server
//! functions, drives the webhook with Telegram-shaped updates at fixed concurrency, and checks
//! after every run that what was answered 2xx is exactly what the database holds.

mod http1;
mod load;
mod receiver;
mod report;
mod target;

use std::path::PathBuf;
use std::time::Duration;

use crate::load::run_load;
use crate::report::{Report, Run, bundle_sizes};
use crate::target::{Cluster, Engine};
use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser, Clone)]
#[command(about = "NDN webhook and Mini App benchmark")]
pub struct Options {
    /// The release server binary.
    #[arg(long)]
    server: PathBuf,
    /// The site folder of the release build (for the page and the bundle sizes).
    #[arg(long, default_value = "target/site")]
    site: PathBuf,
    /// The hash file of the release build (cargo-leptos `hash-files`): the hashed file names.
    /// By default `hash.txt` beside the server binary.
    #[arg(long)]
    hash_file: Option<PathBuf>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per webhook scenario.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Databases to run on: sqlite, postgres (comma-separated).
    #[arg(long, default_value = "sqlite,postgres")]
    databases: String,
    /// PostgreSQL server for the postgres run (a fresh database is created on it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// A few seconds in all: small counts, SQLite only; checks that the benchmark still works.
    #[arg(long)]
    smoke: bool,
    /// Scenarios to run (comma-separated): pre_checkout, payment (with its redelivery),
    /// purchase, debit (the service API: credits, debits, replays, a hot account), events
    /// (a warm-up, then payments without an endpoint and with a receiver taking batches in
    /// turns, then with it taking one event per POST), live, page.
    /// All by default; a subset is handy under a profiler.
    #[arg(
        long,
        default_value = "pre_checkout,payment,purchase,debit,events,live,page"
    )]
    scenarios: String,
}

impl Options {
    pub fn hash_file(&self) -> PathBuf {
        self.hash_file.clone().unwrap_or_else(|| {
            self.server
                .parent()
                .map(|dir| dir.join("hash.txt"))
                .unwrap_or_else(|| "hash.txt".into())
        })
    }

    fn runs(&self, scenario: &str) -> bool {
        self.scenarios.split(',').any(|s| s.trim() == scenario)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = Options::parse();
    if options.smoke {
        options.requests = 300;
        options.concurrency = 16;
        options.databases = "sqlite".into();
    }
    let mut report = Report::new(&options);
    for name in options
        .databases
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let engine = match name {
            "sqlite" => Engine::Sqlite,
            "postgres" => Engine::Postgres,
            other => bail!("unknown database `{other}` (sqlite, postgres)"),
        };
        let runs = bench_engine(&options, engine)
            .await
            .with_context(|| format!("{name} run"))?;
        report.runs.extend(runs);
    }
    report.bundle = bundle_sizes(&options.site.join("pkg"), &options.hash_file())?;
    print!("{}", report.table());
    std::fs::write(&options.json, serde_json::to_string_pretty(&report.json())?)?;
    println!("JSON report: {}", options.json.display());
    let failures: Vec<&Run> = report.runs.iter().filter(|run| !run.correct).collect();
    if !failures.is_empty() {
        bail!(
            "correctness checks failed: {}",
            failures
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

async fn bench_engine(options: &Options, engine: Engine) -> anyhow::Result<Vec<Run>> {
    let cluster = Cluster::start(options, engine).await?;
    let label = cluster.label();
    let n = options.requests;
    let c = options.concurrency;
    let mut runs = Vec::new();

    // Orders for every scenario, created through the real server function.
    let buyers: Vec<i64> = (0..64).map(|i| 7_000_000 + i).collect();
    let event_orders = if options.runs("events") {
        receiver::RUNS * n
    } else {
        0
    };
    let orders = cluster
        .create_orders(&buyers, n / 4 + 1 + 2 * n + event_orders, c.min(32))
        .await?;
    let (pre_orders, rest) = orders.split_at(n / 4 + 1);
    let (pay_orders, rest) = rest.split_at(n);
    let (mixed_orders, event_orders) = rest.split_at(n);

    // pre_checkout_query: read-only, answered in the response body.
    if options.runs("pre_checkout") {
        let updates: Vec<_> = (0..n)
            .map(|i| {
                let (buyer, order) = &pre_orders[i % pre_orders.len()];
                target::pre_checkout(i as i64, *buyer, order, 50)
            })
            .collect();
        let rss = cluster.rss_sampler();
        let outcome = run_load(c, updates.len(), |i| {
            cluster.post_webhook(i, updates[i].clone())
        })
        .await;
        let accepted = outcome
            .bodies
            .iter()
            .filter(|body| body.contains("\"ok\":true"))
            .count();
        runs.push(Run::new(
            format!("pre_checkout_query [{label}]"),
            &outcome,
            Some(rss.stop().await),
            accepted == n,
            format!("{accepted}/{n} accepted"),
        ));
    }

    // successful_payment: each a distinct charge on a distinct order.
    if options.runs("payment") {
        let credited_before = cluster.credited_payments().await?;
        let updates: Vec<_> = pay_orders
            .iter()
            .enumerate()
            .map(|(i, (buyer, order))| {
                target::successful_payment(
                    1_000_000 + i as i64,
                    *buyer,
                    order,
                    50,
                    &format!("bench-pay-{i}"),
                )
            })
            .collect();
        let rss = cluster.rss_sampler();
        let commits_before = cluster.payment_commits().await;
        let outcome = run_load(c, updates.len(), |i| {
            cluster.post_webhook(i, updates[i].clone())
        })
        .await;
        let credited = cluster.credited_payments().await? - credited_before;
        let commits = cluster
            .payment_commits()
            .await
            .saturating_sub(commits_before);
        let ok = credited == outcome.ok as i64 && outcome.ok == n;
        runs.push(Run::new(
            format!("successful_payment [{label}]"),
            &outcome,
            Some(rss.stop().await),
            ok,
            format!(
                "{credited} credited for {} 2xx; {commits} commits",
                outcome.ok
            ),
        ));

        // Duplicates of the same run must change nothing.
        let outcome = run_load(c, updates.len().min(2_000), |i| {
            cluster.post_webhook(i, updates[i].clone())
        })
        .await;
        let after = cluster.credited_payments().await? - credited_before;
        runs.push(Run::new(
            format!("duplicate successful_payment [{label}]"),
            &outcome,
            None,
            after == credited,
            format!("credits unchanged: {after}"),
        ));
    }

    // A mixed purchase stream: pre-checkout, then the payment, per buyer.
    if options.runs("purchase") {
        let credited_before = cluster.credited_payments().await?;
        let mixed_orders = &mixed_orders[..n.min(mixed_orders.len())];
        let rss = cluster.rss_sampler();
        let outcome = run_load(c, mixed_orders.len(), |i| {
            let (buyer, order) = &mixed_orders[i];
            let pre = target::pre_checkout(2_000_000 + i as i64, *buyer, order, 50);
            let pay = target::successful_payment(
                3_000_000 + i as i64,
                *buyer,
                order,
                50,
                &format!("bench-mixed-{i}"),
            );
            cluster.purchase(i, pre, pay)
        })
        .await;
        let credited = cluster.credited_payments().await? - credited_before;
        runs.push(Run::new(
            format!("purchase (pre-checkout + payment) [{label}]"),
            &outcome,
            Some(rss.stop().await),
            credited == outcome.ok as i64,
            format!("{credited} credited for {} 2xx", outcome.ok),
        ));
    }

    // Payments with no endpoint, then with one receiver subscribed to payment.credited.
    if options.runs("events") {
        runs.extend(receiver::bench_events(&cluster, event_orders, c, &label).await?);
    }

    // The service API: credits, then debits on distinct accounts, on one hot account, and the
    // same debits again under their keys.
    if options.runs("debit") {
        runs.extend(bench_service_api(&cluster, n, c, &label).await?);
    }

    // Webhook 2xx → live event at a subscribed client (through the other instance if two).
    if options.runs("live") {
        let samples = if options.smoke { 20 } else { 500 };
        let live = cluster.live_event_latency(samples).await?;
        runs.push(live);
    }

    // The server-rendered Mini App page.
    if options.runs("page") {
        let rss = cluster.rss_sampler();
        let outcome = run_load(c, n.min(20_000), |i| cluster.get_page(i)).await;
        let ok = outcome.ok == n.min(20_000);
        runs.push(Run::new(
            format!("GET / (SSR page) [{label}]"),
            &outcome,
            Some(rss.stop().await),
            ok,
            String::new(),
        ));
    }

    // The books, checked by the server itself after everything above.
    let verified = cluster.command(&["ledger", "verify"]).await;
    let (ok, note) = match &verified {
        Ok(report) => (true, report.lines().last().unwrap_or_default().to_owned()),
        Err(error) => (false, error.to_string()),
    };
    runs.push(Run::check(format!("ledger verify [{label}]"), ok, note));

    cluster.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(runs)
}

/// Credits, debits and replayed debits through the service API, each run checked against the
/// database: one transfer per 2xx, no account below zero, balances as the answers say.
async fn bench_service_api(
    cluster: &Cluster,
    n: usize,
    c: usize,
    label: &str,
) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    let key = cluster
        .command(&[
            "keys",
            "create",
            "--name",
            "bench",
            "--scopes",
            "read,spend,grant",
        ])
        .await?;
    let key = key.trim().to_owned();
    let accounts: Vec<i64> = (0..n as i64).map(|i| 9_000_000 + i).collect();
    let hot = 8_999_999;
    let mut buyers = accounts.clone();
    buyers.push(hot);
    cluster.add_buyers(&buyers).await?;
    let spends = "SELECT COUNT(*) FROM transfers WHERE kind = 'spend'";
    let grants = "SELECT COUNT(*) FROM transfers WHERE kind = 'grant'";
    let total = "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM users WHERE id >= 8999999";
    let lowest = "SELECT CAST(COALESCE(MIN(balance), 0) AS BIGINT) FROM users WHERE id >= 8999999";

    // Credits of 10 NDN to distinct accounts (the grants the debits then spend).
    let bodies: Vec<Vec<u8>> = accounts
        .iter()
        .map(|id| format!(r#"{{"user_id":{id},"amount":10,"reason":"bench"}}"#).into_bytes())
        .collect();
    let rss = cluster.rss_sampler();
    let outcome = run_load(c, n, |i| {
        cluster.post_api(i, "/v1/credits", &key, format!("credit-{i}"), &bodies[i])
    })
    .await;
    let granted = cluster.scalar(grants).await?;
    let sum = cluster.scalar(total).await?;
    runs.push(Run::new(
        format!("credit, distinct accounts [{label}]"),
        &outcome,
        Some(rss.stop().await),
        granted == outcome.ok as i64 && sum == 10 * granted,
        format!(
            "{granted} credits for {} 2xx; {sum} NDN in the accounts",
            outcome.ok
        ),
    ));

    // Debits of 1 NDN, each on an account of its own.
    let bodies: Vec<Vec<u8>> = accounts
        .iter()
        .map(|id| format!(r#"{{"user_id":{id},"amount":1,"reason":"bench"}}"#).into_bytes())
        .collect();
    let rss = cluster.rss_sampler();
    let outcome = run_load(c, n, |i| {
        cluster.post_api(i, "/v1/debits", &key, format!("debit-{i}"), &bodies[i])
    })
    .await;
    let debited = cluster.scalar(spends).await?;
    let sum = cluster.scalar(total).await?;
    runs.push(Run::new(
        format!("debit, distinct accounts [{label}]"),
        &outcome,
        Some(rss.stop().await),
        debited == outcome.ok as i64 && sum == 10 * granted - debited,
        format!(
            "{debited} debits for {} 2xx; balances sum to {sum}",
            outcome.ok
        ),
    ));

    // The same debits again, under the same keys: answered from memory, nothing moves.
    let replays = n;
    let rss = cluster.rss_sampler();
    let outcome = run_load(c, replays, |i| {
        cluster.post_api(i, "/v1/debits", &key, format!("debit-{i}"), &bodies[i])
    })
    .await;
    let after = cluster.scalar(spends).await?;
    runs.push(Run::new(
        format!("replayed debit keys [{label}]"),
        &outcome,
        Some(rss.stop().await),
        after == debited && outcome.ok == replays,
        format!("debits unchanged: {after}"),
    ));

    // With two instances, the same keys once more at the instance that did not answer them:
    // it has no copy in memory and reads the remembered answer from the database.
    if cluster.instance_count() > 1 {
        let rss = cluster.rss_sampler();
        let outcome = run_load(c, replays, |i| {
            cluster.post_api(i + 1, "/v1/debits", &key, format!("debit-{i}"), &bodies[i])
        })
        .await;
        let after = cluster.scalar(spends).await?;
        runs.push(Run::new(
            format!("replayed debit keys, at the other instance [{label}]"),
            &outcome,
            Some(rss.stop().await),
            after == debited && outcome.ok == replays,
            format!("debits unchanged: {after}"),
        ));
    }

    // Every debit on one account, funded for all but a hundred of them: those are refused.
    let short = 100.min(n / 10);
    let funding = format!(
        r#"{{"user_id":{hot},"amount":{},"reason":"bench"}}"#,
        n - short
    );
    cluster
        .post_api(
            0,
            "/v1/credits",
            &key,
            "hot-funding".into(),
            funding.as_bytes(),
        )
        .await
        .map_err(|error| anyhow::anyhow!("funding the hot account: {error}"))?;
    let body = format!(r#"{{"user_id":{hot},"amount":1,"reason":"bench"}}"#).into_bytes();
    let before = cluster.scalar(spends).await?;
    let rss = cluster.rss_sampler();
    let outcome = run_load(c, n, |i| {
        let body = &body;
        let key = &key;
        async move {
            match cluster
                .post_api(i, "/v1/debits", key, format!("hot-{i}"), body)
                .await
            {
                // Refused for want of NDN: a right answer too.
                Err(error) if error.starts_with("HTTP 409") => Ok("refused".to_owned()),
                other => other,
            }
        }
    })
    .await;
    let refused = outcome
        .bodies
        .iter()
        .filter(|body| *body == "refused")
        .count();
    let debited = cluster.scalar(spends).await? - before;
    let hot_balance = cluster
        .scalar(&format!("SELECT balance FROM users WHERE id = {hot}"))
        .await?;
    let none_below_zero = cluster.scalar(lowest).await? >= 0;
    runs.push(Run::new(
        format!("debit, one hot account [{label}]"),
        &outcome,
        Some(rss.stop().await),
        refused == short && debited == (n - short) as i64 && hot_balance == 0 && none_below_zero,
        format!("{debited} debited, {refused} refused for want of NDN; balance {hot_balance}"),
    ));
    Ok(runs)
}
