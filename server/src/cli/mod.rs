//! The command line: `server` serves by default; the other commands are an operator's tools,
//! one file per group — Telegram (`telegram.rs`: the webhook, refunds, reconciliation), the
//! service API's keys (`keys.rs`), the events' endpoints (`endpoints.rs`) and the events
//! themselves (`events.rs`), the books (`books.rs`: verify, export), serving (`serve.rs`).

mod books;
mod endpoints;
mod events;
mod keys;
mod serve;
mod telegram;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::http::effects::Effects;
use crate::ledger::Ledger;
use crate::store::Store;
use crate::telegram::bot_api::BotApi;

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
        action: telegram::WebhookAction,
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
        action: keys::KeysAction,
    },
    /// Check the books.
    Ledger {
        #[command(subcommand)]
        action: books::LedgerAction,
    },
    /// Where signed events go: the operator's backend (webhooks out).
    Endpoints {
        #[command(subcommand)]
        action: endpoints::EndpointsAction,
    },
    /// The events written for the endpoints, and their deliveries.
    Events {
        #[command(subcommand)]
        action: events::EventsAction,
    },
    /// Every transfer of a period (UTC days, both included), for the accountant: time, kind,
    /// buyer, NDN, Stars, charge id, references and reason, then a totals line per kind.
    Export {
        /// The first day, e.g. 2026-12-01 (UTC; years 1970-9999).
        #[arg(long, value_parser = crate::clock::typed_day)]
        from: i64,
        /// The last day, e.g. 2026-12-31.
        #[arg(long, value_parser = crate::clock::typed_day)]
        to: i64,
        /// csv (UTF-8, opens in spreadsheets) or json.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

/// Runs the command line's choice; the exit code says how it went (2: the configuration).
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into());
    match config.logs {
        // Colour only for a person at a terminal: journald and files get plain text.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_ansi(false)
            .init(),
    }
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
            config.telegram.poll_updates = poll;
            serve::serve(config).await
        }
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Webhook { action } => telegram::webhook(action, &config).await,
        Command::Refund { charge_id } => telegram::refund(&charge_id, &config).await,
        Command::Reconcile => telegram::reconcile(&config).await,
        Command::Keys { action } => keys::run(action, &open_store(&config).await?).await,
        Command::Endpoints { action } => endpoints::run(action, &config).await,
        Command::Events { action } => {
            let retention = config.events.retention;
            events::run(action, &open_store(&config).await?, retention).await
        }
        Command::Export {
            from,
            to,
            format,
            output,
        } => books::export(from, to, &format, output, &config).await,
        Command::Ledger {
            action: books::LedgerAction::Verify,
        } => books::verify(&config).await,
    }
}

/// A moment as `2026-12-01 09:30:00 UTC`.
pub(super) fn format_time(ms: i64) -> String {
    // `2026-12-01T09:30:00Z` as `2026-12-01 09:30:00 UTC`.
    crate::clock::iso_time(ms)
        .replacen('T', " ", 1)
        .replacen('Z', " UTC", 1)
}

/// The books for a command-line run: its changes reach the running server's streams through
/// the database, and its messages are sent by the server's notifier.
pub(super) async fn open_ledger(config: &Config) -> anyhow::Result<Ledger> {
    let store = open_store(config).await?;
    let effects = Effects::command_line(store.engine());
    Ok(Ledger::new(store, effects))
}

pub(super) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database.url, 2).await?;
    store.migrate().await?;
    Ok(store)
}

pub(super) fn bot_api(config: &Config) -> anyhow::Result<BotApi> {
    let api_url = config.telegram.api_url.clone().context(
        "TELEGRAM_BOT_TOKEN is not set: these commands talk to Telegram (the sandbox needs none of them)",
    )?;
    Ok(BotApi::with_timeout(
        &api_url,
        &config.telegram.bot_token,
        config.telegram.test_env,
        config.telegram.api_timeout,
    ))
}
