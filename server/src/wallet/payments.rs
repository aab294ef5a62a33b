//! What a `successful_payment` becomes, alone and in a batch. Telegram has taken the Stars
//! either way, so a payment is always recorded; it is credited when it matches what was sold.

use std::collections::{HashMap, HashSet};

use app::api::OrderState;

use super::amounts::{Ndn, Stars};
use super::checkout::{Order, STARS};
use super::ids::{OrderId, UserId};
use super::model::{IncomingPayment, PaymentOutcome, PaymentStatus, Transfer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentPlan {
    /// Credit `ndn` to the payer. `opens_order`: the order is paid by this payment (it was
    /// pending, expired or failed); a second payment of a paid link, or a payment of a
    /// refunded order, is credited as its own purchase and leaves the order as it is.
    Credit {
        order_id: OrderId,
        ndn: Ndn,
        opens_order: bool,
    },
    /// Record without credit, for the operator to credit or refund.
    Hold {
        order_id: Option<OrderId>,
        reason: &'static str,
    },
}

impl PaymentPlan {
    pub fn status(&self) -> PaymentStatus {
        match self {
            Self::Credit { .. } => PaymentStatus::Credited,
            Self::Hold { .. } => PaymentStatus::Held,
        }
    }

    pub fn order_id(&self) -> Option<&OrderId> {
        match self {
            Self::Credit { order_id, .. } => Some(order_id),
            Self::Hold { order_id, .. } => order_id.as_ref(),
        }
    }

    /// NDN credited (0 when held).
    pub fn ndn(&self) -> i64 {
        match self {
            Self::Credit { ndn, .. } => ndn.get(),
            Self::Hold { .. } => 0,
        }
    }

    pub fn hold_reason(&self) -> Option<&'static str> {
        match self {
            Self::Credit { .. } => None,
            Self::Hold { reason, .. } => Some(reason),
        }
    }

    /// The transfer a credit makes: sales → payer.
    pub fn transfer(&self, payer: UserId, payment: &IncomingPayment) -> Option<Transfer> {
        match self {
            Self::Credit { ndn, .. } => Some(Transfer::purchase(
                payer,
                *ndn,
                &payment.charge_id,
                payment.stars,
            )),
            Self::Hold { .. } => None,
        }
    }
}

/// Plans a payment of `total_amount` in `currency` whose payload named `order`.
pub fn plan_payment(order: Option<&Order>, currency: &str, total_amount: Stars) -> PaymentPlan {
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
        opens_order: matches!(
            order.status,
            OrderState::Pending | OrderState::Expired | OrderState::Failed
        ),
    }
}

/// One payment of a batch: who paid, and what Telegram reported.
#[derive(Debug, Clone, Copy)]
pub struct BatchPayment<'a> {
    pub payer: UserId,
    pub payment: &'a IncomingPayment,
}

/// Plans a batch as if its payments were applied one at a time, in order: each charge is
/// planned at its first occurrence, against the order its payload names; a charge repeated
/// later in the batch is a duplicate (`None`). A plan does not depend on payments of the same
/// order earlier in the batch (a second payment of a link is credited just the same), so one
/// read of the orders serves the whole batch.
pub fn plan_batch(
    batch: &[BatchPayment<'_>],
    orders: &HashMap<OrderId, Order>,
) -> Vec<Option<PaymentPlan>> {
    let mut seen = HashSet::with_capacity(batch.len());
    batch
        .iter()
        .map(|item| {
            let payment = item.payment;
            seen.insert(payment.charge_id.as_str()).then(|| {
                plan_payment(
                    orders.get(payment.payload.as_str()),
                    &payment.currency,
                    payment.stars,
                )
            })
        })
        .collect()
}

/// The orders paid for the first time by the `applied` plans, each once.
pub fn orders_opened<'a>(applied: &[Option<&'a PaymentPlan>]) -> Vec<&'a OrderId> {
    let mut opened: Vec<&OrderId> = applied
        .iter()
        .flatten()
        .filter_map(|plan| match plan {
            PaymentPlan::Credit {
                order_id,
                opens_order: true,
                ..
            } => Some(order_id),
            _ => None,
        })
        .collect();
    opened.sort_unstable();
    opened.dedup();
    opened
}

