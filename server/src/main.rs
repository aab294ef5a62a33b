use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use server::api::keys::{self, Scope};
use server::bot_api::BotApi;
use server::config::{Config, Mode};
use server::ledger::{Effects, Ledger};
use server::ops;
use server::store::Store;

/// NDN Mini App server: the Mini App, its server functions and Telegram's webhook on one port.
/// Configuration comes from the environment (and `.env`); see the README.
#[derive(Parser)]
#[command(name = "server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Mini App and the webhook (the default).
    Serve {
        /// Fetch updates with getUpdates long polling instead of receiving the webhook
        /// (a real bot without a public URL; the webhook must be deleted first).
        #[arg(long)]
        poll: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Register, inspect or remove the webhook at Telegram.
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// Refund a payment: refundStarPayment, then debit its NDN once (safe to repeat).
    Refund {
        /// The payment's telegram_payment_charge_id.
        charge_id: String,
    },
    /// Credit payments (and apply refunds) that Telegram lists but the ledger lacks.
    Reconcile,
    /// Keys of the service API (`/v1/…`) for the operator's other services.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check the books.
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// Where signed events go: the operator's backend (webhooks out).
    Endpoints {
        #[command(subcommand)]
        action: EndpointsAction,
    },
    /// The events written for the endpoints, and their deliveries.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Every transfer of a period (UTC days, both included), for the accountant: time, kind,
    /// buyer, NDN, Stars, charge id, references and reason, then a totals line per kind.
    Export {
        /// The first day, e.g. 2026-12-01 (UTC; years 1970-9999).
        #[arg(long, value_parser = server::clock::typed_day)]
        from: i64,
        /// The last day, e.g. 2026-12-31.
        #[arg(long, value_parser = server::clock::typed_day)]
        to: i64,
        /// csv (UTF-8, opens in spreadsheets) or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Make a key and print it, once (only its hash is kept).
    Create {
        /// A name for the service that will use it (revoke by it).
        #[arg(long)]
        name: String,
        /// What it may do: read (balances, statements), spend (debits, holds), grant (credits).
        #[arg(long, default_value = "read")]
        scopes: String,
    },
    /// The keys: name, scopes, when created and last used, revoked or not (never the key).
    List,
    /// Revoke the active key of this name: running servers refuse it within 2 s (the console's
    /// Revoke holds at once on the instance that serves it).
    Revoke { name: String },
}

#[derive(Subcommand)]
enum EndpointsAction {
    /// Add an endpoint and print its signing secret, once.
    Add {
        /// https://… (a private or loopback address only with ENDPOINTS_ALLOW_PRIVATE=true).
        url: String,
        /// The event types it receives, comma-separated, or `all`: payment.credited,
        /// payment.held, payment.refunded, debit.created, hold.created, hold.captured,
        /// hold.released, credit.granted.
        #[arg(long, default_value = "all")]
        events: String,
        /// Events per POST at most: 1 sends each event alone (its id and type in headers);
        /// more sends a JSON array of up to this many events, signed as one body.
        #[arg(long, default_value_t = 1)]
        batch: i64,
    },
    /// The endpoints: URL, events, deliveries waiting, delivered and failed, last error.
    List,
    /// Set how many events an endpoint takes in one POST (1: one at a time; up to 1000: a
    /// JSON array). Applies from its next POST.
    Batch { id: i64, size: i64 },
    /// Remove an endpoint (and the deliveries waiting for it).
    Remove { id: i64 },
    /// Give an endpoint a new secret and print it; the old one signs too for 24 hours.
    RotateSecret { id: i64 },
}

#[derive(Subcommand)]
enum EventsAction {
    /// The latest events with each endpoint's delivery (newest first).
    List {
        /// Only events some endpoint gave up on.
        #[arg(long)]
        failed: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Send events again to every endpoint subscribed to them that has already passed them (one
    /// still ahead in an endpoint's stream gets there anyway; receivers deduplicate by id).
    Replay {
        /// The event's id (evt_…).
        event_id: Option<String>,
        /// Instead, every event since: 2026-12-01, 2026-12-01T09:30Z, or 6h, 3d ago.
        #[arg(long, conflicts_with = "event_id")]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum LedgerAction {
    /// Recompute every balance from the transfers and check that the books sum to zero, that
    /// every cached balance equals its transfers, that every credited charge has exactly one
    /// credit and at most one refund, and that the Stars match the payments; exits 1 naming
    /// each discrepancy.
    Verify,
}

#[derive(Subcommand)]
enum WebhookAction {
    /// setWebhook with PUBLIC_URL/webhook/telegram, the secret and every update kind we handle;
    /// also registers the bot's commands (English, Russian) and the menu button.
    Set,
    /// Show getWebhookInfo, with warnings for what would break payments.
    Info,
    /// deleteWebhook, keeping pending updates.
    Delete {
        /// Also throw away pending updates (they may be payments!): give it twice to mean it.
        #[arg(long, action = clap::ArgAction::Count)]
        drop_pending_updates: u8,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .init();
    match run(
        cli.command.unwrap_or(Command::Serve { poll: false }),
        config,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { poll } => {
            config.poll_updates = poll;
            serve(config).await
        }
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Webhook { action } => {
            let bot = bot_api(&config)?;
            let report = match action {
                WebhookAction::Set => ops::set_webhook(&bot, &config).await?,
                WebhookAction::Info => ops::webhook_info(&bot).await?,
                WebhookAction::Delete {
                    drop_pending_updates: 1,
                } => anyhow::bail!(
                    "pending updates may be payments: repeat --drop-pending-updates to really drop them"
                ),
                WebhookAction::Delete {
                    drop_pending_updates,
                } => ops::delete_webhook(&bot, drop_pending_updates >= 2).await?,
            };
            println!("{report}");
            Ok(())
        }
        Command::Refund { charge_id } => {
            let (bot, ledger) = (bot_api(&config)?, open_ledger(&config).await?);
            println!("{}", ops::refund(&bot, &ledger, &charge_id).await?);
            Ok(())
        }
        Command::Reconcile => {
            let (bot, ledger) = (bot_api(&config)?, open_ledger(&config).await?);
            print!("{}", ops::reconcile(&bot, &ledger).await?);
            Ok(())
        }
        Command::Keys { action } => keys(action, &open_store(&config).await?).await,
        Command::Endpoints { action } => endpoints(action, &config).await,
        Command::Events { action } => {
            let retention = config.events.retention;
            events(action, &open_store(&config).await?, retention).await
        }
        Command::Export {
            from,
            to,
            format,
            output,
        } => {
            if to < from {
                anyhow::bail!("--to is before --from");
            }
            let format = server::export::Format::parse(&format)
                .map_err(|problem| anyhow::anyhow!(problem))?;
            let store = open_store(&config).await?;
            let totals = match output {
                Some(path) => {
                    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
                    server::export::export(&store, from, to, format, &mut file).await?
                }
                None => {
                    let mut stdout = tokio::io::BufWriter::new(tokio::io::stdout());
                    server::export::export(&store, from, to, format, &mut stdout).await?
                }
            };
            let count: i64 = totals.values().map(|kind| kind.count).sum();
            eprintln!("{count} transfers exported");
            Ok(())
        }
        Command::Ledger {
            action: LedgerAction::Verify,
        } => {
            let report = server::ledger::verify::verify(&open_store(&config).await?).await?;
            print!("{report}");
            if report.is_clean() {
                Ok(())
            } else {
                Err(Discrepancies(report.discrepancies.len()).into())
            }
        }
    }
}

async fn keys(action: KeysAction, store: &Store) -> anyhow::Result<()> {
    match action {
        KeysAction::Create { name, scopes } => {
            let scopes = Scope::parse_list(&scopes).map_err(|problem| anyhow::anyhow!(problem))?;
            let key = keys::create(store, &name, &scopes)
                .await
                .map_err(|problem| anyhow::anyhow!(problem))?;
            println!("{key}");
            eprintln!("key `{name}` created; it is shown this once, store it as a secret");
        }
        KeysAction::List => {
            let listed = store.api_keys().await?;
            if listed.is_empty() {
                println!("no keys: `server keys create --name NAME --scopes read,spend`");
            }
            for key in listed {
                let when = |ms: Option<i64>| ms.map_or("never".to_owned(), format_time);
                println!(
                    "{:<24} {:<18} created {}  last used {}{}",
                    key.name,
                    key.scopes,
                    format_time(key.created_at),
                    when(key.last_used_at),
                    key.revoked_at
                        .map_or(String::new(), |at| format!("  REVOKED {}", format_time(at))),
                );
            }
        }
        KeysAction::Revoke { name } => {
            if !store.revoke_api_key(&name, server::clock::now_ms()).await? {
                anyhow::bail!("no active key named `{name}`");
            }
            println!("key `{name}` revoked");
        }
    }
    Ok(())
}

async fn endpoints(action: EndpointsAction, config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match action {
        EndpointsAction::Add { url, events, batch } => {
            let (id, secret) = server::hooks::add_endpoint(
                &store,
                &url,
                &events,
                batch,
                config.endpoints_allow_private,
            )
            .await?;
            println!("{secret}");
            eprintln!(
                "endpoint {id} added; its signing secret is shown this once: store it where \
                 the receiver can read it"
            );
        }
        EndpointsAction::List => {
            let listed = store.endpoints().await?;
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
                    .filter(|until| *until > server::clock::now_ms())
                {
                    println!(
                        "     rotating   the previous secret signs too until {}",
                        format_time(until)
                    );
                }
            }
        }
        EndpointsAction::Batch { id, size } => {
            let size = server::hooks::check_batch(size)?;
            if !store.set_endpoint_batch(id, size).await? {
                anyhow::bail!("no endpoint {id}");
            }
            if size == 1 {
                println!("endpoint {id} takes one event per POST");
            } else {
                println!("endpoint {id} takes up to {size} events per POST, as a JSON array");
            }
        }
        EndpointsAction::Remove { id } => {
            if !store.remove_endpoint(id).await? {
                anyhow::bail!("no endpoint {id}");
            }
            println!("endpoint {id} removed");
        }
        EndpointsAction::RotateSecret { id } => {
            let Some(secret) = server::hooks::rotate_secret(&store, id).await? else {
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

async fn events(
    action: EventsAction,
    store: &Store,
    retention: std::time::Duration,
) -> anyhow::Result<()> {
    let now = server::clock::now_ms();
    match action {
        EventsAction::List { failed, limit } => {
            let lines = store.event_lines(failed, limit.clamp(1, 10_000)).await?;
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
            let pruned = store.events_pruned().await?;
            if pruned.0 > 0 {
                println!("pruned: {}", pruned_words(pruned, retention));
            }
        }
        EventsAction::Replay { event_id, since } => {
            let queued = match (event_id, since) {
                (Some(id), _) => {
                    if !store.event_exists(&id).await? {
                        anyhow::bail!(
                            "no event {id}: never written, or pruned — {}",
                            pruned_words(store.events_pruned().await?, retention)
                        );
                    }
                    store.replay_events(Some(&id), None, now).await?
                }
                (None, Some(since)) => {
                    let since = server::clock::parse_time(&since, now).ok_or_else(|| {
                        anyhow::anyhow!("`{since}` is not a time like 2026-12-01T09:30Z or 6h")
                    })?;
                    store.replay_events(None, Some(since), now).await?
                }
                (None, None) => anyhow::bail!("name an event id, or --since TIME"),
            };
            println!("{queued} deliveries queued; the server sends them within a second");
        }
    }
    Ok(())
}

/// A moment as `2026-12-01 09:30:00 UTC`.
fn format_time(ms: i64) -> String {
    // `2026-12-01T09:30:00Z` as `2026-12-01 09:30:00 UTC`.
    server::clock::iso_time(ms)
        .replacen('T', " ", 1)
        .replacen('Z', " UTC", 1)
}

/// `ledger verify` found something wrong (already printed).
#[derive(Debug, thiserror::Error)]
#[error("the books have {0} discrepancies")]
struct Discrepancies(usize);

/// The books for a command-line run: its changes reach the running server's streams through
/// the database, and its messages are sent by the server's notifier.
async fn open_ledger(config: &Config) -> anyhow::Result<Ledger> {
    let store = open_store(config).await?;
    let effects = Effects::command_line(store.engine());
    Ok(Ledger::new(store, effects))
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database_url, 2).await?;
    store.migrate().await?;
    Ok(store)
}

fn bot_api(config: &Config) -> anyhow::Result<BotApi> {
    let api_url = config.api_url.clone().context(
        "TELEGRAM_BOT_TOKEN is not set: these commands talk to Telegram (the sandbox needs none of them)",
    )?;
    Ok(BotApi::with_timeout(
        &api_url,
        &config.bot_token,
        config.test_env,
        config.api_timeout,
    ))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.site_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.site_addr))?;
    let mode = config.mode;
    let mut running = server::start(config, listener).await?;
    let url = format!("http://{}/", server::config::loopback(running.addr));
    match mode {
        Mode::Sandbox => println!("NDN sandbox is running (NDN_SANDBOX=1): open {url}sandbox"),
        Mode::Production => println!("NDN is running on {url}"),
    }
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down: finishing in-flight requests");
            running.stop().await;
        }
        () = running.wait() => anyhow::bail!("the HTTP server stopped unexpectedly"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
