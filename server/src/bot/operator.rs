//! What an operator does from the command line: register the webhook, refund a payment,
//! reconcile the ledger with Telegram's list of Star transactions.

use app::i18n::Lang;
use serde_json::{Value, json};

use crate::config::Config;
use crate::ledger::Ledger;
use crate::store::{ActionResult, NewAction, StoreError};
use crate::telegram::bot_api::{BotApi, BotApiError, StarTransaction};
use crate::telegram::bot_text::commands as text;
use crate::wallet::amounts::Stars;
use crate::wallet::ids::{ChargeId, UserId};
use crate::wallet::model::{Buyer, IncomingPayment, PaymentOutcome, RefundOutcome};

/// Every update kind the server handles. Sent explicitly with `setWebhook` and `getUpdates`:
/// left out, Telegram keeps whatever list it stored last, and a list without
/// `pre_checkout_query` makes every payment time out.
pub const ALLOWED_UPDATES: [&str; 2] = ["message", "pre_checkout_query"];

const COMMANDS: [&str; 6] = ["start", "balance", "paysupport", "privacy", "terms", "help"];

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    Telegram(#[from] BotApiError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
}

/// The command list in one language, for `setMyCommands`.
fn command_list(lang: Lang) -> Value {
    let describe = |command: &str| match (lang, command) {
        (Lang::En, "start") => "Open the shop",
        (Lang::Ru, "start") => "Открыть магазин",
        (Lang::En, "balance") => "Your NDN balance",
        (Lang::Ru, "balance") => "Ваш баланс NDN",
        (Lang::En, "paysupport") => "Help with a payment",
        (Lang::Ru, "paysupport") => "Помощь с оплатой",
        (Lang::En, "privacy") => "Privacy policy",
        (Lang::Ru, "privacy") => "Политика конфиденциальности",
        (Lang::En, "terms") => "Terms of sale",
        (Lang::Ru, "terms") => "Условия продажи",
        (_, _) => match lang {
            Lang::En => "What the bot can do",
            Lang::Ru => "Что умеет бот",
        },
    };
    let commands: Vec<Value> = COMMANDS
        .iter()
        .map(|command| json!({ "command": command, "description": describe(command) }))
        .collect();
    json!(commands)
}

/// `webhook set`: the webhook with its secret and every update kind, the command list in both
/// languages, and the menu button that opens the Mini App.
pub async fn set_webhook(bot: &BotApi, config: &Config) -> Result<String, OpsError> {
    let public_url = config.http.public_url.as_deref().ok_or_else(|| {
        OpsError::Refused(
            "PUBLIC_URL is not set: Telegram needs the server's public HTTPS URL".into(),
        )
    })?;
    let url = format!("{public_url}/webhook/telegram");
    let mini_app = format!("{public_url}/");
    bot.set_webhook(&json!({
        "url": url,
        "secret_token": config.telegram.webhook_secret,
        "max_connections": 40,
        "allowed_updates": ALLOWED_UPDATES,
    }))
    .await?;
    bot.set_my_commands(&json!({ "commands": command_list(Lang::En) }))
        .await?;
    bot.set_my_commands(&json!({ "commands": command_list(Lang::Ru), "language_code": "ru" }))
        .await?;
    bot.set_chat_menu_button(&json!({ "menu_button": {
        "type": "web_app",
        "text": text::open_button(Lang::En),
        "web_app": { "url": mini_app },
    } }))
    .await?;
    Ok(format!(
        "webhook set: {url}\nallowed updates: {}\ncommands registered (en, ru); menu button opens {mini_app}",
        ALLOWED_UPDATES.join(", "),
    ))
}

