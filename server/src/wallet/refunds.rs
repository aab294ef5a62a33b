//! What a refund does. The Stars are already back with the buyer when Telegram tells us, so the
//! NDN are debited even if they were spent: the balance may go below zero (the clawback, the
//! only way a buyer's account is overdrawn) and later purchases pay that back first.

use super::model::{PaymentRecord, PaymentStatus, Transfer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundPlan {
    /// Take the purchase's NDN back (buyer → refunds); the payment, and its order if still
    /// paid, become refunded.
    Debit {
        transfer: Transfer,
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
            PaymentStatus::Credited if p.ndn > 0 => RefundPlan::Debit {
                transfer: Transfer::refund(p.user_id, p.ndn, &p.charge_id, p.stars),
                order_id: p.order_id.clone(),
            },
            PaymentStatus::Credited | PaymentStatus::Held => RefundPlan::CloseHeld,
            PaymentStatus::Refunded => RefundPlan::AlreadyRefunded,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                transfer: Transfer::refund(7, 500, "c1", 225),
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
            user_id: 7,
            order_id: None,
            ndn: 0,
            stars: 1,
            status: PaymentStatus::Credited,
        };
        assert_eq!(plan_refund(Some(&record)), RefundPlan::CloseHeld);
        let one = PaymentRecord { ndn: 1, ..record };
        assert!(matches!(
            plan_refund(Some(&one)),
            RefundPlan::Debit { transfer, .. } if transfer.amount == 1
        ));
    }
}
