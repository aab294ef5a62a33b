//! The wallet's rules as plain functions: what a pre-checkout accepts, how a payment is
//! applied, what a refund does. Storage carries them out; it decides nothing.

use app::api::OrderState;

use crate::updates::PreCheckoutQuery;

pub const STARS: &str = "XTR";

/// An order as stored: a package at the server's price, waiting for Telegram's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub user_id: i64,
    pub package_id: String,
    pub ndn: i64,
    pub stars: i64,
    pub status: OrderState,
    /// Unix milliseconds.
    pub created_at: i64,
    pub expires_at: i64,
}

impl Order {
    /// The state a buyer sees: a pending order past its time is expired.
    pub fn state_at(&self, now_ms: i64) -> OrderState {
        if self.status == OrderState::Pending && now_ms >= self.expires_at {
            OrderState::Expired
        } else {
            self.status
        }
    }
}

/// Why a pre-checkout query is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownOrder,
    NotYourOrder,
    AlreadyPaid,
    Closed,
    Expired,
    WrongCurrency,
    WrongAmount,
}

impl Refusal {
    /// A stable label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownOrder => "unknown_order",
            Self::NotYourOrder => "not_your_order",
            Self::AlreadyPaid => "already_paid",
            Self::Closed => "closed",
            Self::Expired => "expired",
            Self::WrongCurrency => "wrong_currency",
            Self::WrongAmount => "wrong_amount",
        }
    }
}

/// Accepts a checkout only for the buyer's own open order, in Stars, at exactly its price.
pub fn judge_pre_checkout(
    order: Option<&Order>,
    query: &PreCheckoutQuery,
    now_ms: i64,
) -> Result<(), Refusal> {
    let order = order.ok_or(Refusal::UnknownOrder)?;
    if order.user_id != query.from.id {
        return Err(Refusal::NotYourOrder);
    }
    match order.state_at(now_ms) {
        OrderState::Pending => {}
        OrderState::Paid => return Err(Refusal::AlreadyPaid),
        OrderState::Expired => return Err(Refusal::Expired),
        OrderState::Refunded | OrderState::Failed => return Err(Refusal::Closed),
    }
    if query.currency != STARS {
        return Err(Refusal::WrongCurrency);
    }
    if query.total_amount != order.stars {
        return Err(Refusal::WrongAmount);
    }
    Ok(())
}

/// What to do with a `successful_payment`. Telegram has taken the Stars either way, so a
/// payment is always recorded; it is credited when it can be matched to what was sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentPlan {
    /// Credit `ndn` to the payer. `opens_order` is false for a second payment of an
    /// already-paid invoice link, which is credited as its own purchase.
    Credit {
        order_id: String,
        ndn: i64,
        opens_order: bool,
    },
    /// Record without credit, for the operator to credit or refund.
    Hold {
        order_id: Option<String>,
        reason: &'static str,
    },
}

/// Plans a payment of `total_amount` in `currency` whose payload named `order`.
pub fn plan_payment(order: Option<&Order>, currency: &str, total_amount: i64) -> PaymentPlan {
    let Some(order) = order else {
        return PaymentPlan::Hold {
            order_id: None,
            reason: "payload matches no order",
        };
    };
    let hold = |reason| PaymentPlan::Hold {
        order_id: Some(order.id.clone()),
        reason,
    };
    if currency != STARS {
        return hold("currency is not XTR");
    }
    if total_amount != order.stars {
        return hold("amount differs from the order's price");
    }
    PaymentPlan::Credit {
        order_id: order.id.clone(),
        ndn: order.ndn,
        opens_order: order.status != OrderState::Paid,
    }
}

/// A payment as stored, as far as a refund needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub charge_id: String,
    pub user_id: i64,
    pub order_id: Option<String>,
    pub ndn: i64,
    pub stars: i64,
    pub status: PaymentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Credited,
    Held,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credited => "credited",
            Self::Held => "held",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "credited" => Self::Credited,
            "held" => Self::Held,
            "refunded" => Self::Refunded,
            _ => return None,
        })
    }
}

/// What a refund does. The Stars are already back with the buyer when Telegram tells us, so
/// the NDN are debited even if they were spent: the balance may go below zero and later
/// purchases pay that back first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundPlan {
    Debit {
        user_id: i64,
        ndn: i64,
        order_id: Option<String>,
    },
    /// A held payment was never credited: only its status changes.
    CloseHeld,
    AlreadyRefunded,
    /// A refund of a charge we never saw: recorded so that a late payment of it is not credited.
    RecordUnknown,
}