/// `webhook info`: Telegram's view of the webhook, with warnings for what breaks payments.
pub async fn webhook_info(bot: &BotApi) -> Result<String, OpsError> {
    let info = bot.get_webhook_info().await?;
    let mut lines = vec![
        format!(
            "url: {}",
            if info.url.is_empty() {
                "(none)"
            } else {
                &info.url
            }
        ),
        format!("pending updates: {}", info.pending_update_count),
    ];
    let allowed = info.allowed_updates.clone().unwrap_or_default();
    lines.push(format!(
        "allowed updates: {}",
        if allowed.is_empty() {
            "(Telegram's default)".to_owned()
        } else {
            allowed.join(", ")
        }
    ));
    if let Some(connections) = info.max_connections {
        lines.push(format!("max connections: {connections}"));
    }
    if info.url.is_empty() {
        lines.push("WARNING: no webhook is set: run `server webhook set`".into());
    }
    if let Some(message) = &info.last_error_message {
        lines.push(format!("WARNING: last delivery error: {message}"));
    }
    if info.pending_update_count > 100 {
        lines.push(format!(
            "WARNING: {} updates are waiting: is the server reachable?",
            info.pending_update_count
        ));
    }
    for kind in ALLOWED_UPDATES {
        if !allowed.iter().any(|allowed| allowed == kind) {
            lines.push(format!(
                "WARNING: `{kind}` is not in allowed_updates{}: run `server webhook set`",
                if kind == "pre_checkout_query" {
                    " — every payment will time out"
                } else {
                    ""
                }
            ));
        }
    }
    Ok(lines.join("\n"))
}

/// `webhook delete`: pending updates are payments too; they are dropped only when asked twice.
pub async fn delete_webhook(bot: &BotApi, drop_pending: bool) -> Result<String, OpsError> {
    bot.delete_webhook(drop_pending).await?;
    Ok(if drop_pending {
        "webhook deleted; pending updates DROPPED".into()
    } else {
        "webhook deleted; pending updates kept (Telegram holds them for 24 h)".into()
    })
}

/// `refund <charge-id>`: `refundStarPayment`, then the same debit as an incoming
/// `refunded_payment`. Safe to repeat.
pub async fn refund(
    bot: &BotApi,
    ledger: &Ledger,
    charge_id: &ChargeId,
) -> Result<String, OpsError> {
    Ok(refund_as(bot, ledger, charge_id, None).await?.0)
}

/// [`refund`], for an operator's action from the console (its audit row is written with the
/// debit): what was done, in words, and the action's answer.
pub async fn refund_as(
    bot: &BotApi,
    ledger: &Ledger,
    charge_id: &ChargeId,
    action: Option<&NewAction>,
) -> Result<(String, Option<ActionResult>), OpsError> {
    let payment = ledger
        .store()
        .payment(&ChargeId::from(charge_id.as_str()))
        .await?
        .ok_or_else(|| OpsError::Refused(format!("no payment with charge id {charge_id}")))?;
    let telegram = match bot
        .refund_star_payment(payment.user_id, charge_id.as_str())
        .await
    {
        Ok(_) => "Stars refunded by Telegram",
        Err(BotApiError::Api { description, .. })
            if description.contains("CHARGE_ALREADY_REFUNDED") =>
        {
            "Telegram had already refunded it"
        }
        Err(error) => return Err(error.into()),
    };
    let (outcome, acted) = ledger
        .refund_for(
            payment.user_id,
            charge_id,
            payment.stars,
            action.map(|action| (action, telegram)),
        )
        .await?;
    Ok((outcome.summary(charge_id, telegram), acted))
}

/// What `reconcile` changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub transactions: usize,
    pub credited: Vec<String>,
    pub held: Vec<String>,
    pub refunded: Vec<String>,
}

impl std::fmt::Display for Reconciliation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "read {} Star transactions", self.transactions)?;
        for (label, ids) in [
            ("credited", &self.credited),
            ("held for review", &self.held),
            ("refund applied", &self.refunded),
        ] {
            writeln!(f, "{label}: {}", ids.len())?;
            for id in ids {
                writeln!(f, "  {id}")?;
            }
        }
        Ok(())
    }
}

