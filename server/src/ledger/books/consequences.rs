//! What a committed change brings with it, built here and nowhere else: the buyer's notice, the
//! operator's signed event and the live balance, from the change's outcome. The store writes
//! them in the change's transaction ([`crate::store::write_consequences`]). A new kind of
//! outcome is a new [`Committed`] arm and its lines in [`Consequences::add`].

use app::api::{BalanceEvent, OrderState};
use app::i18n::Lang;
use sqlx::{Any, Transaction};

use crate::contract::event::NewEvent;
use crate::store::{self, BalanceNote, Engine, StoreError, StoreResult, StreamServer};
use crate::wallet::amounts::Stars;
use crate::wallet::ids::{ChargeId, OrderId, UserId};
use crate::wallet::model::{Notice, OutgoingMessage, PaymentOutcome, RefundOutcome};
use crate::wallet::operations::Receipt;

/// A change the books committed (or are about to, in the same transaction), with what its
/// consequences need to know. `language` is the buyer's, for the notice.
pub(super) enum Committed<'a> {
    /// A payment credited or held: a `successful_payment` recorded, or (`by_operator`) a held
    /// payment the operator credited. `payer`: the buyer who paid.
    Payment {
        payer: UserId,
        outcome: &'a PaymentOutcome,
        charge_id: &'a ChargeId,
        payload: &'a str,
        stars: Stars,
        language: Lang,
        by_operator: bool,
    },
    /// A refund (`user_id`: the buyer Telegram names; the outcome names who was debited).
    Refund {
        outcome: &'a RefundOutcome,
        charge_id: &'a ChargeId,
        user_id: UserId,
        stars: Stars,
        language: Lang,
    },
    /// An applied service request or console grant.
    Operation {
        receipt: &'a Receipt,
        language: Lang,
    },
}

/// The consequences of the changes in one transaction, as the store's rows, in the words of
/// `notice`.
pub(super) struct Consequences {
    notice: &'static (dyn Notice + Sync),
    rows: store::Consequences,
}

impl Consequences {
    pub(super) fn new(notice: &'static (dyn Notice + Sync)) -> Self {
        Self {
            notice,
            rows: store::Consequences::default(),
        }
    }

    /// Adds what `change` brings with it.
    pub(super) fn add(&mut self, change: Committed<'_>, now: i64) -> StoreResult<()> {
        let (notice, rows) = (self.notice, &mut self.rows);
        match change {
            Committed::Payment {
                payer,
                outcome,
                charge_id,
                payload,
                stars,
                language,
                by_operator,
            } => {
                if *outcome != PaymentOutcome::Duplicate {
                    let key = if by_operator {
                        "credit-held"
                    } else {
                        "payment"
                    };
                    rows.messages.extend(message(
                        format!("{key}:{charge_id}"),
                        payer,
                        notice.payment(language, outcome, stars),
                    ));
                }
                rows.events.extend(
                    NewEvent::payment(outcome, charge_id, payload, stars, now)
                        .map(NewEvent::into_row),
                );
                if let PaymentOutcome::Credited {
                    user_id,
                    order_id,
                    balance,
                    ..
                } = outcome
                {
                    // An operator's credit does not name the order to the Mini App.
                    let order_id = (!by_operator).then(|| order_id.clone());
                    rows.balances
                        .push(note(*user_id, *balance, order_id, Some(OrderState::Paid))?);
                }
            }
            Committed::Refund {
                outcome,
                charge_id,
                user_id,
                stars,
                language,
            } => {
                rows.events.extend(
                    NewEvent::refund(outcome, charge_id, user_id, stars, now)
                        .map(NewEvent::into_row),
                );
                if let RefundOutcome::Debited {
                    user_id,
                    order_id,
                    balance,
                    ..
                } = outcome
                {
                    rows.messages.extend(message(
                        format!("refund:{charge_id}"),
                        *user_id,
                        notice.refund(language, outcome, stars),
                    ));
                    rows.balances.push(note(
                        *user_id,
                        *balance,
                        order_id.clone(),
                        Some(OrderState::Refunded),
                    )?);
                }
            }
            Committed::Operation { receipt, language } => {
                let user_id = receipt.user_id();
                rows.events.push(NewEvent::receipt(receipt, now).into_row());
                if let Receipt::Credit { id, .. } = receipt {
                    rows.messages.extend(message(
                        format!("credit:{id}"),
                        user_id,
                        notice.credit(language, receipt),
                    ));
                }
                rows.balances
                    .push(note(user_id, receipt.funds().balance, None, None)?);
            }
        }
        Ok(())
    }

    /// Writes them in `tx`, the transaction of their changes.
    pub(super) async fn write(
        &self,
        tx: &mut Transaction<'_, Any>,
        engine: Engine,
        reach: StreamServer,
        now: i64,
    ) -> StoreResult<()> {
        store::write_consequences(tx, engine, reach, &self.rows, now).await
    }
}

/// A notice for the buyer, in their private chat with the bot, when it has something to say.
fn message(dedupe_key: String, to: UserId, text: Option<String>) -> Option<OutgoingMessage> {
    Some(OutgoingMessage {
        dedupe_key,
        chat_id: to.private_chat(),
        text: text?,
        reply_markup: None,
    })
}

/// The live event of a buyer's new balance (and the order it concerns, if any).
fn note(
    user_id: UserId,
    balance: i64,
    order_id: Option<OrderId>,
    status: Option<OrderState>,
) -> StoreResult<BalanceNote> {
    let event = BalanceEvent {
        balance,
        order_id: order_id.map(|id| id.0),
        status,
    };
    Ok(BalanceNote {
        user_id,
        event: serde_json::to_string(&event)
            .map_err(|error| StoreError::Corrupt(format!("balance event: {error}")))?,
    })
}
