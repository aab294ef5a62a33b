//! The `events` scenario: the same payment load four times, first with no event endpoint,
//! then with one receiver (here, on loopback) subscribed to `payment.credited` taking one event
//! per POST, then with the receiver taking batches (up to [`BATCH`] events per POST), then with
//! no endpoint again (the machine's speed drifts: the receiver's runs are compared with the mean
//! of the two around them). The receiver checks every signature and notes when each event
//! arrived, so the run reports the payments' speed with and without it, and the delivery's
//! throughput and lag (event arrival − the payment's 2xx).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::load::{quantile_ms, run_load};
use crate::report::Run;
use crate::target::{self, Cluster};

#[derive(Clone)]
struct Inbox {
    secret: Arc<Mutex<String>>,
    /// When each payment's event arrived, by its index.
    arrived: Arc<Mutex<Vec<Option<Instant>>>>,
    bad_signatures: Arc<Mutex<usize>>,
    repeats: Arc<Mutex<usize>>,
}

/// The batch size of the third run's endpoint.
const BATCH: i64 = 100;

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let signature = headers
        .get(server::hooks::signature::SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let secret = inbox.secret.lock().unwrap().clone();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if server::hooks::signature::verify(&secret, signature, &body, unix).is_err() {
        *inbox.bad_signatures.lock().unwrap() += 1;
        return StatusCode::BAD_REQUEST;
    }
    let mut arrived = inbox.arrived.lock().unwrap();
    // One event, or a batch of them.
    for event in server::hooks::event::events_in(&body) {
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
    let n = orders.len() / 4;
    let mut runs = Vec::new();
    let (run, before) = without_endpoint(cluster, orders, 0, n, concurrency, label).await;
    runs.push(run);

    let inbox = Inbox {
        secret: Arc::default(),
        arrived: Arc::new(Mutex::new(vec![None; 4 * n])),
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
        label,
    };
    // One event per POST, then batches, on endpoints 1 and 2.
    let mut with = Vec::new();
    for (run, batch) in [(1, 1), (2, BATCH)] {
        let (receiver_runs, per_second) = receiver.run(run, batch).await?;
        with.push((runs.len(), per_second));
        runs.extend(receiver_runs);
        cluster
            .command(&["endpoints", "remove", &run.to_string()])
            .await?;
    }
    served.abort();
    let (mut run, after) = without_endpoint(cluster, orders, 3 * n, n, concurrency, label).await;
    run.name = format!("successful_payment, no event endpoint again [{label}]");
    runs.push(run);
    let without = f64::midpoint(before, after);
    for (index, per_second) in with {
        let change = (per_second / without - 1.0) * 100.0;
        let note = &mut runs[index].note;
        *note = format!(
            "{change:+.1}% payments/s against no endpoint (the mean of the runs before and \
             after); {note}"
        );
    }
    Ok(runs)
}

/// Payments `offset..offset + n` with no endpoint subscribed (their events are written, nobody
/// is sent them); the run and its payments per second.
async fn without_endpoint(
    cluster: &Cluster,
    orders: &[(i64, String)],
    offset: usize,
    n: usize,
    concurrency: usize,
    label: &str,
) -> (Run, f64) {
    let updates = payments(orders, offset, n);
    let rss = cluster.rss_sampler();
    let outcome = run_load(concurrency, n, |i| {
        cluster.post_webhook(i, updates[i].clone())
    })
    .await;
    let per_second = outcome.ok as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
    let run = Run::new(
        format!("successful_payment, no event endpoint [{label}]"),
        &outcome,
        Some(rss.stop().await),
        outcome.ok == n,
        String::new(),
    );
    (run, per_second)
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

/// The receiver's runs: its endpoint subscribed with a batch size, the payments, the events.
struct Receiver<'a> {
    cluster: &'a Cluster,
    orders: &'a [(i64, String)],
    inbox: &'a Inbox,
    url: &'a str,
    concurrency: usize,
    label: &'a str,
}

impl Receiver<'_> {
    /// Run `run` (1 or 2) of payments with the receiver subscribed, taking `batch` events per
    /// POST; then waits for every event and checks them. The runs, and the payments per
    /// second.
    async fn run(&self, run: usize, batch: i64) -> anyhow::Result<(Vec<Run>, f64)> {
        let (cluster, inbox, label) = (self.cluster, self.inbox, self.label);
        let n = self.orders.len() / 4;
        let offset = run * n;
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
        let receiver = if batch == 1 {
            "one event receiver".to_owned()
        } else {
            format!("one event receiver, batches of {batch}")
        };

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
        let with = outcome.ok as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
        let mut runs = vec![Run::new(
            format!("successful_payment, {receiver} [{label}]"),
            &outcome,
            Some(rss.stop().await),
            outcome.ok == n,
            String::new(),
        )];

        // Every event of this run, once, signed.
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
        let arrived = inbox.arrived.lock().unwrap().clone();
        let mut lags_us: Vec<u64> = Vec::with_capacity(n);
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        for i in 0..n {
            if let (Some(at), Some(acked)) = (arrived[offset + i], *acked[i].lock().unwrap()) {
                lags_us.push(at.saturating_duration_since(acked).as_micros() as u64);
                first = Some(first.map_or(at, |f: Instant| f.min(at)));
                last = Some(last.map_or(at, |l: Instant| l.max(at)));
            }
        }
        lags_us.sort_unstable();
        let delivered = lags_us.len();
        let spread = match (first, last) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64().max(1e-3),
            _ => 1.0,
        };
        let bad = *inbox.bad_signatures.lock().unwrap();
        let repeats = *inbox.repeats.lock().unwrap();
        let stray = arrived[..n].iter().filter(|at| at.is_some()).count();
        runs.push(Run::check(
            format!("event delivery, {receiver} [{label}]"),
            delivered == n && bad == 0 && stray == 0,
            format!(
                "{delivered}/{n} payment.credited delivered, {:.0} events/s; lag after the 2xx \
                 p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; all delivered {:.1} s after the last \
                 2xx; {bad} bad signatures, {repeats} repeats, {stray} from the run without \
                 endpoint",
                delivered as f64 / spread,
                quantile_ms(&lags_us, 0.5),
                quantile_ms(&lags_us, 0.99),
                quantile_ms(&lags_us, 1.0),
                drained.as_secs_f64(),
            ),
        ));
        Ok((runs, with))
    }
}
