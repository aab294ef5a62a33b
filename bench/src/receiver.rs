//! The `events` scenario. The machine's speed drifts within a run (the first payments on a
//! fresh database are the fastest by far, and later runs 10-40 % apart), so the payments with
//! and without a receiver are measured in turns: a warm-up with no event endpoint (not
//! compared), then [`ROUNDS`] rounds each of a share of the payments with no endpoint and a
//! share with one receiver (here, on loopback) subscribed to `payment.credited` taking batches
//! of up to [`BATCH`] events per POST, the way the issue asks them delivered; each mode's
//! payments per second is its payments over its time. Last, a run with the receiver taking one
//! event per POST, compared with the same no-endpoint figure. The receiver checks every
//! signature and notes when each event arrived, so the run reports the delivery's throughput
//! and lag (event arrival − the payment's 2xx) too.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::load::{Outcome, quantile_ms, run_load};
use crate::report::Run;
use crate::target::{self, Cluster, Usage};

#[derive(Clone)]
struct Inbox {
    secret: Arc<Mutex<String>>,
    /// When each payment's event arrived, by its index.
    arrived: Arc<Mutex<Vec<Option<Instant>>>>,
    bad_signatures: Arc<Mutex<usize>>,
    repeats: Arc<Mutex<usize>>,
}

/// The batch size of the compared receiver's endpoint.
const BATCH: i64 = 100;

/// Turns of no endpoint and the batch receiver.
const ROUNDS: usize = 4;

/// Shares of the orders: the warm-up, the rounds (two), the run taking one event per POST.
pub const RUNS: usize = 4;

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let signature = headers
        .get(server::outgoing::signature::SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let secret = inbox.secret.lock().unwrap().clone();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if server::outgoing::signature::verify(&secret, signature, &body, unix).is_err() {
        *inbox.bad_signatures.lock().unwrap() += 1;
        return StatusCode::BAD_REQUEST;
    }
    let mut arrived = inbox.arrived.lock().unwrap();
    // One event, or a batch of them.
    for event in server::contract::event::events_in(&body) {
        let index = event["data"]["charge_id"]
            .as_str()
            .and_then(|charge| charge.strip_prefix("bench-evt-"))
            .and_then(|index| index.parse::<usize>().ok());
        if let Some(index) = index {
            match arrived.get_mut(index) {
                Some(slot @ None) => *slot = Some(now),
                Some(Some(_)) => *inbox.repeats.lock().unwrap() += 1,
                None => {}
            }
        }
    }
    StatusCode::NO_CONTENT
}