/// A credited buyer whose balance the store did not return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no balance for credited buyer {0}")]
pub struct MissingBalance(pub UserId);

/// The outcome of each payment of a batch. `applied`: the plan of each payment recorded now
/// (`None`: a duplicate, of an earlier batch or of this one). `balances_after`: each credited
/// buyer's balance after the whole batch. Each credit tells the balance right after it, as if
/// the batch had been applied one payment at a time.
pub fn settle_batch(
    batch: &[BatchPayment<'_>],
    applied: &[Option<&PaymentPlan>],
    balances_after: &HashMap<UserId, i64>,
) -> Result<Vec<PaymentOutcome>, MissingBalance> {
    let mut balances = balances_after.clone();
    let mut outcomes = vec![PaymentOutcome::Duplicate; batch.len()];
    for (index, (item, plan)) in batch.iter().zip(applied).enumerate().rev() {
        outcomes[index] = match plan {
            None => PaymentOutcome::Duplicate,
            Some(PaymentPlan::Hold { reason, .. }) => PaymentOutcome::Held {
                user_id: item.payer,
                reason,
            },
            Some(PaymentPlan::Credit { order_id, ndn, .. }) => {
                let balance = balances
                    .get_mut(&item.payer)
                    .ok_or(MissingBalance(item.payer))?;
                let after = *balance;
                *balance -= ndn.get();
                PaymentOutcome::Credited {
                    user_id: item.payer,
                    order_id: order_id.clone(),
                    ndn: *ndn,
                    balance: after,
                }
            }
        };
    }
    Ok(outcomes)
}

/// What crediting a held payment of `stars` gives: its order's NDN, else the package of that
/// price (`prices`: Stars → NDN), else nothing.
pub fn credit_for(order_ndn: Option<Ndn>, stars: Stars, prices: &[(i64, i64)]) -> Option<Ndn> {
    order_ndn.or_else(|| {
        prices
            .iter()
            .find(|(price, _)| *price == stars.get())
            .and_then(|(_, ndn)| Ndn::new(*ndn))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, status: OrderState) -> Order {
        Order::sample(id, status)
    }

    fn payment(charge: &str, payload: &str, stars: i64) -> IncomingPayment {
        IncomingPayment::in_stars(charge, payload, stars)
    }

    /// What the payments' row stores of a plan: its status, NDN and why it is held.
    #[test]
    fn a_plan_says_what_its_payment_row_stores() {
        let credit = plan_payment(Some(&order("o1", OrderState::Pending)), "XTR", Stars(225));
        assert_eq!(
            (
                credit.status(),
                credit.ndn(),
                credit.hold_reason(),
                credit.order_id().map(OrderId::as_str)
            ),
            (PaymentStatus::Credited, 500, None, Some("o1"))
        );
        let held = plan_payment(None, "XTR", Stars(225));
        assert_eq!(
            (
                held.status(),
                held.ndn(),
                held.hold_reason(),
                held.order_id()
            ),
            (
                PaymentStatus::Held,
                0,
                Some("payload matches no order"),
                None
            )
        );
    }

    #[test]
    fn payment_for_an_open_order_credits_its_package_and_opens_it() {
        for status in [OrderState::Pending, OrderState::Expired, OrderState::Failed] {
            assert_eq!(
                plan_payment(Some(&order("o1", status)), "XTR", Stars(225)),
                PaymentPlan::Credit {
                    order_id: "o1".into(),
                    ndn: Ndn::new(500).unwrap(),
                    opens_order: true
                },
                "{status:?}"
            );
        }
    }

    #[test]
    fn second_payment_of_a_paid_or_refunded_link_is_credited_and_leaves_the_order() {
        for status in [OrderState::Paid, OrderState::Refunded] {
            let plan = plan_payment(Some(&order("o1", status)), "XTR", Stars(225));
            assert_eq!(
                plan,
                PaymentPlan::Credit {
                    order_id: "o1".into(),
                    ndn: Ndn::new(500).unwrap(),
                    opens_order: false
                }
            );
            let credit = payment("c2", "o1", 225);
            assert_eq!(
                plan.transfer(UserId(7), &credit),
                Some(Transfer::purchase(
                    UserId(7),
                    Ndn::new(500).unwrap(),
                    &"c2".into(),
                    Stars(225)
                ))
            );
        }
    }

    #[test]
    fn unmatched_payments_are_held_not_dropped() {
        assert!(matches!(
            plan_payment(None, "XTR", Stars(225)),
            PaymentPlan::Hold { order_id: None, .. }
        ));
        let open = order("o1", OrderState::Pending);
        let wrong_amount = plan_payment(Some(&open), "XTR", Stars(1));
        assert_eq!(wrong_amount.order_id().map(OrderId::as_str), Some("o1"));
        assert_eq!(wrong_amount.status(), PaymentStatus::Held);
        assert_eq!(
            wrong_amount.transfer(UserId(7), &payment("c", "o1", 1)),
            None
        );
        assert!(matches!(
            plan_payment(Some(&open), "USD", Stars(225)),
            PaymentPlan::Hold { .. }
        ));
    }

    #[test]
    fn a_charge_repeated_inside_a_batch_is_planned_once() {
        let orders = HashMap::from([(OrderId::from("o1"), order("o1", OrderState::Pending))]);
        let (first, again, other) = (
            payment("c1", "o1", 225),
            payment("c1", "o1", 225),
            payment("c2", "o1", 225),
        );
        let batch = [
            BatchPayment {
                payer: UserId(7),
                payment: &first,
            },
            BatchPayment {
                payer: UserId(7),
                payment: &again,
            },
            BatchPayment {
                payer: UserId(7),
                payment: &other,
            },
        ];
        let plans = plan_batch(&batch, &orders);
        assert!(plans[0].is_some());
        assert_eq!(plans[1], None, "the copy is a duplicate");
        assert!(
            matches!(
                plans[2],
                Some(PaymentPlan::Credit {
                    opens_order: true,
                    ..
                })
            ),
            "a second payment planned from the same read of the order"
        );
        let applied: Vec<Option<&PaymentPlan>> = plans.iter().map(Option::as_ref).collect();
        assert_eq!(orders_opened(&applied), [&OrderId::from("o1")]);
    }

    #[test]
    fn each_credit_of_a_batch_tells_the_balance_right_after_it() {
        let orders = HashMap::from([
            (OrderId::from("o1"), order("o1", OrderState::Pending)),
            (OrderId::from("o2"), order("o2", OrderState::Pending)),
        ]);
        let payments = [
            payment("a", "o1", 225),
            payment("b", "nowhere", 225),
            payment("c", "o2", 225),
            payment("d", "o1", 225),
        ];
        let batch: Vec<BatchPayment> = payments
            .iter()
            .map(|payment| BatchPayment {
                payer: UserId(7),
                payment,
            })
            .collect();
        let plans = plan_batch(&batch, &orders);
        // `d` was recorded by an earlier batch: a duplicate after all.
        let applied: Vec<Option<&PaymentPlan>> = plans
            .iter()
            .enumerate()
            .map(|(index, plan)| plan.as_ref().filter(|_| index != 3))
            .collect();
        // 200 before the batch, two credits of 500.
        let outcomes =
            settle_batch(&batch, &applied, &HashMap::from([(UserId(7), 1_200)])).unwrap();
        let told: Vec<Option<i64>> = outcomes
            .iter()
            .map(|outcome| match outcome {
                PaymentOutcome::Credited { balance, .. } => Some(*balance),
                _ => None,
            })
            .collect();
        assert_eq!(told, [Some(700), None, Some(1_200), None]);
        assert!(matches!(
            outcomes[1],
            PaymentOutcome::Held {
                user_id: UserId(7),
                ..
            }
        ));
        assert_eq!(outcomes[3], PaymentOutcome::Duplicate);
        assert_eq!(
            settle_batch(&batch, &applied, &HashMap::new()),
            Err(MissingBalance(UserId(7)))
        );
    }
}
