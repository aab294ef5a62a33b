//! The command line: `server` serves by default; the other commands are an operator's tools,
//! one file per group — Telegram (`telegram.rs`: the webhook, refunds, reconciliation), the
//! service API's keys (`keys.rs`), the events' endpoints (`endpoints.rs`) and the events
//! themselves (`events.rs`), the books (`books.rs`: verify, export), the database itself
//! (`database.rs`: migrate, backup, restore), serving (`serve.rs`: serve, health).

/// The first line of the help of each command that needs only the database.
macro_rules! reads_database {
    () => {
        "Reads DATABASE_URL (default sqlite://data/ndn.db) and LOG_FORMAT; no bot token \
         needed.\n\n"
    };
}

/// The first line of the help of each command that talks to Telegram.
macro_rules! reads_telegram {
    () => {
        "Reads TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET and PUBLIC_URL (TELEGRAM_API_URL, \
         TELEGRAM_TEST_ENV).\n\n"
    };
}

mod books;
mod database;
mod endpoints;
mod events;
mod keys;
mod serve;
mod telegram;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, DatabaseConfig, DatabaseOnly, LogFormat};
use crate::http::effects::Effects;
use crate::ledger::Ledger;
use crate::store::{SchemaError, Store};
use crate::telegram::bot_api::BotApi;

/// The exit codes, the same for every command (and in `server --help`).
pub mod exit {
    /// The command did what it was asked.
    pub const OK: u8 = 0;
    /// It failed (the database or Telegram could not be reached, a key was not found, …).
    pub const FAILURE: u8 = 1;
    /// Refused before doing anything: the command line is wrong (clap's own code), or the
    /// database's schema is not the one this binary knows.
    pub const REFUSED: u8 = 2;
    /// The configuration (environment or `.env`) is invalid; one line names the variable.
    pub const CONFIGURATION: u8 = 3;
    /// `ledger verify` found discrepancies (each one printed).
    pub const DISCREPANCIES: u8 = 4;
}

const TOP_HELP: &str = "\
Configuration comes from the environment, then `.env` in the working folder (which never
overrides a variable already set). Every variable: docs/configuration.md.

Examples:
  NDN_SANDBOX=1 server                 the sandbox: a fake Telegram on this machine
  server migrate && server serve       a real bot (TELEGRAM_BOT_TOKEN, PUBLIC_URL, ...)
  server backup /backups/ndn-$(date +%F).db
  server ledger verify

Exit codes: 0 ok, 1 failure, 2 refused (bad command line, or a database schema this binary
does not know), 3 invalid configuration, 4 discrepancies found by `ledger verify`.";

/// NDN Mini App server: the Mini App, its server functions and Telegram's webhook on one port,
/// and the operator's tools.
#[derive(Parser)]
#[command(name = "server", version = VERSION, after_help = TOP_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// `0.1.0 (commit 0123456789ab)`: the release and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NDN_COMMIT"),
    ")"
);