pub fn plan_refund(payment: Option<&PaymentRecord>) -> RefundPlan {
    match payment {
        None => RefundPlan::RecordUnknown,
        Some(p) => match p.status {
            PaymentStatus::Credited => RefundPlan::Debit {
                user_id: p.user_id,
                ndn: p.ndn,
                order_id: p.order_id.clone(),
            },
            PaymentStatus::Held => RefundPlan::CloseHeld,
            PaymentStatus::Refunded => RefundPlan::AlreadyRefunded,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::User;

    fn order(status: OrderState) -> Order {
        Order {
            id: "o1".into(),
            user_id: 7,
            package_id: "ndn-500".into(),
            ndn: 500,
            stars: 225,
            status,
            created_at: 0,
            expires_at: 1_000,
        }
    }

    fn query(from: i64, currency: &str, amount: i64) -> PreCheckoutQuery {
        PreCheckoutQuery {
            id: "q".into(),
            from: User {
                id: from,
                first_name: "A".into(),
                username: None,
                language_code: None,
            },
            currency: currency.into(),
            total_amount: amount,
            invoice_payload: "o1".into(),
        }
    }

    #[test]
    fn pre_checkout_accepts_only_the_owners_open_order_at_its_price() {
        let open = order(OrderState::Pending);
        assert_eq!(
            judge_pre_checkout(Some(&open), &query(7, "XTR", 225), 10),
            Ok(())
        );
        assert_eq!(
            judge_pre_checkout(None, &query(7, "XTR", 225), 10),
            Err(Refusal::UnknownOrder)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), &query(8, "XTR", 225), 10),
            Err(Refusal::NotYourOrder)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), &query(7, "XTS", 225), 10),
            Err(Refusal::WrongCurrency)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), &query(7, "XTR", 22_500), 10),
            Err(Refusal::WrongAmount)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), &query(7, "XTR", 225), 1_000),
            Err(Refusal::Expired)
        );
        let paid = order(OrderState::Paid);
        assert_eq!(
            judge_pre_checkout(Some(&paid), &query(7, "XTR", 225), 10),
            Err(Refusal::AlreadyPaid)
        );
        let refunded = order(OrderState::Refunded);
        assert_eq!(
            judge_pre_checkout(Some(&refunded), &query(7, "XTR", 225), 10),
            Err(Refusal::Closed)
        );
    }

    #[test]
    fn payment_for_an_open_order_credits_its_package() {
        let plan = plan_payment(Some(&order(OrderState::Pending)), "XTR", 225);
        assert_eq!(
            plan,
            PaymentPlan::Credit {
                order_id: "o1".into(),
                ndn: 500,
                opens_order: true
            }
        );
    }

    #[test]
    fn second_payment_of_a_paid_link_is_still_credited() {
        let plan = plan_payment(Some(&order(OrderState::Paid)), "XTR", 225);
        assert_eq!(
            plan,
            PaymentPlan::Credit {
                order_id: "o1".into(),
                ndn: 500,
                opens_order: false
            }
        );
    }

    #[test]
    fn payment_after_expiry_is_credited() {
        let plan = plan_payment(Some(&order(OrderState::Expired)), "XTR", 225);
        assert!(matches!(
            plan,
            PaymentPlan::Credit {
                opens_order: true,
                ..
            }
        ));
    }

    #[test]
    fn unmatched_payments_are_held_not_dropped() {
        assert!(matches!(
            plan_payment(None, "XTR", 225),
            PaymentPlan::Hold { order_id: None, .. }
        ));
        assert!(matches!(
            plan_payment(Some(&order(OrderState::Pending)), "XTR", 1),
            PaymentPlan::Hold {
                order_id: Some(_),
                ..
            }
        ));
        assert!(matches!(
            plan_payment(Some(&order(OrderState::Pending)), "USD", 225),
            PaymentPlan::Hold { .. }
        ));
    }

    #[test]
    fn refund_debits_credited_payments_once() {
        let mut record = PaymentRecord {
            charge_id: "c1".into(),
            user_id: 7,
            order_id: Some("o1".into()),
            ndn: 500,
            stars: 225,
            status: PaymentStatus::Credited,
        };
        assert_eq!(
            plan_refund(Some(&record)),
            RefundPlan::Debit {
                user_id: 7,
                ndn: 500,
                order_id: Some("o1".into())
            }
        );
        record.status = PaymentStatus::Refunded;
        assert_eq!(plan_refund(Some(&record)), RefundPlan::AlreadyRefunded);
        record.status = PaymentStatus::Held;
        assert_eq!(plan_refund(Some(&record)), RefundPlan::CloseHeld);
        assert_eq!(plan_refund(None), RefundPlan::RecordUnknown);
    }
}
