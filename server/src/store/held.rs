//! Crediting a held payment from the console: the purchase it would have been (sales → buyer,
//! with its Stars), once, in the transaction of its audit row. A credit is a sale, not a grant:
//! the Stars were received, so the books count them as sold (and `ledger verify` agrees).

use app::api::{BalanceEvent, OrderState};
use sqlx::Row;

use super::broadcast::{BalanceBroadcast, StreamServer, balances_changed};
use super::console::{ActionResult, NewAction, earlier_result};
use super::events;
use super::outbox::enqueue;
use super::refunds::language_of;
use super::{Engine, Store, StoreResult, transfers};
use crate::clock::now_ms;
use crate::outgoing::event::NewEvent;
use crate::wallet::model::{Notice, OutgoingMessage, PaymentOutcome, Transfer};

/// A held payment credited now: what the ledger's effects need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCredit {
    pub outcome: PaymentOutcome,
    pub payload: String,
    pub stars: i64,
}

/// What crediting a held payment of `stars` gives: its order's NDN, else the package of that
/// price (`prices`: Stars → NDN), else nothing.
pub fn credit_for(order_ndn: Option<i64>, stars: i64, prices: &[(i64, i64)]) -> Option<i64> {
    order_ndn.or_else(|| {
        prices
            .iter()
            .find(|(price, _)| *price == stars)
            .map(|(_, ndn)| *ndn)
    })
}

impl Store {
    /// Credits the held payment `charge_id` with its order's NDN, or with the package of its
    /// price (`prices`: Stars → NDN) when it has no order. Anything but a held payment is left
    /// as it is, and the result says why.
    pub async fn credit_held(
        &self,
        charge_id: &str,
        prices: &[(i64, i64)],
        notice: &(dyn Notice + Sync),
        reach: StreamServer,
        action: &NewAction,
    ) -> StoreResult<(ActionResult, Option<HeldCredit>)> {
        let now = now_ms();
        let mut tx = self.write().await?;
        if let Some(earlier) = earlier_result(&mut *tx, &action.id).await? {
            return Ok((ActionResult::Repeated(earlier), None));
        }
        // A second credit of the same charge (another id, another instance) waits here.
        let lock = match self.engine {
            Engine::Postgres => " FOR UPDATE OF p",
            Engine::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT p.user_id, p.order_id, p.stars, p.status, p.payload, p.hold_reason, o.ndn
             FROM payments p LEFT JOIN orders o ON o.id = p.order_id
             WHERE p.charge_id = $1{lock}"
        ))
        .bind(charge_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut credit = None;
        let result = match row {
            None => format!("no payment with charge id {charge_id}"),
            Some(row) => {
                let user_id: i64 = row.try_get(0)?;
                let order_id: Option<String> = row.try_get(1)?;
                let stars: i64 = row.try_get(2)?;
                let status: String = row.try_get(3)?;
                let payload: String = row.try_get(4)?;
                let reason: Option<String> = row.try_get(5)?;
                let order_ndn: Option<i64> = row.try_get(6)?;
                let ndn = credit_for(order_ndn, stars, prices);
                match (status.as_str(), ndn) {
                    ("held", Some(ndn)) => {
                        let mut transfer = Transfer::purchase(user_id, ndn, charge_id, stars);
                        transfer.reason = Some(format!(
                            "held ({}), credited by operator {}",
                            reason.as_deref().unwrap_or("no reason"),
                            action.operator_id
                        ));
                        let balances = transfers::post(
                            &mut tx,
                            self.engine,
                            &[transfer],
                            Default::default(),
                            now,
                        )
                        .await?;
                        let balance = balances.get(&user_id).copied().unwrap_or_default();
                        sqlx::query(
                            "UPDATE payments SET status = 'credited', ndn = $2 WHERE charge_id = $1",
                        )
                        .bind(charge_id)
                        .bind(ndn)
                        .execute(&mut *tx)
                        .await?;
                        if let Some(order_id) = &order_id {
                            sqlx::query(
                                "UPDATE orders SET status = 'paid', paid_at = $2
                                 WHERE id = $1 AND status IN ('pending', 'expired', 'failed')",
                            )
                            .bind(order_id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        let outcome = PaymentOutcome::Credited {
                            user_id,
                            order_id: order_id.unwrap_or_else(|| payload.clone()),
                            ndn,
                            balance,
                        };
                        let language = language_of(&mut tx, user_id).await?;
                        if let Some(text) = notice.payment(&language, &outcome, stars) {
                            let message = OutgoingMessage {
                                dedupe_key: format!("credit-held:{charge_id}"),
                                chat_id: user_id,
                                text,
                                reply_markup: None,
                            };
                            enqueue(&mut tx, self.engine, &message, now).await?;
                        }
                        let change = BalanceBroadcast {
                            user_id,
                            event: BalanceEvent {
                                balance,
                                order_id: None,
                                status: Some(OrderState::Paid),
                            },
                        };
                        balances_changed(&mut tx, self.engine, reach, &[change]).await?;
                        if let Some(event) =
                            NewEvent::payment(&outcome, charge_id, &payload, stars, now)
                        {
                            events::record(&mut tx, self.engine, &[event]).await?;
                        }
                        credit = Some(HeldCredit {
                            outcome,
                            payload,
                            stars,
                        });
                        format!(
                            "credited {ndn} NDN for {stars} Stars to buyer {user_id}; balance now {balance}"
                        )
                    }
                    ("held", None) => format!(
                        "no order or package for {stars} Stars: nothing credited (grant by hand)"
                    ),
                    (status, _) => format!("the payment is {status}: nothing to credit"),
                }
            }
        };
        match self.finish(tx, action, result, now).await? {
            done @ ActionResult::Done(_) => Ok((done, credit)),
            // Another tap with this id got there first: this one changed nothing.
            repeated => Ok((repeated, None)),
        }
    }
}