pub async fn bench_events(
    cluster: &Cluster,
    orders: &[(i64, String)],
    concurrency: usize,
    label: &str,
) -> anyhow::Result<Vec<Run>> {
    let n = orders.len() / RUNS;
    let share = (n / ROUNDS).max(1);
    let mut runs = Vec::new();
    let warm_up = without_endpoint(cluster, orders, 0, n, concurrency).await;
    runs.push(warm_up.run(
        format!("successful_payment, no event endpoint, warm-up [{label}]"),
        "not compared".to_owned(),
    ));

    let inbox = Inbox {
        secret: Arc::default(),
        arrived: Arc::new(Mutex::new(vec![None; RUNS * n])),
        bad_signatures: Arc::default(),
        repeats: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/ndn-events", listener.local_addr()?);
    let router = axum::Router::new()
        .route("/ndn-events", axum::routing::post(receive))
        .with_state(inbox.clone());
    let served = tokio::spawn(async move { axum::serve(listener, router).await });
    let receiver = Receiver {
        cluster,
        orders,
        inbox: &inbox,
        url: &url,
        concurrency,
    };

    // In turns: a share with no endpoint, a share with the batch receiver (endpoints 1, 2, …).
    let (mut without, mut with) = (Share::default(), Share::default());
    // The payments no endpoint was subscribed to: none of their events may arrive.
    let mut unsubscribed = Vec::with_capacity(ROUNDS + 1);
    unsubscribed.push(0..n);
    for round in 0..ROUNDS {
        let offset = n + 2 * round * share;
        unsubscribed.push(offset..offset + share);
        without.add(without_endpoint(cluster, orders, offset, share, concurrency).await);
        with.add(
            receiver
                .share(round + 1, offset + share, share, BATCH)
                .await?,
        );
    }
    let base = without.per_second();
    runs.push(without.run(
        format!("successful_payment, no event endpoint, {ROUNDS} shares in turn [{label}]"),
        String::new(),
    ));
    let batches = format!("one event receiver, batches of {BATCH}");
    runs.push(with.run(
        format!("successful_payment, {batches}, {ROUNDS} shares in turn [{label}]"),
        format!(
            "{:+.1}% payments/s against no endpoint (the shares in turn)",
            (with.per_second() / base - 1.0) * 100.0
        ),
    ));
    runs.push(with.delivery(&inbox, &format!("{batches} [{label}]"), &unsubscribed));

    // One event per POST, after the turns.
    let single = receiver.share(ROUNDS + 1, 3 * n, n, 1).await?;
    runs.push(single.run(
        format!("successful_payment, one event receiver [{label}]"),
        format!(
            "{:+.1}% payments/s against no endpoint (the shares in turn before it)",
            (single.per_second() / base - 1.0) * 100.0
        ),
    ));
    runs.push(single.delivery(
        &inbox,
        &format!("one event receiver [{label}]"),
        &unsubscribed,
    ));
    served.abort();
    Ok(runs)
}

/// What one share of payments did, or several added up.
#[derive(Default)]
struct Share {
    /// Payments sent, and what became of them.
    requested: usize,
    outcome: Option<Outcome>,
    usage: Option<Usage>,
    /// For the receiver's shares: each event's lag after its payment's 2xx, how many were
    /// expected, the time from the first event to the last of each share (added up), and the
    /// longest wait after a share's load.
    lags_us: Vec<u64>,
    expected: usize,
    delivering: Duration,
    drained: Duration,
}

impl Share {
    fn add(&mut self, other: Share) {
        self.outcome = Some(match (self.outcome.take(), other.outcome) {
            (Some(mut sum), Some(more)) => {
                sum.ok += more.ok;
                sum.errors += more.errors;
                sum.first_error = sum.first_error.or(more.first_error);
                sum.latencies_us.extend(more.latencies_us);
                sum.latencies_us.sort_unstable();
                sum.elapsed += more.elapsed;
                sum
            }
            (sum, more) => sum.or(more).expect("a share ran"),
        });
        self.usage = match (self.usage.take(), other.usage) {
            (Some(sum), Some(more)) => Some(Usage {
                peak_rss_mb: match (sum.peak_rss_mb, more.peak_rss_mb) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                },
                server_cpu_secs: sum.server_cpu_secs + more.server_cpu_secs,
                generator_cpu_secs: sum.generator_cpu_secs + more.generator_cpu_secs,
            }),
            (sum, more) => sum.or(more),
        };
        self.requested += other.requested;
        self.lags_us.extend(other.lags_us);
        self.expected += other.expected;
        self.delivering += other.delivering;
        self.drained = self.drained.max(other.drained);
    }

    fn per_second(&self) -> f64 {
        self.outcome.as_ref().map_or(0.0, |outcome| {
            outcome.ok as f64 / outcome.elapsed.as_secs_f64().max(1e-9)
        })
    }

    fn run(&self, name: String, note: String) -> Run {
        let outcome = self.outcome.as_ref().expect("a share ran");
        Run::new(
            name,
            outcome,
            self.usage.clone(),
            outcome.ok == self.requested,
            note,
        )
    }

    /// The check of the receiver's events: every one delivered once, signed, none from the
    /// payments without an endpoint (those `without`).
    fn delivery(&self, inbox: &Inbox, what: &str, without: &[Range<usize>]) -> Run {
        let mut lags_us = self.lags_us.clone();
        lags_us.sort_unstable();
        let delivered = lags_us.len();
        let spread = self.delivering.as_secs_f64().max(1e-3);
        let bad = *inbox.bad_signatures.lock().unwrap();
        let repeats = *inbox.repeats.lock().unwrap();
        let arrived = inbox.arrived.lock().unwrap().clone();
        let stray = without
            .iter()
            .flat_map(|range| &arrived[range.clone()])
            .filter(|at| at.is_some())
            .count();
        Run::check(
            format!("event delivery, {what}"),
            delivered == self.expected && bad == 0 && repeats == 0 && stray == 0,
            format!(
                "{delivered}/{} payment.credited delivered, {:.0} events/s; lag after the 2xx \
                 p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; all delivered {:.1} s after the last \
                 2xx at most; {bad} bad signatures, {repeats} repeats, {stray} from the payments \
                 without endpoint",
                self.expected,
                delivered as f64 / spread,
                quantile_ms(&lags_us, 0.5),
                quantile_ms(&lags_us, 0.99),
                quantile_ms(&lags_us, 1.0),
                self.drained.as_secs_f64(),
            ),
        )
    }
}