#[derive(Subcommand)]
enum Command {
    /// Serve the Mini App and the webhook (the default); applies migrations first.
    #[command(after_help = "\
Reads every variable of docs/configuration.md; the ones a real bot needs: TELEGRAM_BOT_TOKEN,
TELEGRAM_WEBHOOK_SECRET, PUBLIC_URL, DATABASE_URL, LEPTOS_SITE_ADDR, ADMIN_USER_IDS.

Examples:
  NDN_SANDBOX=1 server serve           the sandbox, at http://127.0.0.1:3000/sandbox
  server serve                         a real bot, after `server webhook set`
  server serve --no-migrate            a second instance while the first one migrates")]
    Serve {
        /// Fetch updates with getUpdates long polling instead of receiving the webhook
        /// (a real bot without a public URL; the webhook must be deleted first).
        #[arg(long)]
        poll: bool,
        /// Do not apply migrations: refuse to start unless the schema is already this
        /// binary's.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply this binary's database migrations and exit (refuses a newer schema).
    #[command(after_help = "\
Reads DATABASE_URL (default sqlite://data/ndn.db); no bot token needed. Take a backup first:
a migration is not undone by an older binary.

Example:
  server backup before-upgrade.db && server migrate")]
    Migrate,
    /// Write a consistent copy of the database to FILE while the server runs.
    #[command(after_help = "\
SQLite: VACUUM INTO, a snapshot as of one moment, taken while payments keep arriving; the copy
is a database file (check it: DATABASE_URL=sqlite://FILE server ledger verify).
PostgreSQL: pg_dump --format=custom (pg_dump must be on PATH); restore with `server restore`.
Reads DATABASE_URL; no bot token needed.

Examples:
  server backup /backups/ndn-$(date +%F-%H%M).db
  DATABASE_URL=postgres://ndn@db/ndn server backup /backups/ndn.dump")]
    Backup {
        /// Where to write the copy; it must not exist yet.
        file: std::path::PathBuf,
    },
    /// Put a backup (from `server backup`) in place of the database: stop the server first.
    #[command(after_help = "\
SQLite: copies FILE to DATABASE_URL's file; refuses to overwrite an existing database unless
--replace (then the old one is kept beside it as FILE.replaced-<time>).
PostgreSQL: pg_restore into DATABASE_URL's database, which must be empty.
Refuses a backup whose schema is newer than this binary's. Reads DATABASE_URL.

Examples:
  server restore /backups/ndn-2026-12-01.db
  server restore --replace /backups/before-upgrade.db     a rollback, see docs/operate.md")]
    Restore {
        /// The backup to restore.
        file: std::path::PathBuf,
        /// Replace an existing SQLite database (kept beside it under a new name).
        #[arg(long)]
        replace: bool,
    },
    /// Ask the running server whether it is healthy: exit 0 if /healthz answers 200, else 1.
    #[command(after_help = "\
Reads LEPTOS_SITE_ADDR (default 127.0.0.1:3000) unless --url is given. Made for a container's
HEALTHCHECK: it needs no shell, no curl and no database.

Examples:
  server health
  server health --url http://127.0.0.1:3000")]
    Health {
        /// The server's base URL (default: http:// and LEPTOS_SITE_ADDR, 0.0.0.0 as 127.0.0.1).
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the service API's OpenAPI 3.1 document (what `/v1/openapi.json` serves), to
    /// generate a client or lint it.
    #[command(after_help = "\
Reads PUBLIC_URL, else LEPTOS_SITE_ADDR, for the document's server (unless --server); no
database, no bot token.

Examples:
  server openapi > openapi.json
  server openapi --server https://ndn.example.org | npx openapi-typescript -o ndn.d.ts")]
    Openapi {
        /// The server URL the document names (default: PUBLIC_URL, else http:// and
        /// LEPTOS_SITE_ADDR).
        #[arg(long)]
        server: Option<String>,
    },
    /// Register, inspect or remove the webhook at Telegram.
    #[command(after_help = concat!(reads_telegram!(), "Example:\n  server webhook set"))]
    Webhook {
        #[command(subcommand)]
        action: telegram::WebhookAction,
    },
    /// Refund a payment: refundStarPayment, then debit its NDN once (safe to repeat).
    #[command(after_help = "\
Reads TELEGRAM_BOT_TOKEN and DATABASE_URL.

Example:
  server refund stxAbC123...      the payment's telegram_payment_charge_id")]
    Refund {
        /// The payment's telegram_payment_charge_id.
        charge_id: String,
    },
    /// Credit payments (and apply refunds) that Telegram lists but the ledger lacks.
    #[command(after_help = "\
Reads TELEGRAM_BOT_TOKEN and DATABASE_URL. Safe to repeat: a payment is credited once.

Example:
  server reconcile")]
    Reconcile,
    /// Keys of the service API (`/v1/…`) for the operator's other services.
    #[command(after_help = concat!(reads_database!(), "Example:\n  server keys list"))]
    Keys {
        #[command(subcommand)]
        action: keys::KeysAction,
    },
    /// Check the books.
    #[command(after_help = concat!(reads_database!(), "Example:\n  server ledger verify"))]
    Ledger {
        #[command(subcommand)]
        action: books::LedgerAction,
    },
    /// Where signed events go: the operator's backend (webhooks out).
    #[command(after_help = concat!(reads_database!(), "Example:\n  server endpoints list"))]
    Endpoints {
        #[command(subcommand)]
        action: endpoints::EndpointsAction,
    },
    /// The events written for the endpoints, and their deliveries.
    #[command(after_help = concat!(reads_database!(), "Example:\n  server events list --failed"))]
    Events {
        #[command(subcommand)]
        action: events::EventsAction,
    },
    /// Every transfer of a period (UTC days, both included), for the accountant: time, kind,
    /// buyer, NDN, Stars, charge id, references and reason, then a totals line per kind.
    #[command(after_help = "\
Reads DATABASE_URL; no bot token needed.

Examples:
  server export --from 2026-12-01 --to 2026-12-31 --output december.csv
  server export --from 2026-12-01 --to 2026-12-01 --format json")]
    Export {
        /// The first day, e.g. 2026-12-01 (UTC; years 1970-9999).
        #[arg(long, value_parser = crate::clock::typed_day)]
        from: i64,
        /// The last day, e.g. 2026-12-31.
        #[arg(long, value_parser = crate::clock::typed_day)]
        to: i64,
        /// csv (UTF-8, opens in spreadsheets) or json.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
}

impl Command {
    /// The commands that need the database only: they read no bot token and no URL.
    fn needs_only_the_database(&self) -> bool {
        !matches!(
            self,
            Self::Serve { .. }
                | Self::Webhook { .. }
                | Self::Refund { .. }
                | Self::Reconcile
                | Self::Health { .. }
                | Self::Openapi { .. }
        )
    }
}

fn init_logs(logs: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into());
    match logs {
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
}

/// Runs the command line's choice; the exit code says how it went ([`exit`]).
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        poll: false,
        no_migrate: false,
    });
    let outcome = if let Command::Health { url } = command {
        serve::health(url).await
    } else if let Command::Openapi { server } = command {
        print_openapi(server)
    } else if command.needs_only_the_database() {
        match DatabaseOnly::from_env() {
            Ok(config) => {
                init_logs(config.logs);
                run_on_database(command, &config).await
            }
            Err(error) => return configuration_error(&error),
        }
    } else {
        match Config::from_env() {
            Ok(config) => {
                init_logs(config.logs);
                run(command, config).await
            }
            Err(error) => return configuration_error(&error),
        }
    };
    match outcome {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit_code(&error))
        }
    }
}