/// Pages through `getStarTransactions` and applies every invoice payment and refund the ledger
/// is missing, through the same transactions as the webhook. Payments go first, so a refund
/// listed before its payment (Telegram lists newest first) still finds it. Safe to repeat.
pub async fn reconcile(bot: &BotApi, ledger: &Ledger) -> Result<Reconciliation, OpsError> {
    const PAGE: u32 = 100;
    let mut all = Vec::new();
    loop {
        let offset = u32::try_from(all.len()).unwrap_or(u32::MAX);
        let page = bot.get_star_transactions(offset, PAGE).await?.transactions;
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    let mut report = Reconciliation {
        transactions: all.len(),
        ..Reconciliation::default()
    };
    for transaction in all.iter().filter(|t| t.source.is_some()) {
        apply_transaction(ledger, transaction, &mut report).await?;
    }
    for transaction in all.iter().filter(|t| t.source.is_none()) {
        apply_transaction(ledger, transaction, &mut report).await?;
    }
    Ok(report)
}

async fn apply_transaction(
    ledger: &Ledger,
    transaction: &StarTransaction,
    report: &mut Reconciliation,
) -> Result<(), OpsError> {
    let party = |side: &Option<Value>| {
        side.as_ref()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("user"))
            .cloned()
    };
    if let Some(source) = party(&transaction.source) {
        if source.get("transaction_type").and_then(Value::as_str) != Some("invoice_payment") {
            return Ok(());
        }
        let user = &source["user"];
        let Some(user_id) = user.get("id").and_then(Value::as_i64) else {
            return Ok(());
        };
        let text =
            |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let payer = Buyer {
            id: UserId(user_id),
            first_name: text(user, "first_name").unwrap_or_default(),
            username: text(user, "username"),
            language_code: text(user, "language_code"),
        };
        let payload = text(&source, "invoice_payload").unwrap_or_default();
        let payment = IncomingPayment::in_stars(&transaction.id, &payload, transaction.amount);
        match ledger.pay(payer, payment).await? {
            PaymentOutcome::Credited { .. } => report.credited.push(transaction.id.clone()),
            PaymentOutcome::Held { .. } => report.held.push(transaction.id.clone()),
            PaymentOutcome::Duplicate => {}
        }
    } else if let Some(receiver) = party(&transaction.receiver) {
        let Some(user_id) = receiver["user"].get("id").and_then(Value::as_i64) else {
            return Ok(());
        };
        // Only refunds of charges we recorded: other outgoing transactions are not ours to book.
        if ledger
            .store()
            .payment(&ChargeId::from(transaction.id.as_str()))
            .await?
            .is_none()
        {
            return Ok(());
        }
        if let RefundOutcome::Debited { .. } = ledger
            .refund(
                UserId(user_id),
                &ChargeId::from(transaction.id.as_str()),
                Stars(transaction.amount),
            )
            .await?
        {
            report.refunded.push(transaction.id.clone());
        }
    }
    Ok(())
}

/// The advisory lock key of periodic reconciliation.
const RECONCILE_LOCK: i64 = 0x4e44_4e52;

/// Finds payments whose webhook never arrived (and refunds), every `interval`.
pub(crate) async fn reconcile_every(
    interval: std::time::Duration,
    state: crate::state::AppState,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        // One instance at a time: the others skip this round.
        let outcome = state
            .store
            .exclusively(RECONCILE_LOCK, reconcile(&state.bot, &state.ledger))
            .await;
        let outcome = match outcome {
            Ok(Some(result)) => result,
            Ok(None) => continue,
            Err(error) => Err(error.into()),
        };
        match outcome {
            Ok(report)
                if report.credited.is_empty()
                    && report.held.is_empty()
                    && report.refunded.is_empty() =>
            {
                tracing::debug!(
                    transactions = report.transactions,
                    "reconciled: nothing missing"
                );
            }
            Ok(report) => {
                tracing::warn!(credited = ?report.credited, held = ?report.held, refunded = ?report.refunded, "reconciled missing payments");
            }
            Err(error) => tracing::warn!(%error, "reconciliation failed"),
        }
    }
}
