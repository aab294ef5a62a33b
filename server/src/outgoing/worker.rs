//! Delivers events to the operator's endpoints: each endpoint by a task of its own (a slow or
//! dead receiver delays nobody else, nor the bot's messages, which have their own worker and
//! client), one POST at a time in the order the events were written (one event per POST, or up
//! to the endpoint's batch size as a JSON array), under a lease so that of several instances
//! one sends to an endpoint at a time. A failed attempt pauses the endpoint with exponential
//! backoff and jitter and is retried first; an event still failing after the retry window is
//! marked failed and the next one goes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::address;
use super::signature::{
    self, EVENT_COUNT_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER,
};
use super::{EndpointLease, EventStore, FailedPost, Outgoing, PendingDelivery};
use crate::clock::now_ms;
use crate::config::Config;
use crate::state::AppState;

/// Events read at once for one endpoint (more if its batch size is larger).
const BATCH: i64 = 200;
/// Due retries and other instances' events are looked for at least this often.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// And at most this often: during a sale every credit wakes the worker, and an endpoint's
/// sender already reads everything that arrives while it runs.
const MIN_PASS: Duration = Duration::from_millis(50);
/// A sender that has caught up reads its endpoint's new events at most this often.
const CAUGHT_UP_GAP: Duration = Duration::from_millis(100);
/// A sender with nothing to send keeps its lease this long (reading every
/// [`CAUGHT_UP_GAP`]) before giving it back: during a sale the lease is not taken and
/// returned between every two batches.
const LINGER: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// What is kept of a receiver's answer for `last_error`.
const KEPT_ANSWER: usize = 200;

