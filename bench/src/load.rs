//! A closed-loop load generator: `concurrency` requests in flight until `total` are done.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a run produced: answers, failures, per-request latency and wall time.
pub struct Outcome {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub latencies_us: Vec<u64>,
    pub bodies: Vec<String>,
    pub elapsed: Duration,
}

/// Runs `request(0..total)` with `concurrency` in flight. A request answers `Ok(body)` for a
/// 2xx and `Err(reason)` otherwise.
pub async fn run_load<F, Fut>(concurrency: usize, total: usize, request: F) -> Outcome
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let workers = (0..concurrency.max(1)).map(|_| async {
        let mut latencies = Vec::new();
        let mut bodies = Vec::new();
        let mut errors = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= total {
                break;
            }
            let sent = Instant::now();
            match request(index).await {
                Ok(body) => {
                    latencies.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                    bodies.push(body);
                }
                Err(reason) => errors.push(reason),
            }
        }
        (latencies, bodies, errors)
    });
    let results = futures::future::join_all(workers).await;
    let elapsed = started.elapsed();
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        latencies_us: Vec::with_capacity(total),
        bodies: Vec::with_capacity(total),
        elapsed,
    };
    for (latencies, bodies, errors) in results {
        outcome.ok += bodies.len();
        outcome.errors += errors.len();
        if outcome.first_error.is_none() {
            outcome.first_error = errors.into_iter().next();
        }
        outcome.latencies_us.extend(latencies);
        outcome.bodies.extend(bodies);
    }
    outcome.latencies_us.sort_unstable();
    outcome
}

/// The `q` quantile (0..=1) of sorted microseconds, in milliseconds.
pub fn quantile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    sorted_us[rank.min(sorted_us.len() - 1)] as f64 / 1000.0
}
