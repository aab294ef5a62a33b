//! What the operator's own services do with a buyer's NDN, as plain functions over what a batch
//! read: debit (spend now), hold (reserve now; capture later, void, or let it expire), grant.
//! A batch is decided as if its requests came one at a time, in order; the same idempotency key
//! twice gives the first answer again, and the same key with another request is refused.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::{Account, Transfer, TransferKind};

/// The largest amount one request may move (whole NDN).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

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
    pub id: String,
    pub user_id: i64,
    pub amount: i64,
    pub status: HoldStatus,
    /// NDN spent when it was captured.
    pub captured: Option<i64>,
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
        user_id: i64,
        amount: i64,
        reason: String,
        reference: Option<String>,
        /// A JSON object, as the client sent it.
        metadata: Option<String>,
    },
    Grant {
        id: String,
        user_id: i64,
        amount: i64,
        reason: String,
    },
    Hold {
        id: String,
        user_id: i64,
        amount: i64,
        reason: Option<String>,
        reference: Option<String>,
        expires_at: i64,
        /// The API key asking: the hold's owner.
        owner: i64,
    },
    /// Spend `amount` of the hold (all of it when `None`); the rest is released.
    Capture {
        hold_id: String,
        amount: Option<i64>,
        /// The API key asking.
        by: i64,
    },
    Void {
        hold_id: String,
        by: i64,
    },
    /// Release a hold whose time ran out (the expiry worker's request).
    Expire {
        hold_id: String,
    },
}

impl Operation {
    /// The buyer the request names (holds name theirs through the hold).
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Self::Debit { user_id, .. }
            | Self::Grant { user_id, .. }
            | Self::Hold { user_id, .. } => Some(*user_id),
            Self::Capture { .. } | Self::Void { .. } | Self::Expire { .. } => None,
        }
    }

    pub fn hold_id(&self) -> Option<&str> {
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
    pub funds: HashMap<i64, Funds>,
    /// The holds the requests name.
    pub holds: HashMap<String, Hold>,
    /// Answers remembered under the requests' keys: (API key id, key) → answer.
    pub remembered: HashMap<(i64, String), StoredAnswer>,
}

