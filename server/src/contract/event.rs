//! What a committed change tells the operator's backend: one event per change, built in the
//! transaction that makes the change and stored with it as the exact bytes later signed and sent.

use serde::Serialize;

use super::views::ReceiptView;
use crate::store::EventRow;
use crate::wallet::amounts::Stars;
use crate::wallet::ids::{ChargeId, OrderId, UserId};
use crate::wallet::model::{PaymentOutcome, RefundOutcome};
use crate::wallet::operations::{HoldStatus, Receipt};

/// The kinds of event an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    PaymentCredited,
    PaymentHeld,
    PaymentRefunded,
    DebitCreated,
    HoldCreated,
    HoldCaptured,
    HoldReleased,
    CreditGranted,
}

impl EventType {
    pub const ALL: [Self; 8] = [
        Self::PaymentCredited,
        Self::PaymentHeld,
        Self::PaymentRefunded,
        Self::DebitCreated,
        Self::HoldCreated,
        Self::HoldCaptured,
        Self::HoldReleased,
        Self::CreditGranted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentCredited => "payment.credited",
            Self::PaymentHeld => "payment.held",
            Self::PaymentRefunded => "payment.refunded",
            Self::DebitCreated => "debit.created",
            Self::HoldCreated => "hold.created",
            Self::HoldCaptured => "hold.captured",
            Self::HoldReleased => "hold.released",
            Self::CreditGranted => "credit.granted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// A comma-separated list (`*` or `all` for every type), each type once, in a fixed order.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let mut kinds = Vec::new();
        for word in text
            .split(',')
            .map(str::trim)
            .filter(|word| !word.is_empty())
        {
            if word == "*" || word == "all" {
                kinds.extend(Self::ALL);
                continue;
            }
            kinds.push(Self::parse(word).ok_or_else(|| {
                format!(
                    "unknown event type `{word}`; the types are {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })?);
        }
        if kinds.is_empty() {
            return Err("name at least one event type (or `all`)".into());
        }
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
}

/// An event about to be written with its change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `evt_` and 32 hex digits: what receivers deduplicate by.
    pub id: String,
    pub kind: EventType,
    pub user_id: UserId,
    /// The JSON object sent, exactly: `{"id", "type", "created_at", "data"}`.
    pub body: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(Serialize)]
struct Body<'a, T: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Unix seconds, as everywhere in the API.
    created_at: i64,
    data: T,
}

/// A Telegram Stars payment as events tell it.
#[derive(Serialize)]
struct PaymentData<'a> {
    /// Always `payment`.
    object: &'static str,
    charge_id: &'a ChargeId,
    user_id: UserId,
    order_id: Option<&'a str>,
    stars: Stars,
    /// NDN credited (or, for a refund, debited); 0 when none moved.
    amount: i64,
    /// `credited`, `held` or `refunded`.
    status: &'static str,
    /// Why a payment was held for the operator.
    hold_reason: Option<&'a str>,
    /// The buyer's balance right after, when NDN moved.
    balance: Option<i64>,
}

impl NewEvent {
    fn new(kind: EventType, user_id: UserId, data: impl Serialize, now: i64) -> Self {
        let id = format!("evt_{}", uuid::Uuid::new_v4().simple());
        let body = serde_json::to_string(&Body {
            id: &id,
            kind: kind.as_str(),
            created_at: now / 1000,
            data,
        })
        .expect("an event serializes");
        Self {
            id,
            kind,
            user_id,
            body,
            created_at: now,
        }
    }

    /// The event as the store writes it.
    pub fn into_row(self) -> EventRow {
        EventRow {
            id: self.id,
            kind: self.kind.as_str(),
            user_id: self.user_id,
            body: self.body,
            created_at: self.created_at,
        }
    }

    /// `payment.credited` or `payment.held` (nothing for a duplicate).
    pub fn payment(
        outcome: &PaymentOutcome,
        charge_id: &ChargeId,
        payload: &str,
        stars: Stars,
        now: i64,
    ) -> Option<Self> {
        let (kind, user_id, data) = match outcome {
            PaymentOutcome::Credited {
                user_id,
                order_id,
                ndn,
                balance,
            } => (
                EventType::PaymentCredited,
                *user_id,
                PaymentData {
                    object: "payment",
                    charge_id,
                    user_id: *user_id,
                    order_id: Some(order_id.as_str()),
                    stars,
                    amount: ndn.get(),
                    status: "credited",
                    hold_reason: None,
                    balance: Some(*balance),
                },
            ),
            PaymentOutcome::Held { user_id, reason } => (
                EventType::PaymentHeld,
                *user_id,
                PaymentData {
                    object: "payment",
                    charge_id,
                    user_id: *user_id,
                    order_id: Some(payload).filter(|payload| !payload.is_empty()),
                    stars,
                    amount: 0,
                    status: "held",
                    hold_reason: Some(reason),
                    balance: None,
                },
            ),
            PaymentOutcome::Duplicate => return None,
        };
        Some(Self::new(kind, user_id, data, now))
    }

    /// `payment.refunded`, for a refund that changed something (nothing for a repeat).
    pub fn refund(
        outcome: &RefundOutcome,
        charge_id: &ChargeId,
        user_id: UserId,
        stars: Stars,
        now: i64,
    ) -> Option<Self> {
        let refunded = |user_id, order_id, amount, balance| PaymentData {
            object: "payment",
            charge_id,
            user_id,
            order_id,
            stars,
            amount,
            status: "refunded",
            hold_reason: None,
            balance,
        };
        let (user_id, data) = match outcome {
            RefundOutcome::Debited {
                user_id,
                order_id,
                ndn,
                balance,
            } => (
                *user_id,
                refunded(
                    *user_id,
                    order_id.as_ref().map(OrderId::as_str),
                    ndn.get(),
                    Some(*balance),
                ),
            ),
            RefundOutcome::ClosedHeld | RefundOutcome::RecordedUnknown => {
                (user_id, refunded(user_id, None, 0, None))
            }
            RefundOutcome::AlreadyRefunded => return None,
        };
        Some(Self::new(EventType::PaymentRefunded, user_id, data, now))
    }

    /// The event of an applied service request (or console grant): its data is the object the
    /// API answered.
    pub fn receipt(receipt: &Receipt, now: i64) -> Self {
        let kind = match receipt {
            Receipt::Debit { .. } => EventType::DebitCreated,
            Receipt::Credit { .. } => EventType::CreditGranted,
            Receipt::Hold { hold, .. } => match hold.status {
                HoldStatus::Active => EventType::HoldCreated,
                HoldStatus::Captured => EventType::HoldCaptured,
                HoldStatus::Voided | HoldStatus::Expired => EventType::HoldReleased,
            },
        };
        Self::new(kind, receipt.user_id(), ReceiptView::from(receipt), now)
    }
}

/// The events a POST's body carries, as a receiver reads them: the one object, or each of the
/// array an endpoint that takes batches gets (the sandbox's receiver and the benchmark's).
pub fn events_in(body: &[u8]) -> Vec<serde_json::Value> {
    match serde_json::from_slice(body).unwrap_or(serde_json::Value::Null) {
        serde_json::Value::Array(events) => events,
        event => vec![event],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::amounts::{Ndn, Stars};

    #[test]
    fn type_lists_parse_in_order_once() {
        assert_eq!(
            EventType::parse_list("payment.refunded, payment.credited,payment.credited").unwrap(),
            vec![EventType::PaymentCredited, EventType::PaymentRefunded]
        );
        assert_eq!(EventType::parse_list("all").unwrap().len(), 8);
        assert!(EventType::parse_list("payment.lost").is_err());
        assert!(EventType::parse_list(" , ").is_err());
    }

    #[test]
    fn a_credit_tells_the_payment_and_the_balance() {
        let outcome = PaymentOutcome::Credited {
            user_id: UserId(7),
            order_id: "ord_1".into(),
            ndn: Ndn::new(100).unwrap(),
            balance: 250,
        };
        let event = NewEvent::payment(
            &outcome,
            &"ch_1".into(),
            "ord_1",
            Stars(50),
            1_764_590_400_123,
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!(body["id"], event.id.as_str());
        assert_eq!(body["type"], "payment.credited");
        assert_eq!(body["created_at"], 1_764_590_400);
        assert_eq!(body["data"]["charge_id"], "ch_1");
        assert_eq!(body["data"]["amount"], 100);
        assert_eq!(body["data"]["balance"], 250);
        assert_eq!(body["data"]["stars"], 50);
        assert!(
            NewEvent::payment(&PaymentOutcome::Duplicate, &"ch_1".into(), "", Stars(50), 0)
                .is_none()
        );
    }
}
