//! `server endpoints`: where signed events go.

use clap::Subcommand;

use super::format_time;
use crate::contract::event::EventType;
use crate::store::Store;

/// `--events`: the event types, or `all`.
fn event_types() -> clap::builder::PossibleValuesParser {
    let mut names = vec!["all"];
    names.extend(EventType::ALL.map(EventType::as_str));
    clap::builder::PossibleValuesParser::new(names)
}

#[derive(Subcommand)]
pub enum EndpointsAction {
    /// Add an endpoint and print its signing secret, once.
    #[command(after_help = concat!(reads_database!(), "Examples:
  server endpoints add https://shop.example/ndn-events --events payment.credited,payment.refunded
  server endpoints add https://shop.example/ndn-events --batch 100"))]
    Add {
        /// https://… (a private or loopback address only with ENDPOINTS_ALLOW_PRIVATE=true).
        url: String,
        /// The event types it receives, comma-separated, or `all`.
        #[arg(long, value_delimiter = ',', value_parser = event_types(), default_value = "all")]
        events: Vec<String>,
        /// Events per POST at most: 1 sends each event alone (its id and type in headers);
        /// more sends a JSON array of up to this many events, signed as one body.
        #[arg(long, default_value_t = 1)]
        batch: i64,
    },
    /// The endpoints: URL, events, deliveries waiting, delivered and failed, last error.
    #[command(after_help = concat!(reads_database!(), "Examples:
  server endpoints list
  server endpoints list --json | jq '.[] | select(.failures > 0) | .url'"))]
    List {
        /// One JSON array (times in Unix milliseconds) instead of lines for people.
        #[arg(long)]
        json: bool,
    },
    /// Set how many events an endpoint takes in one POST (1: one at a time; up to 1000: a
    /// JSON array). Applies from its next POST.
    #[command(after_help = concat!(reads_database!(), "Example:\n  server endpoints batch 1 100"))]
    Batch { id: i64, size: i64 },
    /// Remove an endpoint (and the deliveries waiting for it).
    #[command(after_help = concat!(reads_database!(), "Example:\n  server endpoints remove 1"))]
    Remove { id: i64 },
    /// Give an endpoint a new secret and print it; the old one signs too for 24 hours.
    #[command(after_help = concat!(
        reads_database!(),
        "Example:\n  server endpoints rotate-secret 1"
    ))]
    RotateSecret { id: i64 },
}

pub async fn run(
    action: EndpointsAction,
    store: &Store,
    allow_private: bool,
) -> anyhow::Result<()> {
    match action {
        EndpointsAction::Add { url, events, batch } => {
            let (id, secret) =
                crate::outgoing::add_endpoint(store, &url, &events.join(","), batch, allow_private)
                    .await?;
            println!("{secret}");
            eprintln!(
                "endpoint {id} added; its signing secret is shown this once: store it where \
                 the receiver can read it"
            );
        }
        EndpointsAction::List { json } => {
            let listed = crate::outgoing::EventStore::new(store).list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
                return Ok(());
            }
            if listed.is_empty() {
                println!(
                    "no endpoints: `server endpoints add https://… --events payment.credited`"
                );
            }
            for endpoint in listed {
                println!("{:<4} {}", endpoint.id, endpoint.url);
                println!("     events     {}", endpoint.types.join(", "));
                if endpoint.batch > 1 {
                    println!(
                        "     batches    up to {} events per POST (a JSON array)",
                        endpoint.batch
                    );
                }
                println!(
                    "     deliveries {} waiting, {} delivered, {} failed; last success {}",
                    endpoint.pending,
                    endpoint.delivered,
                    endpoint.failed,
                    endpoint.last_success_at.map_or("never".into(), format_time)
                );
                if endpoint.failures > 0 {
                    println!(
                        "     FAILING    {} attempts in a row, next {}: {}",
                        endpoint.failures,
                        format_time(endpoint.retry_at),
                        endpoint.last_error.as_deref().unwrap_or("")
                    );
                }
                if let Some(until) = endpoint
                    .previous_until
                    .filter(|until| *until > crate::clock::now_ms())
                {
                    println!(
                        "     rotating   the previous secret signs too until {}",
                        format_time(until)
                    );
                }
            }
        }
        EndpointsAction::Batch { id, size } => {
            let size = crate::outgoing::check_batch(size)?;
            if !crate::outgoing::EventStore::new(store)
                .set_batch(id, size)
                .await?
            {
                anyhow::bail!("no endpoint {id}");
            }
            if size == 1 {
                println!("endpoint {id} takes one event per POST");
            } else {
                println!("endpoint {id} takes up to {size} events per POST, as a JSON array");
            }
        }
        EndpointsAction::Remove { id } => {
            if !crate::outgoing::EventStore::new(store).remove(id).await? {
                anyhow::bail!("no endpoint {id}");
            }
            println!("endpoint {id} removed");
        }
        EndpointsAction::RotateSecret { id } => {
            let Some(secret) = crate::outgoing::rotate_secret(store, id).await? else {
                anyhow::bail!("no endpoint {id}");
            };
            println!("{secret}");
            eprintln!(
                "endpoint {id} has a new secret, shown this once; events are signed with both \
                 for 24 hours"
            );
        }
    }
    Ok(())
}
