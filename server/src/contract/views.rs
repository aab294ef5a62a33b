//! What the service API answers, as JSON. Times are Unix seconds; amounts are whole NDN.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StatementEntry;
use crate::wallet::amounts::Ndn;
use crate::wallet::ids::UserId;
use crate::wallet::model::TransferKind;
use crate::wallet::operations::{Funds, Hold, Receipt};

/// A buyer's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountView {
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub balance: i64,
    /// Reserved by active holds.
    pub held: i64,
    /// `balance - held`: what may be spent or held now.
    pub available: i64,
}

impl AccountView {
    pub fn new(user_id: UserId, funds: Funds) -> Self {
        Self {
            user_id,
            balance: funds.balance,
            held: funds.held,
            available: funds.available(),
        }
    }
}

/// NDN spent in the operator's product.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DebitView {
    /// Always `debit`.
    pub object: &'static str,
    pub id: String,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub amount: i64,
    pub reason: String,
    pub reference: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub created_at: i64,
    /// The account right after the debit.
    pub account: AccountView,
}

/// NDN given by the operator.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CreditView {
    /// Always `credit`.
    pub object: &'static str,
    pub id: String,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub amount: i64,
    pub reason: String,
    pub created_at: i64,
    /// The account right after the credit.
    pub account: AccountView,
}

/// NDN reserved now, to be captured (spent) or released later.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HoldView {
    /// Always `hold`.
    pub object: &'static str,
    pub id: String,
    #[schema(value_type = i64)]
    pub user_id: UserId,
    pub amount: i64,
    /// `active`, `captured`, `voided` or `expired`.
    pub status: &'static str,
    /// NDN spent, once captured.
    pub captured: Option<i64>,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The account right after this change.
    pub account: AccountView,
}

fn seconds(ms: i64) -> i64 {
    ms / 1000
}

pub fn hold_view(hold: &Hold, funds: Funds) -> HoldView {
    HoldView {
        object: "hold",
        id: hold.id.to_string(),
        user_id: hold.user_id,
        amount: hold.amount.get(),
        status: hold.status.as_str(),
        captured: hold.captured.map(Ndn::get),
        reason: hold.reason.clone(),
        reference: hold.reference.clone(),
        created_at: seconds(hold.created_at),
        expires_at: seconds(hold.expires_at),
        account: AccountView::new(hold.user_id, funds),
    }
}

/// What an applied (or repeated) request answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReceiptView {
    Debit(DebitView),
    Credit(CreditView),
    Hold(HoldView),
}

impl From<&Receipt> for ReceiptView {
    fn from(receipt: &Receipt) -> Self {
        match receipt {
            Receipt::Debit {
                id,
                user_id,
                amount,
                reason,
                reference,
                metadata,
                created_at,
                funds,
            } => Self::Debit(DebitView {
                object: "debit",
                id: id.clone(),
                user_id: *user_id,
                amount: amount.get(),
                reason: reason.clone(),
                reference: reference.clone(),
                metadata: metadata.clone(),
                created_at: seconds(*created_at),
                account: AccountView::new(*user_id, *funds),
            }),
            Receipt::Credit {
                id,
                user_id,
                amount,
                reason,
                created_at,
                funds,
            } => Self::Credit(CreditView {
                object: "credit",
                id: id.clone(),
                user_id: *user_id,
                amount: amount.get(),
                reason: reason.clone(),
                created_at: seconds(*created_at),
                account: AccountView::new(*user_id, *funds),
            }),
            Receipt::Hold { hold, funds } => Self::Hold(hold_view(hold, *funds)),
        }
    }
}

/// One line of an account's statement.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TransactionView {
    /// `tr_<n>` for a transfer, the hold's id for a hold.
    pub id: String,
    /// `purchase`, `refund`, `debit`, `credit` or `hold`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What it did to the balance (negative for refunds and debits); for a hold, what it
    /// reserves (the balance moves only when it is captured, as a debit).
    pub amount: i64,
    /// Stars paid (purchase) or given back (refund).
    pub stars: Option<i64>,
    /// The Telegram charge (purchase, refund), debit, credit or hold behind it.
    pub source_id: String,
    pub reason: Option<String>,
    pub reference: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// A hold's status and what it captured.
    pub status: Option<&'static str>,
    pub captured: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

impl From<&StatementEntry> for TransactionView {
    fn from(entry: &StatementEntry) -> Self {
        match entry {
            StatementEntry::Transfer {
                id,
                kind,
                change,
                stars,
                reference,
                reason,
                external_reference,
                metadata,
                created_at,
            } => Self {
                id: format!("tr_{id}"),
                kind: match kind {
                    TransferKind::Purchase => "purchase",
                    TransferKind::Refund => "refund",
                    TransferKind::Spend => "debit",
                    TransferKind::Grant => "credit",
                },
                amount: *change,
                stars: matches!(kind, TransferKind::Purchase | TransferKind::Refund)
                    .then_some(*stars),
                source_id: reference.clone(),
                reason: reason.clone(),
                reference: external_reference.clone(),
                metadata: metadata
                    .as_deref()
                    .and_then(|text| serde_json::from_str(text).ok()),
                status: None,
                captured: None,
                expires_at: None,
                created_at: seconds(*created_at),
            },
            StatementEntry::Hold(hold) => Self {
                id: hold.id.to_string(),
                kind: "hold",
                amount: hold.amount.get(),
                stars: None,
                source_id: hold.id.to_string(),
                reason: hold.reason.clone(),
                reference: hold.reference.clone(),
                metadata: None,
                status: Some(hold.status.as_str()),
                captured: hold.captured.map(Ndn::get),
                expires_at: Some(seconds(hold.expires_at)),
                created_at: seconds(hold.created_at),
            },
        }
    }
}

/// A page of a statement, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TransactionPage {
    pub data: Vec<TransactionView>,
    /// Pass as `cursor` for the next (older) page; absent on the last one.
    pub next_cursor: Option<String>,
}
