//! The rules of the service API's requests: each request of a batch decided in order against
//! what the batch read, every money sum checked.

use std::collections::HashMap;

use super::*;

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
    funds: &mut HashMap<UserId, Funds>,
    holds: &mut HashMap<HoldId, Hold>,
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
            if account.available() < amount.get() {
                return Decision::Refused(Refusal::InsufficientFunds {
                    available: account.available(),
                });
            }
            let Some(balance) = account.balance.checked_sub(amount.get()) else {
                return Decision::Refused(Refusal::BalanceLimit);
            };
            account.balance = balance;
            let transfer = Transfer {
                from: Account::Buyer(*user_id),
                to: Account::Spent,
                amount: *amount,
                kind: TransferKind::Spend,
                reference: id.clone(),
                stars: Stars(0),
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
            let Some(balance) = account.balance.checked_add(amount.get()) else {
                return Decision::Refused(Refusal::BalanceLimit);
            };
            account.balance = balance;
            let transfer = Transfer {
                from: Account::Grants,
                to: Account::Buyer(*user_id),
                amount: *amount,
                kind: TransferKind::Grant,
                reference: id.clone(),
                stars: Stars(0),
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
            if account.available() < amount.get() {
                return Decision::Refused(Refusal::InsufficientFunds {
                    available: account.available(),
                });
            }
            let Some(held) = account.held.checked_add(amount.get()) else {
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
                held: amount.get(),
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
                return Decision::Refused(Refusal::CaptureExceedsHold {
                    held: hold.amount.get(),
                });
            }
            // A capture spends what its hold reserved, and must leave available at zero or
            // above. A refund may have taken back reserved NDN since (available < 0): then
            // only as much as is still covered can be captured, and the refusal reports
            // available as the account does.
            let after = Funds {
                balance: account.balance.saturating_sub(wanted.get()),
                held: account.held.saturating_sub(hold.amount.get()),
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
                reference: hold.id.to_string(),
                stars: Stars(0),
                reason: hold.reason.clone(),
                external_reference: hold.reference.clone(),
                metadata: None,
            };
            Decision::Applied(Box::new(Change {
                transfer: Some(transfer),
                opened: None,
                closed: Some((hold.id.clone(), HoldStatus::Captured, Some(wanted))),
                held: -hold.amount.get(),
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
            account.held = account.held.saturating_sub(hold.amount.get());
            hold.status = status;
            Decision::Applied(Box::new(Change {
                transfer: None,
                opened: None,
                closed: Some((hold.id.clone(), status, None)),
                held: -hold.amount.get(),
                receipt: Receipt::Hold {
                    hold: hold.clone(),
                    funds: *account,
                },
            }))
        }
    }
}
