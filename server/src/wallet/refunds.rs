//! What a refund does. The Stars are already back with the buyer when Telegram tells us, so the
//! NDN are debited even if they were spent: the balance may go below zero (the clawback, the
//! only way a buyer's account is overdrawn) and later purchases pay that back first.

use super::amounts::Ndn;
use super::ids::OrderId;
use super::model::{PaymentRecord, PaymentStatus, Transfer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundPlan {
    /// Take the purchase's NDN back (buyer → refunds); the payment, and its order if still
    /// paid, become refunded.
    Debit {
        transfer: Transfer,
        order_id: Option<OrderId>,
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
        Some(p) => match (p.status, Ndn::new(p.ndn)) {
            (PaymentStatus::Credited, Some(ndn)) => RefundPlan::Debit {
                transfer: Transfer::refund(p.user_id, ndn, &p.charge_id, p.stars),
                order_id: p.order_id.clone(),
            },
            (PaymentStatus::Credited | PaymentStatus::Held, _) => RefundPlan::CloseHeld,
            (PaymentStatus::Refunded, _) => RefundPlan::AlreadyRefunded,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::amounts::Stars;
    use crate::wallet::ids::UserId;

    #[test]
    fn refund_debits_credited_payments_once() {
        let mut record = PaymentRecord {
            charge_id: "c1".into(),
            user_id: UserId(7),
            order_id: Some("o1".into()),
            ndn: 500,
            stars: Stars(225),
            status: PaymentStatus::Credited,
        };
        assert_eq!(
            plan_refund(Some(&record)),
            RefundPlan::Debit {
                transfer: Transfer::refund(
                    UserId(7),
                    Ndn::new(500).unwrap(),
                    &"c1".into(),
                    Stars(225)
                ),
                order_id: Some("o1".into())
            }
        );
        record.status = PaymentStatus::Refunded;
        assert_eq!(plan_refund(Some(&record)), RefundPlan::AlreadyRefunded);
        record.status = PaymentStatus::Held;
        assert_eq!(plan_refund(Some(&record)), RefundPlan::CloseHeld);
        assert_eq!(plan_refund(None), RefundPlan::RecordUnknown);
    }

    /// A credited payment of no NDN (nothing to take back) is closed, never a transfer of 0.
    #[test]
    fn a_credited_payment_of_nothing_is_only_closed() {
        let record = PaymentRecord {
            charge_id: "c1".into(),
            user_id: UserId(7),
            order_id: None,
            ndn: 0,
            stars: Stars(1),
            status: PaymentStatus::Credited,
        };
        assert_eq!(plan_refund(Some(&record)), RefundPlan::CloseHeld);
        let one = PaymentRecord { ndn: 1, ..record };
        assert!(matches!(
            plan_refund(Some(&one)),
            RefundPlan::Debit { transfer, .. } if transfer.amount == Ndn::new(1).unwrap()
        ));
    }
}