/// Payments `offset..offset + n` with no endpoint subscribed (their events are written, nobody
/// is sent them).
async fn without_endpoint(
    cluster: &Cluster,
    orders: &[(i64, String)],
    offset: usize,
    n: usize,
    concurrency: usize,
) -> Share {
    let updates = payments(orders, offset, n);
    let rss = cluster.rss_sampler();
    let outcome = run_load(concurrency, n, |i| {
        cluster.post_webhook(i, updates[i].clone())
    })
    .await;
    let usage = rss.stop().await;
    Share {
        requested: n,
        outcome: Some(outcome),
        usage: Some(usage),
        ..Share::default()
    }
}

/// Payments `offset..offset + n` of `orders`, each with its charge id `bench-evt-<index>`.
fn payments(orders: &[(i64, String)], offset: usize, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| {
            let (buyer, order) = &orders[offset + i];
            target::successful_payment(
                5_000_000 + (offset + i) as i64,
                *buyer,
                order,
                50,
                &format!("bench-evt-{}", offset + i),
            )
        })
        .collect()
}

/// The receiver's shares: its endpoint subscribed with a batch size, the payments, the events.
struct Receiver<'a> {
    cluster: &'a Cluster,
    orders: &'a [(i64, String)],
    inbox: &'a Inbox,
    url: &'a str,
    concurrency: usize,
}

impl Receiver<'_> {
    /// Payments `offset..offset + n` with the receiver subscribed as endpoint `endpoint` (the
    /// next id), taking `batch` events per POST; then waits for their events and removes the
    /// endpoint.
    async fn share(
        &self,
        endpoint: usize,
        offset: usize,
        n: usize,
        batch: i64,
    ) -> anyhow::Result<Share> {
        let (cluster, inbox) = (self.cluster, self.inbox);
        let batch_text = batch.to_string();
        let secret = cluster
            .command(&[
                "endpoints",
                "add",
                self.url,
                "--events",
                "payment.credited",
                "--batch",
                &batch_text,
            ])
            .await?;
        *inbox.secret.lock().unwrap() = secret.trim().to_owned();

        let updates = payments(self.orders, offset, n);
        let acked: Vec<Mutex<Option<Instant>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let rss = cluster.rss_sampler();
        let outcome = run_load(self.concurrency, n, |i| {
            let request = cluster.post_webhook(i, updates[i].clone());
            let acked = &acked[i];
            async move {
                let answer = request.await;
                *acked.lock().unwrap() = Some(Instant::now());
                answer
            }
        })
        .await;
        let load_done = Instant::now();
        let usage = rss.stop().await;

        // Every event of this share, before the next share begins.
        let deadline = Instant::now() + Duration::from_secs(300);
        let count = || {
            inbox.arrived.lock().unwrap()[offset..offset + n]
                .iter()
                .filter(|at| at.is_some())
                .count()
        };
        while count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drained = load_done.elapsed();
        cluster
            .command(&["endpoints", "remove", &endpoint.to_string()])
            .await?;
        let arrived = inbox.arrived.lock().unwrap().clone();
        let mut share = Share {
            requested: n,
            outcome: Some(outcome),
            usage: Some(usage),
            expected: n,
            drained,
            ..Share::default()
        };
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        for i in 0..n {
            if let (Some(at), Some(acked)) = (arrived[offset + i], *acked[i].lock().unwrap()) {
                share
                    .lags_us
                    .push(at.saturating_duration_since(acked).as_micros() as u64);
                first = Some(first.map_or(at, |f| f.min(at)));
                last = Some(last.map_or(at, |l| l.max(at)));
            }
        }
        if let (Some(first), Some(last)) = (first, last) {
            share.delivering = last.duration_since(first);
        }
        Ok(share)
    }
}
