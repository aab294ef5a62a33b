//! What the operator's own services do with a buyer's NDN, as plain functions over what a batch
//! read: debit (spend now), hold (reserve now; capture later, void, or let it expire), grant.
//! A batch is decided as if its requests came one at a time, in order; the same idempotency key
//! twice gives the first answer again, and the same key with another request is refused.

mod decide;
#[cfg(test)]
mod tests;

pub use decide::decide;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::amounts::{Ndn, Stars};
use super::ids::{HoldId, UserId};
use super::model::{Account, Transfer, TransferKind};

pub use super::amounts::MAX_AMOUNT;

/// A buyer's money as a batch reads it: the balance, and how much of it holds reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Funds {
    pub balance: i64,
    pub held: i64,
}

impl Funds {
    /// What may still be spent or held: the balance less what holds reserve. Negative once a
    /// refund took back NDN that a hold had reserved (holds stay; see `decide`). The same
    /// figure the account answers and every refusal reports.
    pub fn available(self) -> i64 {
        self.balance.saturating_sub(self.held)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    Active,
    Captured,
    Voided,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Captured => "captured",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "active" => Self::Active,
            "captured" => Self::Captured,
            "voided" => Self::Voided,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: HoldId,
    pub user_id: UserId,
    pub amount: Ndn,
    pub status: HoldStatus,
    /// NDN spent when it was captured.
    pub captured: Option<Ndn>,
    pub reason: Option<String>,
    pub reference: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub expires_at: i64,
    /// The API key that made it, the only one that may capture or void it (`None`: made
    /// before holds had owners, so any key with the spend scope may).
    #[serde(default)]
    pub owner: Option<i64>,
}

/// What a service asks for. Ids are chosen by the caller before the request is decided (and
/// forgotten if it is not applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Debit {
        id: String,
        user_id: UserId,
        amount: Ndn,
        reason: String,
        reference: Option<String>,
        /// A JSON object, as the client sent it.
        metadata: Option<String>,
    },
    Grant {
        id: String,
        user_id: UserId,
        amount: Ndn,
        reason: String,
    },
    Hold {
        id: HoldId,
        user_id: UserId,
        amount: Ndn,
        reason: Option<String>,
        reference: Option<String>,
        expires_at: i64,
        /// The API key asking: the hold's owner.
        owner: i64,
    },
    /// Spend `amount` of the hold (all of it when `None`); the rest is released.
    Capture {
        hold_id: HoldId,
        amount: Option<Ndn>,
        /// The API key asking.
        by: i64,
    },
    Void {
        hold_id: HoldId,
        by: i64,
    },
    /// Release a hold whose time ran out (the expiry worker's request).
    Expire {
        hold_id: HoldId,
    },
}

impl Operation {
    /// The buyer the request names (holds name theirs through the hold).
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::Debit { user_id, .. }
            | Self::Grant { user_id, .. }
            | Self::Hold { user_id, .. } => Some(*user_id),
            Self::Capture { .. } | Self::Void { .. } | Self::Expire { .. } => None,
        }
    }

    pub fn hold_id(&self) -> Option<&HoldId> {
        match self {
            Self::Capture { hold_id, .. }
            | Self::Void { hold_id, .. }
            | Self::Expire { hold_id } => Some(hold_id),
            _ => None,
        }
    }
}

/// An idempotency key: a client's key under one API key, and the fingerprint of the request it
/// was first used for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    pub api_key_id: i64,
    pub key: String,
    pub fingerprint: String,
}

/// A request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub operation: Operation,
    pub key: Option<IdempotencyKey>,
}

/// The answer remembered under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub fingerprint: String,
    pub receipt: Receipt,
}

/// What a batch read before deciding.
#[derive(Debug, Clone, Default)]
pub struct BatchReads {
    /// The buyers the requests name (absent: no such buyer).
    pub funds: HashMap<UserId, Funds>,
    /// The holds the requests name.
    pub holds: HashMap<HoldId, Hold>,
    /// Answers remembered under the requests' keys: (API key id, key) → answer.
    pub remembered: HashMap<(i64, String), StoredAnswer>,
}

/// What an applied request did, as its answer says (and as it is remembered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "lowercase")]
pub enum Receipt {
    Debit {
        id: String,
        user_id: UserId,
        amount: Ndn,
        reason: String,
        reference: Option<String>,
        metadata: Option<serde_json::Value>,
        created_at: i64,
        funds: Funds,
    },
    Credit {
        id: String,
        user_id: UserId,
        amount: Ndn,
        reason: String,
        created_at: i64,
        funds: Funds,
    },
    Hold {
        hold: Hold,
        funds: Funds,
    },
}

impl Receipt {
    pub fn user_id(&self) -> UserId {
        match self {
            Self::Debit { user_id, .. } | Self::Credit { user_id, .. } => *user_id,
            Self::Hold { hold, .. } => hold.user_id,
        }
    }

    pub fn funds(&self) -> Funds {
        match self {
            Self::Debit { funds, .. } | Self::Credit { funds, .. } | Self::Hold { funds, .. } => {
                *funds
            }
        }
    }
}

/// Why a request was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownAccount,
    UnknownHold,
    InsufficientFunds {
        available: i64,
    },
    /// The idempotency key was used for another request.
    KeyReused,
    /// The hold is no longer active (captured, voided or expired), or is past its time.
    HoldClosed {
        status: HoldStatus,
    },
    /// A capture of more than the hold reserved.
    CaptureExceedsHold {
        held: i64,
    },
    /// A capture or void by a key other than the one that made the hold.
    HoldOfAnotherKey,
    /// The change would take a balance past what the books can count (2^63 - 1).
    BalanceLimit,
}

impl Refusal {
    /// Why, in words.
    pub fn describe(&self) -> String {
        match self {
            Self::UnknownAccount => "no such buyer".into(),
            Self::UnknownHold => "no such hold".into(),
            Self::InsufficientFunds { available } => {
                format!("insufficient funds ({available} NDN available)")
            }
            Self::KeyReused => "the id was used for another request".into(),
            Self::HoldClosed { status } => format!("the hold is {}", status.as_str()),
            Self::CaptureExceedsHold { held } => {
                format!("the capture exceeds the hold ({held} NDN)")
            }
            Self::HoldOfAnotherKey => "the hold was made with another key".into(),
            Self::BalanceLimit => "the balance would pass the largest the books can count".into(),
        }
    }
}

/// What changes in the books for one applied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub transfer: Option<Transfer>,
    pub opened: Option<Hold>,
    /// A hold closed: its id, new status and NDN captured.
    pub closed: Option<(HoldId, HoldStatus, Option<Ndn>)>,
    /// Change to the buyer's held NDN.
    pub held: i64,
    pub receipt: Receipt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Applied now; remembered under the request's key, if it has one.
    Applied(Box<Change>),
    /// Answered before: the same answer again, nothing changes.
    Repeated(Receipt),
    Refused(Refusal),
    /// An expiry of a hold that is no longer active, or not yet due: nothing to do.
    NothingToExpire,
}

/// The answer to a request whose key was used before: the same answer for the same request,
/// a refusal for another one.
pub fn answer_again(earlier: &StoredAnswer, key: &IdempotencyKey) -> Decision {
    if earlier.fingerprint == key.fingerprint {
        Decision::Repeated(earlier.receipt.clone())
    } else {
        Decision::Refused(Refusal::KeyReused)
    }
}
