//! The operator console's contract: what it shows and what it does, as server functions under
//! `/api/console_*`. Each checks on the server that the signed-in user is one of
//! `ADMIN_USER_IDS`; anyone else gets `403` and nothing more. Every action carries an id made by
//! the tap that asked for it: the same id again is answered with what the first one did.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::client::TmaClient;
use crate::ids::UserId;

/// What happened in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// Stars received for credited purchases (refunded ones included).
    pub stars: i64,
    pub ndn_sold: i64,
    pub purchases: i64,
    pub refunds: i64,
    pub refunded_stars: i64,
    pub spends: i64,
    pub ndn_spent: i64,
    pub grants: i64,
    pub ndn_granted: i64,
}

/// One day of the chart (days are UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Day {
    /// Unix seconds of the day's start.
    pub start: i64,
    pub stars: i64,
    pub purchases: i64,
}

/// The bot's own Stars, as `getMyStarBalance` said at `read_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StarBalance {
    pub amount: i64,
    /// Unix seconds.
    pub read_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    /// Since 00:00 UTC.
    pub today: Figures,
    pub week: Figures,
    pub month: Figures,
    /// The last 30 days, oldest first, today last.
    pub days: Vec<Day>,
    pub held_payments: i64,
    pub pending_notifications: i64,
    pub failed_notifications: i64,
    /// `None` when Telegram could not be asked.
    pub star_balance: Option<StarBalance>,
}

/// A payment recorded but not credited, waiting for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPayment {
    pub charge_id: String,
    pub user_id: UserId,
    pub first_name: String,
    pub username: Option<String>,
    pub stars: i64,
    pub reason: String,
    /// Unix seconds.
    pub created_at: i64,
    /// What **Credit** would give: the order's NDN, or the package of this price; `None`
    /// when neither is known (grant by hand instead).
    pub ndn: Option<i64>,
}

/// A payment of a buyer, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLine {
    pub charge_id: String,
    pub stars: i64,
    pub ndn: i64,
    /// `credited`, `held` or `refunded`.
    pub status: String,
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// One transfer on a buyer's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLine {
    /// `purchase`, `refund`, `grant` or `spend`.
    pub kind: String,
    /// What it did to the balance.
    pub ndn: i64,
    pub stars: i64,
    pub reference: String,
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A buyer found by id, username or charge id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerCard {
    pub user_id: UserId,
    pub first_name: String,
    pub username: Option<String>,
    pub balance: i64,
    pub held: i64,
    pub payments: Vec<PaymentLine>,
    pub history: Vec<TransferLine>,
}

/// A bot message that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedMessage {
    pub id: i64,
    pub chat_id: i64,
    /// The start of the text.
    pub text: String,
    pub attempts: i64,
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLine {
    pub id: i64,
    pub name: String,
    pub scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One operator action of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLine {
    pub id: String,
    pub operator_id: i64,
    pub action: String,
    pub target: String,
    pub result: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub failed: Vec<FailedMessage>,
    pub keys: Vec<KeyLine>,
    /// The latest operator actions, newest first.
    pub actions: Vec<ActionLine>,
}

/// What an action did. `repeated`: the action id was used before, and this is what that tap
/// did (nothing changed now).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDone {
    pub result: String,
    pub repeated: bool,
}

/// Sales, refunds, spends and grants of today, 7 and 30 days, the daily chart, what waits.
#[server(endpoint = "console_overview", client = TmaClient)]
pub async fn console_overview() -> Result<Overview, ApiError> {
    let (console, _) = crate::backend::operator()?;
    crate::backend::answer(console.overview().await)
}

/// Payments recorded but not credited, newest first.
#[server(endpoint = "console_held", client = TmaClient)]
pub async fn console_held() -> Result<Vec<HeldPayment>, ApiError> {
    let (console, _) = crate::backend::operator()?;
    crate::backend::answer(console.held().await)
}

/// Credits a held payment with its package's NDN, once.
#[server(endpoint = "console_credit", client = TmaClient)]
pub async fn console_credit(action_id: String, charge_id: String) -> Result<ActionDone, ApiError> {
    let (console, operator) = crate::backend::operator()?;
    crate::backend::answer(console.credit(operator.id, &action_id, &charge_id).await)
}

/// Refunds a payment's Stars (`refundStarPayment`), then takes its NDN back, as `server refund`.
#[server(endpoint = "console_refund", client = TmaClient)]
pub async fn console_refund(action_id: String, charge_id: String) -> Result<ActionDone, ApiError> {
    let (console, operator) = crate::backend::operator()?;
    crate::backend::answer(console.refund(operator.id, &action_id, &charge_id).await)
}

/// A buyer by Telegram user id, @username or charge id.
#[server(endpoint = "console_find", client = TmaClient)]
pub async fn console_find(query: String) -> Result<BuyerCard, ApiError> {
    let (console, _) = crate::backend::operator()?;
    crate::backend::answer(console.find(&query).await)
}

/// Gives a buyer NDN, with the operator's reason.
#[server(endpoint = "console_grant", client = TmaClient)]
pub async fn console_grant(
    action_id: String,
    user_id: UserId,
    amount: i64,
    reason: String,
) -> Result<ActionDone, ApiError> {
    let (console, operator) = crate::backend::operator()?;
    crate::backend::answer(
        console
            .grant(operator.id, &action_id, user_id, amount, &reason)
            .await,
    )
}

/// Failed notifications, the API keys, the audit log.
#[server(endpoint = "console_health", client = TmaClient)]
pub async fn console_health() -> Result<Health, ApiError> {
    let (console, _) = crate::backend::operator()?;
    crate::backend::answer(console.health().await)
}

/// Reconciles with Telegram's Star transactions now; says what it changed.
#[server(endpoint = "console_reconcile", client = TmaClient)]
pub async fn console_reconcile(action_id: String) -> Result<ActionDone, ApiError> {
    let (console, operator) = crate::backend::operator()?;
    crate::backend::answer(console.reconcile(operator.id, &action_id).await)
}

/// Sends a failed notification again.
#[server(endpoint = "console_retry", client = TmaClient)]
pub async fn console_retry(action_id: String, message_id: i64) -> Result<ActionDone, ApiError> {
    let (console, operator) = crate::backend::operator()?;
    crate::backend::answer(console.retry(operator.id, &action_id, message_id).await)
}

/// Revokes an API key.
#[server(endpoint = "console_revoke", client = TmaClient)]
pub async fn console_revoke(action_id: String, key_id: i64) -> Result<ActionDone, ApiError> {
    let (console, operator) = crate::backend::operator()?;
    crate::backend::answer(console.revoke(operator.id, &action_id, key_id).await)
}

/// A link that downloads every transfer of `[from, to]` (dates `YYYY-MM-DD`, UTC) as `csv` or
/// `json`; it works for a few minutes, without a header (for `Telegram.WebApp.downloadFile`).
#[server(endpoint = "console_export", client = TmaClient)]
pub async fn console_export(from: String, to: String, format: String) -> Result<String, ApiError> {
    let (console, operator) = crate::backend::operator()?;
    crate::backend::answer(console.export_link(operator.id, &from, &to, &format).await)
}
