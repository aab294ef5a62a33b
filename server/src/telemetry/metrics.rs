//! The server's Prometheus metrics: counters, gauges and histograms every part updates, and
//! their text (served at `GET /metrics` by `http::metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operated {
    pub operation: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Method {
    pub method: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub updates: Family<Kind, Counter>,
    pub webhook_seconds: Family<Kind, Histogram, fn() -> Histogram>,
    pub payments_credited: Counter,
    pub stars_credited: Counter,
    pub payments_held: Counter,
    pub refunds_applied: Counter,
    pub pre_checkout_refusals: Family<Reason, Counter>,
    pub notifications_sent: Counter,
    pub notifications_failed: Counter,
    pub outbox_pending: Gauge,
    pub outbox_oldest_seconds: Gauge,
    pub payment_commits: Gauge,
    pub payment_batches_split: Gauge,
    pub writer_panics: Gauge,
    pub bot_api_errors: Family<Method, Counter>,
    pub bot_api_rate_limited: Family<Method, Counter>,
    pub operations: Family<Operated, Counter>,
    pub events_delivered: Counter,
    pub event_attempts_failed: Counter,
    pub events_failed: Counter,
    pub events_pending: Gauge,
    pub events_oldest_pending_seconds: Gauge,
    pub event_delivery_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ndn");
        let metrics = Self {
            updates: Family::default(),
            webhook_seconds: Family::new_with_constructor(latency_histogram),
            payments_credited: Counter::default(),
            stars_credited: Counter::default(),
            payments_held: Counter::default(),
            refunds_applied: Counter::default(),
            pre_checkout_refusals: Family::default(),
            notifications_sent: Counter::default(),
            notifications_failed: Counter::default(),
            outbox_pending: Gauge::default(),
            outbox_oldest_seconds: Gauge::default(),
            payment_commits: Gauge::default(),
            payment_batches_split: Gauge::default(),
            writer_panics: Gauge::default(),
            bot_api_errors: Family::default(),
            bot_api_rate_limited: Family::default(),
            operations: Family::default(),
            events_delivered: Counter::default(),
            event_attempts_failed: Counter::default(),
            events_failed: Counter::default(),
            events_pending: Gauge::default(),
            events_oldest_pending_seconds: Gauge::default(),
            // 5 ms … ~3 h
            event_delivery_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 22)),
            registry: Registry::default(),
        };
        registry.register(
            "updates_received",
            "Telegram updates received, by kind",
            metrics.updates.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Time to process an update, by kind",
            metrics.webhook_seconds.clone(),
        );
        registry.register(
            "payments_credited",
            "Payments credited",
            metrics.payments_credited.clone(),
        );
        registry.register(
            "stars_credited",
            "Telegram Stars of credited payments",
            metrics.stars_credited.clone(),
        );
        registry.register(
            "payments_held",
            "Payments recorded for the operator",
            metrics.payments_held.clone(),
        );
        registry.register(
            "refunds_applied",
            "Refunds debited",
            metrics.refunds_applied.clone(),
        );
        registry.register(
            "pre_checkout_refusals",
            "Pre-checkout queries refused, by reason",
            metrics.pre_checkout_refusals.clone(),
        );
        registry.register(
            "notifications_sent",
            "Bot messages delivered",
            metrics.notifications_sent.clone(),
        );
        registry.register(
            "notifications_failed",
            "Bot message attempts that failed",
            metrics.notifications_failed.clone(),
        );
        registry.register(
            "outbox_pending",
            "Bot messages waiting to be sent",
            metrics.outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_seconds",
            "Age of the oldest bot message waiting to be sent",
            metrics.outbox_oldest_seconds.clone(),
        );
        registry.register(
            "bot_api_rate_limited",
            "Bot API calls Telegram refused with 429 Too Many Requests, by method",
            metrics.bot_api_rate_limited.clone(),
        );
        registry.register(
            "bot_api_errors",
            "Bot API calls that failed, by method",
            metrics.bot_api_errors.clone(),
        );
        registry.register(
            "api_operations",
            "Service API requests by operation and outcome (applied, repeated, refused)",
            metrics.operations.clone(),
        );
        registry.register(
            "payment_commits",
            "Transactions that committed payments (group commit: one for many payments)",
            metrics.payment_commits.clone(),
        );
        registry.register(
            "payment_batches_split",
            "Shared payment transactions that failed and were retried one payment at a time",
            metrics.payment_batches_split.clone(),
        );
        registry.register(
            "writer_panics",
            "Batch attempts of the payment and operation writers that panicked and were rolled \
             back (the writer goes on; alert on any)",
            metrics.writer_panics.clone(),
        );
        registry.register(
            "events_delivered",
            "Events accepted by an endpoint (2xx)",
            metrics.events_delivered.clone(),
        );
        registry.register(
            "event_attempts_failed",
            "Event deliveries that failed and will be retried (or were given up)",
            metrics.event_attempts_failed.clone(),
        );
        registry.register(
            "events_failed",
            "Events given up after the retry window (server events list --failed)",
            metrics.events_failed.clone(),
        );
        registry.register(
            "events_pending",
            "Event deliveries waiting, over all endpoints",
            metrics.events_pending.clone(),
        );
        registry.register(
            "events_oldest_pending_seconds",
            "Age of the oldest event delivery waiting",
            metrics.events_oldest_pending_seconds.clone(),
        );
        registry.register(
            "event_delivery_seconds",
            "From an event's change to its endpoint's 2xx",
            metrics.event_delivery_seconds.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
