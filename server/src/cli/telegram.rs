//! `server webhook`, `server refund`, `server reconcile`: what an operator asks of Telegram.

use clap::Subcommand;

use super::{bot_api, open_ledger};
use crate::bot::operator;
use crate::config::Config;
use crate::wallet::ids::ChargeId;

#[derive(Subcommand)]
pub enum WebhookAction {
    /// setWebhook with PUBLIC_URL/webhook/telegram, the secret and every update kind we handle;
    /// also registers the bot's commands (English, Russian) and the menu button.
    #[command(after_help = concat!(
        reads_telegram!(),
        "Example:\n  server webhook set      after PUBLIC_URL answers over HTTPS"
    ))]
    Set,
    /// Show getWebhookInfo, with warnings for what would break payments.
    #[command(after_help = concat!(reads_telegram!(), "Example:\n  server webhook info"))]
    Info,
    /// deleteWebhook, keeping pending updates.
    #[command(after_help = concat!(
        reads_telegram!(),
        "Examples:\n  server webhook delete                  before `server serve --poll`\n  \
         server webhook delete --drop-pending-updates --drop-pending-updates"
    ))]
    Delete {
        /// Also throw away pending updates (they may be payments!): give it twice to mean it.
        #[arg(long, action = clap::ArgAction::Count)]
        drop_pending_updates: u8,
    },
}

pub async fn webhook(action: WebhookAction, config: &Config) -> anyhow::Result<()> {
    let bot = bot_api(config)?;
    let report = match action {
        WebhookAction::Set => operator::set_webhook(&bot, config).await?,
        WebhookAction::Info => operator::webhook_info(&bot).await?,
        WebhookAction::Delete {
            drop_pending_updates: 1,
        } => anyhow::bail!(
            "pending updates may be payments: repeat --drop-pending-updates to really drop them"
        ),
        WebhookAction::Delete {
            drop_pending_updates,
        } => operator::delete_webhook(&bot, drop_pending_updates >= 2).await?,
    };
    println!("{report}");
    Ok(())
}

pub async fn refund(charge_id: &str, config: &Config) -> anyhow::Result<()> {
    let (bot, ledger) = (bot_api(config)?, open_ledger(config).await?);
    let charge_id = ChargeId::from(charge_id);
    println!("{}", operator::refund(&bot, &ledger, &charge_id).await?);
    Ok(())
}

pub async fn reconcile(config: &Config) -> anyhow::Result<()> {
    let (bot, ledger) = (bot_api(config)?, open_ledger(config).await?);
    print!("{}", operator::reconcile(&bot, &ledger).await?);
    Ok(())
}