/// What an applied request did, as its answer says (and as it is remembered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "lowercase")]
pub enum Receipt {
    Debit {
        id: String,
        user_id: i64,
        amount: i64,
        reason: String,
        reference: Option<String>,
        metadata: Option<serde_json::Value>,
        created_at: i64,
        funds: Funds,
    },
    Credit {
        id: String,
        user_id: i64,
        amount: i64,
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
    pub fn user_id(&self) -> i64 {
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
    pub closed: Option<(String, HoldStatus, Option<i64>)>,
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

/// Decides every request of a batch, in order, from what the batch read at `now` (Unix ms).
pub fn decide(requests: &[Request], books: &BatchReads, now: i64) -> Vec<Decision> {
    let mut funds = books.funds.clone();
    let mut holds = books.holds.clone();
    let mut remembered = books.remembered.clone();
    requests
        .iter()
        .map(|request| {
            if let Some(key) = &request.key
                && let Some(earlier) = remembered.get(&(key.api_key_id, key.key.clone()))
            {
                return answer_again(earlier, key);
            }
            let decision = decide_one(&request.operation, &mut funds, &mut holds, now);
            if let (Some(key), Decision::Applied(change)) = (&request.key, &decision) {
                remembered.insert(
                    (key.api_key_id, key.key.clone()),
                    StoredAnswer {
                        fingerprint: key.fingerprint.clone(),
                        receipt: change.receipt.clone(),
                    },
                );
            }
            decision
        })
        .collect()
}

fn decide_one(
    operation: &Operation,
    funds: &mut HashMap<i64, Funds>,
    holds: &mut HashMap<String, Hold>,
    now: i64,
) -> Decision {
    match operation {
        Operation::Debit {
            id,
            user_id,
            amount,
            reason,
            reference,
            metadata,
        } => {
            let Some(account) = funds.get_mut(user_id) else {
                return Decision::Refused(Refusal::UnknownAccount);
            };
            if account.available() < *amount {
                return Decision::Refused(Refusal::InsufficientFunds {
                    available: account.available(),
                });
            }
            let Some(balance) = account.balance.checked_sub(*amount) else {
                return Decision::Refused(Refusal::BalanceLimit);
            };
            account.balance = balance;
            let transfer = Transfer {
                from: Account::Buyer(*user_id),
                to: Account::Spent,
                amount: *amount,
                kind: TransferKind::Spend,
                reference: id.clone(),
                stars: 0,
                reason: Some(reason.clone()),
                external_reference: reference.clone(),
                metadata: metadata.clone(),
            };
            Decision::Applied(Box::new(Change {
                transfer: Some(transfer),
                opened: None,
                closed: None,
                held: 0,
                receipt: Receipt::Debit {
                    id: id.clone(),
                    user_id: *user_id,
                    amount: *amount,
                    reason: reason.clone(),
                    reference: reference.clone(),
                    metadata: metadata
                        .as_deref()
                        .and_then(|text| serde_json::from_str(text).ok()),
                    created_at: now,
                    funds: *account,
                },
            }))
        }
        Operation::Grant {
            id,
            user_id,
            amount,
            reason,
        } => {
            let Some(account) = funds.get_mut(user_id) else {
                return Decision::Refused(Refusal::UnknownAccount);
            };
            let Some(balance) = account.balance.checked_add(*amount) else {
                return Decision::Refused(Refusal::BalanceLimit);
            };
            account.balance = balance;
            let transfer = Transfer {
                from: Account::Grants,
                to: Account::Buyer(*user_id),
                amount: *amount,
                kind: TransferKind::Grant,
                reference: id.clone(),
                stars: 0,
                reason: Some(reason.clone()),
                external_reference: None,
                metadata: None,
            };
            Decision::Applied(Box::new(Change {
                transfer: Some(transfer),
                opened: None,
                closed: None,
                held: 0,
                receipt: Receipt::Credit {
                    id: id.clone(),
                    user_id: *user_id,
                    amount: *amount,
                    reason: reason.clone(),
                    created_at: now,
                    funds: *account,
                },
            }))
        }
        Operation::Hold {
            id,
            user_id,
            amount,
            reason,
            reference,
            expires_at,
            owner,
        } => {
            let Some(account) = funds.get_mut(user_id) else {
                return Decision::Refused(Refusal::UnknownAccount);
            };
            if account.available() < *amount {
                return Decision::Refused(Refusal::InsufficientFunds {
                    available: account.available(),
                });
            }
            let Some(held) = account.held.checked_add(*amount) else {
                return Decision::Refused(Refusal::BalanceLimit);
            };
            account.held = held;
            let hold = Hold {
                id: id.clone(),
                user_id: *user_id,
                amount: *amount,
                status: HoldStatus::Active,
                captured: None,
                reason: reason.clone(),
                reference: reference.clone(),
                created_at: now,
                expires_at: *expires_at,
                owner: Some(*owner),
            };
            holds.insert(id.clone(), hold.clone());
            Decision::Applied(Box::new(Change {
                transfer: None,
                opened: Some(hold.clone()),
                closed: None,
                held: *amount,
                receipt: Receipt::Hold {
                    hold,
                    funds: *account,
                },
            }))
        }
        Operation::Capture {
            hold_id,
            amount,
            by,
        } => {
            let Some(hold) = holds.get_mut(hold_id) else {
                return Decision::Refused(Refusal::UnknownHold);
            };
            if hold.owner.is_some_and(|owner| owner != *by) {
                return Decision::Refused(Refusal::HoldOfAnotherKey);
            }
            let Some(account) = funds.get_mut(&hold.user_id) else {
                return Decision::Refused(Refusal::UnknownAccount);
            };
            let wanted = amount.unwrap_or(hold.amount);
            match hold.status {
                // The same capture again: the same answer.
                HoldStatus::Captured if amount.is_none() || hold.captured == Some(wanted) => {
                    return Decision::Repeated(Receipt::Hold {
                        hold: hold.clone(),
                        funds: *account,
                    });
                }
                HoldStatus::Active if hold.expires_at <= now => {
                    return Decision::Refused(Refusal::HoldClosed {
                        status: HoldStatus::Expired,
                    });
                }
                HoldStatus::Active => {}
                status => return Decision::Refused(Refusal::HoldClosed { status }),
            }
            if wanted > hold.amount {
                return Decision::Refused(Refusal::CaptureExceedsHold { held: hold.amount });
            }
            // A capture spends what its hold reserved, and must leave available at zero or
            // above. A refund may have taken back reserved NDN since (available < 0): then
            // only as much as is still covered can be captured, and the refusal reports
            // available as the account does.
            let after = Funds {
                balance: account.balance.saturating_sub(wanted),
                held: account.held.saturating_sub(hold.amount),
            };
            if after.available() < 0 {
                return Decision::Refused(Refusal::InsufficientFunds {
                    available: account.available(),
                });
            }
            *account = after;
            hold.status = HoldStatus::Captured;
            hold.captured = Some(wanted);
            let transfer = Transfer {
                from: Account::Buyer(hold.user_id),
                to: Account::Spent,
                amount: wanted,
                kind: TransferKind::Spend,
                reference: hold.id.clone(),
                stars: 0,
                reason: hold.reason.clone(),
                external_reference: hold.reference.clone(),
                metadata: None,
            };
            Decision::Applied(Box::new(Change {
                transfer: Some(transfer),
                opened: None,
                closed: Some((hold.id.clone(), HoldStatus::Captured, Some(wanted))),
                held: -hold.amount,
                receipt: Receipt::Hold {
                    hold: hold.clone(),
                    funds: *account,
                },
            }))
        }
        Operation::Void { hold_id, .. } | Operation::Expire { hold_id } => {
            let expiring = matches!(operation, Operation::Expire { .. });
            let Some(hold) = holds.get_mut(hold_id) else {
                return if expiring {
                    Decision::NothingToExpire
                } else {
                    Decision::Refused(Refusal::UnknownHold)
                };
            };
            if let Operation::Void { by, .. } = operation
                && hold.owner.is_some_and(|owner| owner != *by)
            {
                return Decision::Refused(Refusal::HoldOfAnotherKey);
            }
            let Some(account) = funds.get_mut(&hold.user_id) else {
                return Decision::Refused(Refusal::UnknownAccount);
            };
            let status = if expiring {
                if hold.status != HoldStatus::Active || hold.expires_at > now {
                    return Decision::NothingToExpire;
                }
                HoldStatus::Expired
            } else {
                match hold.status {
                    HoldStatus::Active => HoldStatus::Voided,
                    HoldStatus::Voided => {
                        return Decision::Repeated(Receipt::Hold {
                            hold: hold.clone(),
                            funds: *account,
                        });
                    }
                    status => return Decision::Refused(Refusal::HoldClosed { status }),
                }
            };
            account.held = account.held.saturating_sub(hold.amount);
            hold.status = status;
            Decision::Applied(Box::new(Change {
                transfer: None,
                opened: None,
                closed: Some((hold.id.clone(), status, None)),
                held: -hold.amount,
                receipt: Receipt::Hold {
                    hold: hold.clone(),
                    funds: *account,
                },
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn books(balance: i64, held: i64) -> BatchReads {
        BatchReads {
            funds: HashMap::from([(7, Funds { balance, held })]),
            ..BatchReads::default()
        }
    }

    fn debit(id: &str, amount: i64) -> Request {
        Request {
            operation: Operation::Debit {
                id: id.into(),
                user_id: 7,
                amount,
                reason: "sword".into(),
                reference: None,
                metadata: None,
            },
            key: None,
        }
    }

    fn keyed(mut request: Request, key: &str, fingerprint: &str) -> Request {
        request.key = Some(IdempotencyKey {
            api_key_id: 1,
            key: key.into(),
            fingerprint: fingerprint.into(),
        });
        request
    }

    fn hold(id: &str, amount: i64, expires_at: i64) -> Request {
        Request {
            operation: Operation::Hold {
                id: id.into(),
                user_id: 7,
                amount,
                reason: Some("match entry".into()),
                reference: None,
                expires_at,
                owner: 1,
            },
            key: None,
        }
    }

    /// Hold `h1` of buyer 7: 100 NDN, active until just after `NOW`.
    fn active_hold(owner: Option<i64>) -> Hold {
        Hold {
            id: "h1".into(),
            user_id: 7,
            amount: 100,
            status: HoldStatus::Active,
            captured: None,
            reason: None,
            reference: None,
            created_at: 0,
            expires_at: NOW + 1,
            owner,
        }
    }

    fn plain(operation: Operation) -> Request {
        Request {
            operation,
            key: None,
        }
    }

    fn funds_after(decision: &Decision) -> Funds {
        match decision {
            Decision::Applied(change) => change.receipt.funds(),
            Decision::Repeated(receipt) => receipt.funds(),
            other => panic!("not applied: {other:?}"),
        }
    }

    #[test]
    fn debits_spend_what_is_available_and_never_overdraw() {
        let requests: Vec<Request> = (0..7).map(|i| debit(&format!("d{i}"), 100)).collect();
        let decisions = decide(&requests, &books(500, 0), NOW);
        let applied = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Applied(_)))
            .count();
        assert_eq!(applied, 5);
        assert_eq!(funds_after(&decisions[4]).balance, 0);
        assert_eq!(
            decisions[5],
            Decision::Refused(Refusal::InsufficientFunds { available: 0 })
        );
        let Decision::Applied(change) = &decisions[0] else {
            unreachable!()
        };
        let transfer = change.transfer.as_ref().unwrap();
        assert_eq!(
            (transfer.from, transfer.to, transfer.amount),
            (Account::Buyer(7), Account::Spent, 100)
        );
    }

    #[test]
    fn held_ndn_cannot_be_debited() {
        let decisions = decide(&[debit("d", 300)], &books(500, 300), NOW);
        assert_eq!(
            decisions[0],
            Decision::Refused(Refusal::InsufficientFunds { available: 200 })
        );
    }

    #[test]
    fn the_same_key_answers_the_same_and_another_request_under_it_is_refused() {
        let first = keyed(debit("d1", 100), "k", "f1");
        let again = keyed(debit("d2", 100), "k", "f1");
        let other = keyed(debit("d3", 200), "k", "f2");
        let decisions = decide(&[first, again, other], &books(500, 0), NOW);
        let Decision::Applied(change) = &decisions[0] else {
            panic!("{decisions:?}")
        };
        assert_eq!(decisions[1], Decision::Repeated(change.receipt.clone()));
        assert_eq!(decisions[2], Decision::Refused(Refusal::KeyReused));
        // StoredAnswer from an earlier batch, too.
        let mut earlier = books(400, 0);
        earlier.remembered.insert(
            (1, "k".into()),
            StoredAnswer {
                fingerprint: "f1".into(),
                receipt: change.receipt.clone(),
            },
        );
        let decisions = decide(&[keyed(debit("d4", 100), "k", "f1")], &earlier, NOW);
        assert_eq!(decisions[0], Decision::Repeated(change.receipt.clone()));
    }

    #[test]
    fn a_hold_reserves_then_capture_spends_part_and_releases_the_rest() {
        let decisions = decide(
            &[
                hold("h1", 300, NOW + 60_000),
                debit("d", 300),
                plain(Operation::Capture {
                    hold_id: "h1".into(),
                    amount: Some(120),
                    by: 1,
                }),
                plain(Operation::Capture {
                    hold_id: "h1".into(),
                    amount: Some(120),
                    by: 1,
                }),
                debit("d2", 380),
            ],
            &books(500, 0),
            NOW,
        );
        assert_eq!(
            funds_after(&decisions[0]),
            Funds {
                balance: 500,
                held: 300
            }
        );
        assert_eq!(
            decisions[1],
            Decision::Refused(Refusal::InsufficientFunds { available: 200 })
        );
        assert_eq!(
            funds_after(&decisions[2]),
            Funds {
                balance: 380,
                held: 0
            }
        );
        let Decision::Applied(change) = &decisions[2] else {
            unreachable!()
        };
        assert_eq!(change.held, -300);
        assert_eq!(change.transfer.as_ref().unwrap().amount, 120);
        assert!(
            matches!(decisions[3], Decision::Repeated(_)),
            "a capture repeated is answered again"
        );
        assert_eq!(funds_after(&decisions[4]).balance, 0);
    }

    #[test]
    fn voided_and_expired_holds_cannot_be_captured() {
        let with_hold = |status: HoldStatus, expires_at: i64| {
            let mut books = books(500, if status == HoldStatus::Active { 100 } else { 0 });
            books.holds.insert(
                "h".into(),
                Hold {
                    id: "h".into(),
                    user_id: 7,
                    amount: 100,
                    status,
                    captured: None,
                    reason: None,
                    reference: None,
                    created_at: 0,
                    expires_at,
                    owner: Some(1),
                },
            );
            books
        };
        let capture = plain(Operation::Capture {
            hold_id: "h".into(),
            amount: None,
            by: 1,
        });
        let void = plain(Operation::Void {
            hold_id: "h".into(),
            by: 1,
        });
        let decisions = decide(
            &[void.clone(), void.clone(), capture.clone()],
            &with_hold(HoldStatus::Active, NOW + 1),
            NOW,
        );
        assert_eq!(
            funds_after(&decisions[0]),
            Funds {
                balance: 500,
                held: 0
            }
        );
        assert!(
            matches!(decisions[1], Decision::Repeated(_)),
            "void is idempotent"
        );
        assert_eq!(
            decisions[2],
            Decision::Refused(Refusal::HoldClosed {
                status: HoldStatus::Voided
            })
        );
        // Past its time: refused, and released by the expiry.
        let expired = with_hold(HoldStatus::Active, NOW);
        let decisions = decide(
            &[
                capture.clone(),
                plain(Operation::Expire {
                    hold_id: "h".into(),
                }),
                plain(Operation::Expire {
                    hold_id: "h".into(),
                }),
            ],
            &expired,
            NOW,
        );
        assert_eq!(
            decisions[0],
            Decision::Refused(Refusal::HoldClosed {
                status: HoldStatus::Expired
            })
        );
        assert_eq!(
            funds_after(&decisions[1]),
            Funds {
                balance: 500,
                held: 0
            }
        );
        assert_eq!(decisions[2], Decision::NothingToExpire);
        // Not yet due: the expiry leaves it.
        let decisions = decide(
            &[plain(Operation::Expire {
                hold_id: "h".into(),
            })],
            &with_hold(HoldStatus::Active, NOW + 1),
            NOW,
        );
        assert_eq!(decisions[0], Decision::NothingToExpire);
        let decisions = decide(
            &[plain(Operation::Capture {
                hold_id: "h".into(),
                amount: Some(101),
                by: 1,
            })],
            &with_hold(HoldStatus::Active, NOW + 1),
            NOW,
        );
        assert_eq!(
            decisions[0],
            Decision::Refused(Refusal::CaptureExceedsHold { held: 100 })
        );
    }

    #[test]
    fn only_the_key_that_made_a_hold_settles_it() {
        let by = |key: i64| {
            [
                plain(Operation::Capture {
                    hold_id: "h1".into(),
                    amount: None,
                    by: key,
                }),
                plain(Operation::Void {
                    hold_id: "h1".into(),
                    by: key,
                }),
            ]
        };
        let mut requests = vec![hold("h1", 100, NOW + 60_000)];
        requests.extend(by(2));
        requests.extend(by(1));
        let decisions = decide(&requests, &books(500, 0), NOW);
        assert_eq!(decisions[1], Decision::Refused(Refusal::HoldOfAnotherKey));
        assert_eq!(decisions[2], Decision::Refused(Refusal::HoldOfAnotherKey));
        assert_eq!(
            funds_after(&decisions[3]).balance,
            400,
            "its own key captures"
        );
        // A hold made before holds had owners: any key.
        let mut earlier = books(500, 100);
        earlier.holds.insert("h1".into(), active_hold(None));
        assert!(matches!(
            decide(&by(2)[..1], &earlier, NOW)[0],
            Decision::Applied(_)
        ));
    }

    #[test]
    fn after_a_clawback_a_capture_reports_available_as_the_account_does() {
        // 100 NDN, all held; a refund then took the 100 back: balance 0, available -100.
        let mut clawed = books(0, 100);
        clawed.holds.insert("h1".into(), active_hold(Some(1)));
        assert_eq!(clawed.funds[&7].available(), -100);
        let capture = |amount| {
            plain(Operation::Capture {
                hold_id: "h1".into(),
                amount,
                by: 1,
            })
        };
        let decisions = decide(&[capture(None), capture(Some(1))], &clawed, NOW);
        for decision in &decisions {
            assert_eq!(
                *decision,
                Decision::Refused(Refusal::InsufficientFunds { available: -100 })
            );
        }
        // Half clawed back: what the hold still covers can be captured, no more.
        let mut half = clawed.clone();
        half.funds.insert(
            7,
            Funds {
                balance: 50,
                held: 100,
            },
        );
        let decisions = decide(&[capture(Some(51)), capture(Some(50))], &half, NOW);
        assert_eq!(
            decisions[0],
            Decision::Refused(Refusal::InsufficientFunds { available: -50 })
        );
        assert_eq!(
            funds_after(&decisions[1]),
            Funds {
                balance: 0,
                held: 0
            }
        );
        // A void releases it: available back to the balance.
        let void = plain(Operation::Void {
            hold_id: "h1".into(),
            by: 1,
        });
        assert_eq!(
            funds_after(&decide(&[void], &clawed, NOW)[0]),
            Funds {
                balance: 0,
                held: 0
            }
        );
    }

    #[test]
    fn a_balance_never_passes_what_the_books_can_count() {
        let grant = plain(Operation::Grant {
            id: "g".into(),
            user_id: 7,
            amount: 10,
            reason: "bonus".into(),
        });
        let decisions = decide(std::slice::from_ref(&grant), &books(i64::MAX - 5, 0), NOW);
        assert_eq!(decisions[0], Decision::Refused(Refusal::BalanceLimit));
        assert_eq!(
            funds_after(&decide(&[grant], &books(i64::MAX - 10, 0), NOW)[0]).balance,
            i64::MAX
        );
    }

    #[test]
    fn grants_need_a_known_buyer_and_add_to_the_balance() {
        let grant = |user_id| {
            plain(Operation::Grant {
                id: "g".into(),
                user_id,
                amount: 50,
                reason: "sorry for the outage".into(),
            })
        };
        let decisions = decide(&[grant(7), grant(8)], &books(0, 0), NOW);
        assert_eq!(funds_after(&decisions[0]).balance, 50);
        assert_eq!(decisions[1], Decision::Refused(Refusal::UnknownAccount));
    }

    #[test]
    fn hold_statuses_have_fixed_names() {
        let statuses = [
            (HoldStatus::Active, "active"),
            (HoldStatus::Captured, "captured"),
            (HoldStatus::Voided, "voided"),
            (HoldStatus::Expired, "expired"),
        ];
        for (status, name) in statuses {
            assert_eq!(status.as_str(), name);
            assert_eq!(HoldStatus::parse(name), Some(status));
        }
        assert_eq!(HoldStatus::parse("Active"), None);
        assert_eq!(HoldStatus::parse(""), None);
    }

    /// What the writer locks and reads for a request: its buyer, or its hold.
    #[test]
    fn a_request_names_its_buyer_or_its_hold() {
        let grant = Operation::Grant {
            id: "g".into(),
            user_id: 7,
            amount: 1,
            reason: "r".into(),
        };
        for buyer_named in [debit("d", 1).operation, grant, hold("h", 1, NOW).operation] {
            assert_eq!(buyer_named.user_id(), Some(7), "{buyer_named:?}");
            assert_eq!(buyer_named.hold_id(), None, "{buyer_named:?}");
        }
        let hold_named = [
            Operation::Capture {
                hold_id: "h1".into(),
                amount: None,
                by: 1,
            },
            Operation::Void {
                hold_id: "h1".into(),
                by: 1,
            },
            Operation::Expire {
                hold_id: "h1".into(),
            },
        ];
        for operation in hold_named {
            assert_eq!(operation.user_id(), None, "{operation:?}");
            assert_eq!(operation.hold_id(), Some("h1"), "{operation:?}");
        }
    }

    #[test]
    fn every_receipt_names_its_buyer() {
        let mut books = books(500, 0);
        books.funds.insert(8, Funds::default());
        books.holds.insert("h1".into(), active_hold(Some(1)));
        let grant = plain(Operation::Grant {
            id: "g".into(),
            user_id: 8,
            amount: 5,
            reason: "r".into(),
        });
        let decisions = decide(
            &[debit("d", 10), grant, hold("h2", 10, NOW + 1)],
            &books,
            NOW,
        );
        let buyers: Vec<i64> = decisions
            .iter()
            .map(|decision| match decision {
                Decision::Applied(change) => change.receipt.user_id(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(buyers, [7, 8, 7]);
    }

    /// The words the console and the command line show for a refusal.
    #[test]
    fn refusals_say_why_in_words() {
        let words = [
            (Refusal::UnknownAccount, "no such buyer"),
            (Refusal::UnknownHold, "no such hold"),
            (
                Refusal::InsufficientFunds { available: -20 },
                "insufficient funds (-20 NDN available)",
            ),
            (Refusal::KeyReused, "the id was used for another request"),
            (
                Refusal::HoldClosed {
                    status: HoldStatus::Expired,
                },
                "the hold is expired",
            ),
            (
                Refusal::CaptureExceedsHold { held: 100 },
                "the capture exceeds the hold (100 NDN)",
            ),
            (
                Refusal::HoldOfAnotherKey,
                "the hold was made with another key",
            ),
            (
                Refusal::BalanceLimit,
                "the balance would pass the largest the books can count",
            ),
        ];
        for (refusal, text) in words {
            assert_eq!(refusal.describe(), text);
        }
    }

    /// A hold may reserve all that is available, not a unit more.
    #[test]
    fn a_hold_reserves_up_to_what_is_available() {
        let decisions = decide(&[hold("h1", 500, NOW + 1)], &books(500, 0), NOW);
        assert_eq!(
            funds_after(&decisions[0]),
            Funds {
                balance: 500,
                held: 500
            }
        );
        let decisions = decide(&[hold("h1", 501, NOW + 1)], &books(500, 0), NOW);
        assert_eq!(
            decisions[0],
            Decision::Refused(Refusal::InsufficientFunds { available: 500 })
        );
    }

    /// A captured hold answers the same capture again, but a capture of another amount is
    /// refused: it is not the request that was answered.
    #[test]
    fn a_captured_hold_repeats_only_the_same_capture() {
        let capture = |amount| {
            plain(Operation::Capture {
                hold_id: "h1".into(),
                amount,
                by: 1,
            })
        };
        let mut books = books(500, 100);
        books.holds.insert("h1".into(), active_hold(Some(1)));
        let decisions = decide(
            &[
                capture(Some(60)),
                capture(Some(60)),
                capture(None),
                capture(Some(50)),
            ],
            &books,
            NOW,
        );
        assert!(
            matches!(decisions[0], Decision::Applied(_)),
            "{decisions:?}"
        );
        assert!(
            matches!(decisions[1], Decision::Repeated(_)),
            "{decisions:?}"
        );
        assert!(
            matches!(decisions[2], Decision::Repeated(_)),
            "{decisions:?}"
        );
        assert_eq!(
            decisions[3],
            Decision::Refused(Refusal::HoldClosed {
                status: HoldStatus::Captured
            })
        );
    }

    /// A void and an expiry each release exactly what the hold reserved.
    #[test]
    fn a_void_or_an_expiry_releases_the_held_amount() {
        for operation in [
            Operation::Void {
                hold_id: "h1".into(),
                by: 1,
            },
            Operation::Expire {
                hold_id: "h1".into(),
            },
        ] {
            let mut books = books(500, 100);
            books.holds.insert("h1".into(), active_hold(Some(1)));
            let decisions = decide(&[plain(operation.clone())], &books, NOW + 1);
            let Decision::Applied(change) = &decisions[0] else {
                panic!("{operation:?}: {decisions:?}")
            };
            assert_eq!(change.held, -100, "{operation:?}");
            assert_eq!(
                change.receipt.funds(),
                Funds {
                    balance: 500,
                    held: 0
                }
            );
        }
    }
}
