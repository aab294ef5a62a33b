//! Events older than the retention (`EVENTS_RETENTION_DAYS`) that every endpoint has are
//! deleted, a few hundred at a time, by every instance (a delete is the same whoever runs it).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::EventStore;
use crate::clock::now_ms;

/// Old events are looked for this often, and deleted this many per transaction, with a pause
/// between transactions: the payments' writer never waits long behind one.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
const PRUNED_AT_ONCE: i64 = 500;
const PRUNE_PAUSE: Duration = Duration::from_millis(50);

/// Prunes at start, then every [`PRUNE_EVERY`], until `shutdown`.
pub async fn run(events: EventStore, retention: Duration, shutdown: CancellationToken) {
    let mut pruning = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = pruning.tick() => prune(&events, retention, &shutdown).await,
        }
    }
}

async fn prune(events: &EventStore, retention: Duration, shutdown: &CancellationToken) {
    let before = now_ms().saturating_sub(crate::clock::millis(retention));
    let mut pruned = 0;
    while !shutdown.is_cancelled() {
        match events.prune(before, PRUNED_AT_ONCE, now_ms()).await {
            Ok(0) => break,
            Ok(count) => pruned += count,
            Err(error) => {
                tracing::warn!(%error, "cannot prune old events");
                break;
            }
        }
        tokio::time::sleep(PRUNE_PAUSE).await;
    }
    if pruned > 0 {
        tracing::info!(pruned, "events past their retention deleted");
    }
}