/// `server openapi`: the document, its server named as asked.
fn print_openapi(server: Option<String>) -> anyhow::Result<()> {
    let server = match server {
        Some(url) => url,
        None => crate::config::public_url_from_env()?,
    };
    let (_, document) = crate::api::documented();
    let document = crate::api::with_server(document, Some(&server));
    println!("{}", document.to_pretty_json()?);
    Ok(())
}

fn configuration_error(error: &crate::config::ConfigError) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(exit::CONFIGURATION)
}

/// The exit code for a failure: what kind of failure is in its chain of causes.
fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(schema) = cause.downcast_ref::<SchemaError>()
            && !matches!(schema, SchemaError::Store(_))
        {
            return exit::REFUSED;
        }
        if cause.downcast_ref::<crate::config::ConfigError>().is_some() {
            return exit::CONFIGURATION;
        }
        if cause.downcast_ref::<books::Discrepancies>().is_some() {
            return exit::DISCREPANCIES;
        }
    }
    exit::FAILURE
}

/// The commands that talk to Telegram or serve.
async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { poll, no_migrate } => {
            config.telegram.poll_updates = poll;
            config.database.migrate_on_start = !no_migrate;
            serve::serve(config).await
        }
        Command::Webhook { action } => telegram::webhook(action, &config).await,
        Command::Refund { charge_id } => telegram::refund(&charge_id, &config).await,
        Command::Reconcile => telegram::reconcile(&config).await,
        other => run_on_database(other, &DatabaseOnly::from(&config)).await,
    }
}

/// The commands that need the database only.
async fn run_on_database(command: Command, config: &DatabaseOnly) -> anyhow::Result<()> {
    let database = &config.database;
    match command {
        Command::Migrate => database::migrate(database).await,
        Command::Backup { file } => database::backup(database, &file).await,
        Command::Restore { file, replace } => database::restore(database, &file, replace).await,
        Command::Keys { action } => keys::run(action, &open_store(database).await?).await,
        Command::Endpoints { action } => {
            endpoints::run(
                action,
                &open_store(database).await?,
                config.events.allow_private,
            )
            .await
        }
        Command::Events { action } => {
            events::run(
                action,
                &open_store(database).await?,
                config.events.retention,
            )
            .await
        }
        Command::Export {
            from,
            to,
            format,
            output,
        } => {
            let format = match format {
                ExportFormat::Csv => crate::console::export::Format::Csv,
                ExportFormat::Json => crate::console::export::Format::Json,
            };
            books::export(from, to, format, output, &open_store(database).await?).await
        }
        Command::Ledger {
            action: books::LedgerAction::Verify,
        } => books::verify(&open_store(database).await?).await,
        Command::Serve { .. }
        | Command::Health { .. }
        | Command::Openapi { .. }
        | Command::Webhook { .. }
        | Command::Refund { .. }
        | Command::Reconcile => {
            unreachable!("needs_only_the_database() sends these to run()")
        }
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
    let store = open_store(&config.database).await?;
    let effects = Effects::command_line(store.engine());
    Ok(Ledger::new(store, effects))
}

/// The database for a command: never migrated here, and only if its schema is this binary's.
pub(super) async fn open_store(database: &DatabaseConfig) -> anyhow::Result<Store> {
    let store = Store::connect(&database.url, 2).await?;
    store.require_current_schema().await?;
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
