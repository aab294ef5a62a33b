//! Orders and the pre-checkout: what Telegram may charge for.

/// An order's state is the one the Mini App shows: the rules and the UI share the type.
pub use app::api::{OrderState, Package};

use super::amounts::{Ndn, Stars};
use super::ids::{OrderId, UserId};

pub const STARS: &str = "XTR";

/// An order as stored: a package at the server's price, waiting for Telegram's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user_id: UserId,
    pub package_id: String,
    pub ndn: Ndn,
    pub stars: Stars,
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

/// A buyer about to pay: who, in which currency, how much (what a `pre_checkout_query` asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkout<'a> {
    pub buyer: UserId,
    pub currency: &'a str,
    pub total_amount: Stars,
}

/// Accepts a checkout only for the buyer's own open order, in Stars, at exactly its price.
pub fn judge_pre_checkout(
    order: Option<&Order>,
    query: Checkout<'_>,
    now_ms: i64,
) -> Result<(), Refusal> {
    let order = order.ok_or(Refusal::UnknownOrder)?;
    if order.user_id != query.buyer {
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

#[cfg(test)]
impl Order {
    /// Buyer 7's order `id` of 500 NDN for 225 Stars, expiring at 1 000 ms.
    pub(crate) fn sample(id: &str, status: OrderState) -> Self {
        Self {
            id: id.into(),
            user_id: UserId(7),
            package_id: "ndn-500".into(),
            ndn: Ndn::new(500).unwrap(),
            stars: Stars(225),
            status,
            created_at: 0,
            expires_at: 1_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels of `ndn_pre_checkout_refusals_total{reason}`: dashboards and alerts use them.
    #[test]
    fn refusals_have_fixed_labels() {
        let labels = [
            (Refusal::UnknownOrder, "unknown_order"),
            (Refusal::NotYourOrder, "not_your_order"),
            (Refusal::AlreadyPaid, "already_paid"),
            (Refusal::Closed, "closed"),
            (Refusal::Expired, "expired"),
            (Refusal::WrongCurrency, "wrong_currency"),
            (Refusal::WrongAmount, "wrong_amount"),
        ];
        for (refusal, label) in labels {
            assert_eq!(refusal.label(), label);
        }
    }

    fn order(status: OrderState) -> Order {
        Order::sample("o1", status)
    }

    fn query(from: i64, currency: &str, amount: i64) -> Checkout<'_> {
        Checkout {
            buyer: UserId(from),
            currency,
            total_amount: Stars(amount),
        }
    }

    #[test]
    fn pre_checkout_accepts_only_the_owners_open_order_at_its_price() {
        let open = order(OrderState::Pending);
        assert_eq!(
            judge_pre_checkout(Some(&open), query(7, "XTR", 225), 10),
            Ok(())
        );
        assert_eq!(
            judge_pre_checkout(None, query(7, "XTR", 225), 10),
            Err(Refusal::UnknownOrder)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), query(8, "XTR", 225), 10),
            Err(Refusal::NotYourOrder)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), query(7, "XTS", 225), 10),
            Err(Refusal::WrongCurrency)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), query(7, "XTR", 22_500), 10),
            Err(Refusal::WrongAmount)
        );
        assert_eq!(
            judge_pre_checkout(Some(&open), query(7, "XTR", 225), 1_000),
            Err(Refusal::Expired)
        );
        let paid = order(OrderState::Paid);
        assert_eq!(
            judge_pre_checkout(Some(&paid), query(7, "XTR", 225), 10),
            Err(Refusal::AlreadyPaid)
        );
        let refunded = order(OrderState::Refunded);
        assert_eq!(
            judge_pre_checkout(Some(&refunded), query(7, "XTR", 225), 10),
            Err(Refusal::Closed)
        );
    }
}
