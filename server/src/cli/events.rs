//! `server events`: the events written for the endpoints, listed and replayed.

use clap::Subcommand;

use super::format_time;
use crate::outgoing::{EventLine, EventStore};
use crate::store::Store;

#[derive(Subcommand)]
pub enum EventsAction {
    /// The latest events with each endpoint's delivery (newest first).
    #[command(after_help = concat!(reads_database!(), "Examples:
  server events list --failed
  server events list --limit 500 --json | jq '.[] | select(.type == \"payment.refunded\")'"))]
    List {
        /// Only events some endpoint gave up on.
        #[arg(long)]
        failed: bool,
        /// How many events at most (1-10000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON array, an object per event with its deliveries, instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Send events again to every endpoint subscribed to them that has already passed them (one
    /// still ahead in an endpoint's stream gets there anyway; receivers deduplicate by id).
    #[command(after_help = concat!(reads_database!(), "Examples:
  server events replay evt_01J9Z3...
  server events replay --since 6h
  server events replay --since 2026-12-01T09:30Z"))]
    Replay {
        /// The event's id (evt_…).
        event_id: Option<String>,
        /// Instead, every event since: 2026-12-01, 2026-12-01T09:30Z, or 6h, 3d ago.
        #[arg(long, conflicts_with = "event_id")]
        since: Option<String>,
    },
}

/// What retention deleted so far (`Store::events_pruned`), in words.
fn pruned_words(pruned: (i64, Option<i64>), retention: std::time::Duration) -> String {
    let days = retention.as_secs() / 86_400;
    match pruned {
        (0, _) | (_, None) => format!(
            "none pruned yet (events older than {days} days are deleted once every endpoint \
             has them: EVENTS_RETENTION_DAYS)"
        ),
        (count, Some(at)) => format!(
            "{count} events older than {days} days pruned once every endpoint had them \
             (EVENTS_RETENTION_DAYS), the last at {}",
            format_time(at)
        ),
    }
}

/// The lines (an event once per endpoint) as one object per event with its deliveries.
fn as_json(lines: &[EventLine]) -> Vec<serde_json::Value> {
    let mut listed: Vec<serde_json::Value> = Vec::new();
    for line in lines {
        if listed
            .last()
            .is_none_or(|last| last["id"] != line.id.as_str())
        {
            listed.push(serde_json::json!({
                "id": line.id,
                "type": line.kind,
                "user_id": line.user_id,
                "created_at": line.created_at,
                "deliveries": [],
            }));
        }
        if let (Some(endpoint), Some(status), Some(Some(deliveries))) = (
            line.endpoint_id,
            &line.status,
            listed
                .last_mut()
                .map(|event| event["deliveries"].as_array_mut()),
        ) {
            deliveries.push(serde_json::json!({
                "endpoint_id": endpoint,
                "status": status,
                "attempts": line.attempts,
                "last_error": line.last_error,
            }));
        }
    }
    listed
}

pub async fn run(
    action: EventsAction,
    store: &Store,
    retention: std::time::Duration,
) -> anyhow::Result<()> {
    let now = crate::clock::now_ms();
    let events = EventStore::new(store);
    match action {
        EventsAction::List {
            failed,
            limit,
            json,
        } => {
            let lines = events.lines(failed, limit.clamp(1, 10_000)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&as_json(&lines))?);
                return Ok(());
            }
            if lines.is_empty() {
                println!(
                    "{}",
                    if failed {
                        "no failed events"
                    } else {
                        "no events"
                    }
                );
            }
            let mut last = None;
            for line in lines {
                if last.as_deref() != Some(line.id.as_str()) {
                    println!(
                        "{}  {}  {:<17} user {}",
                        format_time(line.created_at),
                        line.id,
                        line.kind,
                        line.user_id
                    );
                    last = Some(line.id.clone());
                }
                if let (Some(endpoint), Some(status)) = (line.endpoint_id, &line.status) {
                    let attempts = line
                        .attempts
                        .map_or(String::new(), |n| format!(" after {n} attempts"));
                    println!(
                        "    endpoint {endpoint}: {status}{attempts}{}",
                        line.last_error
                            .map_or(String::new(), |error| format!(" ({error})"))
                    );
                }
            }
            // What retention took, once it took something (older events are not listed).
            let pruned = events.pruned().await?;
            if pruned.0 > 0 {
                println!("pruned: {}", pruned_words(pruned, retention));
            }
        }
        EventsAction::Replay { event_id, since } => {
            let queued = match (event_id, since) {
                (Some(id), _) => {
                    if !events.exists(&id).await? {
                        anyhow::bail!(
                            "no event {id}: never written, or pruned — {}",
                            pruned_words(events.pruned().await?, retention)
                        );
                    }
                    events.replay(Some(&id), None, now).await?
                }
                (None, Some(since)) => {
                    let since = crate::clock::parse_time(&since, now).ok_or_else(|| {
                        anyhow::anyhow!("`{since}` is not a time like 2026-12-01T09:30Z or 6h")
                    })?;
                    events.replay(None, Some(since), now).await?
                }
                (None, None) => anyhow::bail!("name an event id, or --since TIME"),
            };
            println!("{queued} deliveries queued; the server sends them within a second");
        }
    }
    Ok(())
}
