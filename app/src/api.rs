//! The public server-function contract: `POST /api/wallet`, `POST /api/create_invoice`,
//! `POST /api/order_status`. Arguments are URL-encoded, answers are JSON, and every call carries
//! `Authorization: tma <initData>`.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

use crate::client::TmaClient;

/// A package the shop sells: `ndn` NDN for `stars` Telegram Stars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub id: String,
    pub ndn: i64,
    pub stars: i64,
    pub title: String,
}

/// The buyer as the server knows them from validated initData.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: crate::ids::UserId,
    pub first_name: String,
    /// `ru` or `en`.
    pub language: String,
}

/// Where an order stands. Only the webhook moves an order to `paid` or `refunded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    Pending,
    Paid,
    Refunded,
    Expired,
    Failed,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Refunded => "refunded",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "paid" => Self::Paid,
            "refunded" => Self::Refunded,
            "expired" => Self::Expired,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// What a line of the history is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// NDN bought with Stars.
    Purchase,
    /// NDN spent in the operator's product.
    Spend,
    /// NDN given by the operator.
    Credit,
}

/// One line of the history: a purchase (with its status: paid or refunded), a spend or a
/// credit, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub kind: EntryKind,
    /// The purchase's order, when it was made through the Mini App.
    pub order_id: Option<String>,
    /// NDN added (positive) or taken (negative).
    pub ndn: i64,
    /// Stars paid, for a purchase.
    pub stars: Option<i64>,
    /// A purchase's status: paid, or refunded.
    pub status: Option<OrderState>,
    /// Why, for spends and credits (the operator's words).
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Everything the home screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletView {
    pub user: UserView,
    pub balance: i64,
    /// NDN reserved by holds of the operator's product (not yet spent, not available).
    pub held: i64,
    pub packages: Vec<Package>,
    pub history: Vec<HistoryEntry>,
    /// Short-lived token for the live event stream (`GET /api/events?token=…`), which cannot
    /// carry an `Authorization` header.
    pub events_token: String,
    /// The signed-in user runs the shop (`ADMIN_USER_IDS`): the Mini App shows the console.
    /// Absent from a buyer's answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operator: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub order_id: String,
    pub invoice_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusView {
    pub order_id: String,
    pub status: OrderState,
    pub balance: i64,
}

/// A balance change pushed over the live event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceEvent {
    pub balance: i64,
    pub order_id: Option<String>,
    pub status: Option<OrderState>,
}

/// Why initData was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthFailure {
    /// No `Authorization: tma …` header.
    Missing,
    /// Malformed, or the signature does not match.
    Invalid,
    /// Signed correctly but too old (or from the future): reopen the app.
    Expired,
}

/// Every error a server function can answer with; it crosses the wire as JSON, so the Mini App
/// matches on the variant rather than on a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("not authorised: {0:?}")]
    Unauthorized(AuthFailure),
    /// Signed in, but not allowed (the console, for anyone not an operator).
    #[error("forbidden")]
    Forbidden,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("not found")]
    NotFound,
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("Telegram is unavailable, try again")]
    Unavailable,
    #[error("internal error")]
    Internal,
    #[error("{0}")]
    Framework(ServerFnErrorErr),
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized(_) => 401,
            Self::Forbidden => 403,
            Self::InvalidInput(_) => 400,
            Self::NotFound => 404,
            Self::RateLimited { .. } => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
            Self::Framework(ServerFnErrorErr::Args(_) | ServerFnErrorErr::Deserialization(_)) => {
                400
            }
            Self::Framework(_) => 500,
        }
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self::Framework(value)
    }
}

impl From<ServerFnErrorErr> for ApiError {
    fn from(value: ServerFnErrorErr) -> Self {
        Self::Framework(value)
    }
}

/// Balance, packages, recent purchases and the live-stream token of the signed-in buyer.
#[server(endpoint = "wallet", client = TmaClient)]
pub async fn wallet() -> Result<WalletView, ApiError> {
    let (backend, buyer) = crate::backend::request()?;
    crate::backend::answer(backend.wallet(&buyer).await)
}

/// Creates a pending order for `package_id` at the server's price and returns its invoice link.
#[server(endpoint = "create_invoice", client = TmaClient)]
pub async fn create_invoice(package_id: String) -> Result<Invoice, ApiError> {
    let (backend, buyer) = crate::backend::request()?;
    crate::backend::answer(backend.create_invoice(&buyer, &package_id).await)
}

/// The state of one of the buyer's own orders, with the current balance.
#[server(endpoint = "order_status", client = TmaClient)]
pub async fn order_status(order_id: String) -> Result<OrderStatusView, ApiError> {
    let (backend, buyer) = crate::backend::request()?;
    crate::backend::answer(backend.order_status(&buyer, &order_id).await)
}
