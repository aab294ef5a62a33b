use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use server::bot_api::BotApi;
use server::config::{Config, Mode};
use server::store::Store;

/// NDN Mini App server: the Mini App, its server functions and Telegram's webhook on one port.
#[derive(Parser)]
#[command(name = "server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Mini App and the webhook (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Register, inspect or remove the webhook at Telegram.
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
}

#[derive(Subcommand)]
enum WebhookAction {
    /// setWebhook with PUBLIC_URL/webhook/telegram, the secret and every update kind we handle.
    Set,
    /// Show getWebhookInfo.
    Info,
    /// deleteWebhook, keeping pending updates.
    Delete,
}

/// Every update kind the server handles; sent explicitly so a stale list can never hide
/// `pre_checkout_query`.
const ALLOWED_UPDATES: [&str; 2] = ["message", "pre_checkout_query"];

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
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let store = Store::connect(&config.database_url, 1).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Webhook { action } => webhook(action, &config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.site_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.site_addr))?;
    let mode = config.mode;
    let mut running = server::start(config, listener).await?;
    let url = format!("http://{}/", server::config::loopback(running.addr));
    match mode {
        Mode::Sandbox => println!("NDN sandbox is running (no bot token): open {url}"),
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

async fn webhook(action: WebhookAction, config: &Config) -> anyhow::Result<()> {
    let api_url = config
        .api_url
        .clone()
        .context("TELEGRAM_BOT_TOKEN is not set: the sandbox needs no webhook registration")?;
    let bot = BotApi::new(&api_url, &config.bot_token, config.test_env);
    match action {
        WebhookAction::Set => {
            let public_url = config
                .public_url
                .as_deref()
                .context("PUBLIC_URL is not set: Telegram needs the server's public HTTPS URL")?;
            let url = format!("{public_url}/webhook/telegram");
            bot.set_webhook(&json!({
                "url": url,
                "secret_token": config.webhook_secret,
                "max_connections": 40,
                "allowed_updates": ALLOWED_UPDATES,
            }))
            .await?;
            println!(
                "webhook set: {url} (allowed updates: {})",
                ALLOWED_UPDATES.join(", ")
            );
        }
        WebhookAction::Info => {
            let info = bot.get_webhook_info().await?;
            println!(
                "url: {}",
                if info.url.is_empty() {
                    "(none)"
                } else {
                    &info.url
                }
            );
            println!("pending updates: {}", info.pending_update_count);
            if let Some(message) = &info.last_error_message {
                println!("WARNING: last error: {message}");
            }
            let allowed = info.allowed_updates.unwrap_or_default();
            println!("allowed updates: {}", allowed.join(", "));
            if !allowed.iter().any(|kind| kind == "pre_checkout_query") {
                println!(
                    "WARNING: pre_checkout_query is not allowed: every payment will time out; run `server webhook set`"
                );
            }
        }
        WebhookAction::Delete => {
            bot.delete_webhook(false).await?;
            println!("webhook deleted (pending updates kept)");
        }
    }
    Ok(())
}