/// The client events are POSTed with: no redirects followed, no proxy (it would resolve names
/// where the address check cannot see), and, unless private addresses are allowed, a resolver
/// that refuses every non-public address.
pub fn client(config: &Config) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(config.events.timeout)
        .connect_timeout(config.events.timeout)
        .user_agent(concat!("NDN-Events/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(4);
    let builder = if config.events.allow_private {
        builder
    } else {
        builder.dns_resolver(address::PublicOnly)
    };
    builder.build().expect("the delivery client builds")
}

pub async fn run(state: AppState, shutdown: CancellationToken) {
    let client = client(&state.config);
    let events = EventStore::new(&state.store);
    // The endpoints this process is sending to.
    let busy: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let mut last_pass = Instant::now() - MIN_PASS;
    while !shutdown.is_cancelled() {
        if let Some(rest) = MIN_PASS.checked_sub(last_pass.elapsed()) {
            tokio::select! {
                () = tokio::time::sleep(rest) => {}
                () = shutdown.cancelled() => break,
            }
        }
        last_pass = Instant::now();
        let now = now_ms();
        match events.due_endpoints(now).await {
            Ok(due) => {
                for id in due {
                    if busy.lock().expect("not poisoned").contains(&id) {
                        continue;
                    }
                    let until = now + lease_ms(&state.config);
                    match events.lease_endpoint(id, now, until).await {
                        Ok(Some(lease)) => {
                            busy.lock().expect("not poisoned").insert(id);
                            let sender = Sender {
                                state: state.clone(),
                                events: events.clone(),
                                client: client.clone(),
                                shutdown: shutdown.clone(),
                                lease_until: until,
                            };
                            let busy = busy.clone();
                            tasks.spawn(async move {
                                sender.send_all(lease).await;
                                busy.lock().expect("not poisoned").remove(&id);
                            });
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%error, endpoint = id, "cannot lease an endpoint")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot look for events to deliver; retrying"),
        }
        tokio::select! {
            () = state.hooks.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = shutdown.cancelled() => {}
        }
    }
    // Each sender stops after the event in flight and gives its lease back.
    while tasks.join_next().await.is_some() {}
}

/// The lease taken and renewed: long enough for an attempt that takes the whole timeout.
fn lease_ms(config: &Config) -> i64 {
    let lease = config
        .events
        .lease
        .max(config.events.timeout + Duration::from_secs(2));
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

struct Sender {
    state: AppState,
    events: EventStore,
    client: reqwest::Client,
    shutdown: CancellationToken,
    lease_until: i64,
}

impl Sender {
    /// Sends the endpoint's events until none has come for [`LINGER`], one fails, or the
    /// server stops. While it keeps up, it reads what has arrived at most every
    /// [`CAUGHT_UP_GAP`]: a sale's events go out in batches, one read and one commit for
    /// each, instead of a read and a commit for every event or two.
    async fn send_all(mut self, mut lease: EndpointLease) {
        let store = self.events.clone();
        let mut failures = lease.failures;
        let mut idle_since: Option<Instant> = None;
        loop {
            let read_at = Instant::now();
            let limit = BATCH.max(lease.batch);
            let outgoing = match store.outgoing(lease.id, limit).await {
                Ok(outgoing) => outgoing,
                Err(error) => {
                    tracing::warn!(%error, endpoint = lease.id, "cannot read pending events");
                    break;
                }
            };
            if self.shutdown.is_cancelled() {
                break;
            }
            let batch = &outgoing.events;
            let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= limit;
            if batch.is_empty() {
                // Only events it does not take, if any: its position moves past them.
                self.record_accepted(lease.id, &outgoing, 0).await;
                if idle_since.get_or_insert(read_at).elapsed() >= LINGER {
                    break;
                }
            } else {
                idle_since = None;
                // Where to, signed how and how many to a POST, as of now: read after the
                // events, so that a rotation or a move committed before them applies to them.
                match store.endpoint_target(&mut lease, now_ms()).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        tracing::warn!(%error, endpoint = lease.id, "cannot read the endpoint");
                        break;
                    }
                }
            }
            let mut accepted = 0;
            let per_post = usize::try_from(lease.batch).unwrap_or(1).max(1);
            for post in batch.chunks(per_post) {
                if self.shutdown.is_cancelled() {
                    break;
                }
                if let Err(error) = self.keep_lease(lease.id).await {
                    tracing::warn!(%error, endpoint = lease.id, "cannot renew the endpoint's lease");
                    self.record_accepted(lease.id, &outgoing, accepted).await;
                    return;
                }
                let started = Instant::now();
                match self.post(&lease, post).await {
                    Ok(()) => {
                        failures = 0;
                        accepted += post.len();
                        let metrics = &self.state.metrics;
                        let now = now_ms();
                        for delivery in post {
                            metrics.events_delivered.inc();
                            let lag = (now - delivery.created_at).max(0);
                            #[allow(clippy::cast_precision_loss)]
                            metrics.event_delivery_seconds.observe(lag as f64 / 1000.0);
                        }
                    }
                    Err(failure) => {
                        self.record_accepted(lease.id, &outgoing, accepted).await;
                        failures += 1;
                        let post = Attempt {
                            events: post,
                            replayed: outgoing.replayed,
                            failures,
                            took: started.elapsed(),
                        };
                        self.failed(&lease, &post, failure).await;
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                self.record_accepted(lease.id, &outgoing, accepted).await;
            }
            if full {
                continue;
            }
            // Caught up: let the next events gather (the lease, renewed before each POST,
            // outlasts the wait by far).
            let rest = CAUGHT_UP_GAP.saturating_sub(read_at.elapsed());
            tokio::select! {
                () = tokio::time::sleep(rest) => {}
                () = self.shutdown.cancelled() => break,
            }
        }
        if let Err(error) = store.release_endpoint(lease.id).await {
            // It runs out by itself.
            tracing::warn!(%error, endpoint = lease.id, "cannot release the endpoint's lease");
        }
    }

    async fn keep_lease(&mut self, endpoint: i64) -> Result<(), crate::store::StoreError> {
        let now = now_ms();
        let timeout = i64::try_from(self.state.config.events.timeout.as_millis()).unwrap_or(0);
        if now + timeout + 1000 > self.lease_until {
            self.lease_until = now + lease_ms(&self.state.config);
            self.events
                .renew_endpoint(endpoint, self.lease_until)
                .await?;
        }
        Ok(())
    }

    /// Records that the receiver accepted the first `accepted` events of `outgoing` (replayed
    /// ones each in its row; the stream's by moving the endpoint's position, past the events
    /// it does not take too once all were accepted).
    async fn record_accepted(&self, endpoint: i64, outgoing: &Outgoing, accepted: usize) {
        let store = &self.events;
        let events = &outgoing.events[..accepted.min(outgoing.events.len())];
        let recorded = if outgoing.replayed {
            let seqs: Vec<i64> = events.iter().map(|event| event.position.seq).collect();
            store.delivered(endpoint, &seqs, now_ms()).await
        } else {
            let to = if accepted == outgoing.events.len() {
                outgoing.through
            } else {
                events.last().map(|event| event.position)
            };
            let Some(to) = to else {
                return;
            };
            let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
            store.advance_endpoint(endpoint, to, count, now_ms()).await
        };
        if let Err(error) = recorded {
            // They stay pending and are sent again later: at least once, never lost.
            tracing::error!(%error, endpoint, count = accepted, "cannot record deliveries");
        }
    }

    /// One POST, signed now: the event alone (its id and type also in headers) to an endpoint
    /// that takes one at a time, else a JSON array of the events `post` (written in order, each
    /// exactly as it would go alone).
    async fn post(&self, lease: &EndpointLease, post: &[PendingDelivery]) -> Result<(), Failure> {
        let allow_private = self.state.config.events.allow_private;
        let url = address::check_url(&lease.url, allow_private).map_err(Failure::refused)?;
        let secrets: Vec<&str> = lease.secrets.iter().map(String::as_str).collect();
        let timestamp = now_ms() / 1000;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let body = match post {
            [delivery] if lease.batch <= 1 => {
                request = request
                    .header(EVENT_ID_HEADER, &delivery.event_id)
                    .header(EVENT_TYPE_HEADER, &delivery.kind);
                delivery.body.clone()
            }
            _ => {
                request = request.header(EVENT_COUNT_HEADER, post.len());
                let size = post.iter().map(|d| d.body.len() + 1).sum::<usize>() + 1;
                let mut body = String::with_capacity(size);
                body.push('[');
                for (index, delivery) in post.iter().enumerate() {
                    if index > 0 {
                        body.push(',');
                    }
                    body.push_str(&delivery.body);
                }
                body.push(']');
                body
            }
        };
        let response = request
            .header(
                SIGNATURE_HEADER,
                signature::header(&secrets, timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map_err(Failure::from_error)?;
        let status = response.status();
        if status.is_success() {
            // Read what little it says, so the connection can carry the next event.
            let _ = response.bytes().await;
            return Ok(());
        }
        let mut answer = String::new();
        if let Ok(bytes) = response.bytes().await {
            answer = String::from_utf8_lossy(&bytes[..bytes.len().min(KEPT_ANSWER)])
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
        }
        let what = if status.is_redirection() {
            "a redirect (not followed)".to_owned()
        } else {
            format!("HTTP {}", status.as_u16())
        };
        Err(Failure {
            status: Some(status.as_u16()),
            error: format!("{what} {}", answer.trim()).trim().to_owned(),
        })
    }

    /// A failed POST: the endpoint backs off, and those of its events past their retry window
    /// are marked failed (then the next POST goes at once). In a stream only the events before
    /// the first still within its window are given up: the position moves past them alone.
    async fn failed(&self, lease: &EndpointLease, post: &Attempt<'_>, failure: Failure) {
        let now = now_ms();
        let config = &self.state.config.events;
        let window = i64::try_from(config.retry_window.as_millis()).unwrap_or(i64::MAX);
        let too_old = |delivery: &PendingDelivery| now - delivery.queued_at >= window;
        let given_up: Vec<PendingDelivery> = if post.replayed {
            post.events.iter().filter(|d| too_old(d)).cloned().collect()
        } else {
            post.events
                .iter()
                .take_while(|d| too_old(d))
                .cloned()
                .collect()
        };
        let wait = if given_up.is_empty() {
            backoff(config.first_retry, post.failures, jitter())
        } else {
            // What is left goes at once (and is given up too if it is as old).
            Duration::ZERO
        };
        let metrics = &self.state.metrics;
        metrics.event_attempts_failed.inc();
        let first = post
            .events
            .first()
            .map_or("", |delivery| delivery.event_id.as_str());
        for delivery in &given_up {
            metrics.events_failed.inc();
            tracing::error!(
                endpoint = lease.id,
                event_id = delivery.event_id,
                attempts = if post.replayed {
                    delivery.attempts + 1
                } else {
                    post.failures
                },
                error = failure.error,
                "event not delivered within the retry window: marked failed"
            );
        }
        if given_up.is_empty() {
            tracing::warn!(
                endpoint = lease.id,
                event_id = first,
                events = post.events.len(),
                error = failure.error,
                took_ms = post.took.as_millis(),
                retry_in_ms = wait.as_millis(),
                "event delivery failed; will retry"
            );
        }
        let retry_at = now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let failed = FailedPost {
            events: post.events,
            replayed: post.replayed,
            given_up: &given_up,
            failures: post.failures,
            status: failure.status,
            error: &failure.error,
            retry_at,
        };
        if let Err(error) = self.events.delivery_failed(lease.id, &failed).await {
            tracing::error!(%error, endpoint = lease.id, "cannot record a failed delivery");
        }
    }
}

/// A POST that failed: its events, whether they were replayed ones, the endpoint's failures
/// in a row with it, and how long it took.
struct Attempt<'a> {
    events: &'a [PendingDelivery],
    replayed: bool,
    failures: i64,
    took: Duration,
}

/// Why an attempt failed.
struct Failure {
    status: Option<u16>,
    error: String,
}

impl Failure {
    fn refused(problem: String) -> Self {
        Self {
            status: None,
            error: problem,
        }
    }

    fn from_error(error: reqwest::Error) -> Self {
        // The resolver's refusal is the source of a connect error: say it, not just "connect".
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        if error.is_timeout() {
            text = format!("no answer within the timeout ({text})");
        }
        Self {
            status: None,
            error: text,
        }
    }
}

/// The wait after `failures` failed attempts in a row: `first`, doubled each time, capped at
/// an hour, times `jitter` (0.8–1.2) so that many endpoints do not retry in step.
fn backoff(first: Duration, failures: i64, jitter: f64) -> Duration {
    let doublings = u32::try_from(failures.clamp(1, 30) - 1).unwrap_or(0);
    let wait = first
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_BACKOFF);
    wait.mul_f64(jitter.clamp(0.8, 1.2))
}

fn jitter() -> f64 {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    // 0.8 + 255 / 255 * 0.4 rounds to a hair above 1.2.
    (0.8 + f64::from(byte[0]) / 255.0 * 0.4).min(1.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour_with_jitter() {
        let first = Duration::from_secs(5);
        assert_eq!(backoff(first, 1, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(first, 2, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(first, 5, 1.0), Duration::from_secs(80));
        assert_eq!(backoff(first, 40, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(first, 1, 0.8), Duration::from_secs(4));
        assert_eq!(backoff(first, 1, 5.0), Duration::from_secs(6));
        for _ in 0..100 {
            assert!((0.8..=1.2).contains(&jitter()));
        }
    }
}
