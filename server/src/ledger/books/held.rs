//! Crediting a held payment from the console: the purchase it would have been (sales → buyer,
//! with its Stars), once, in the transaction of its audit row. A credit is a sale, not a grant:
//! the Stars were received, so the books count them as sold (and `ledger verify` agrees).

use app::i18n::Lang;
use sqlx::AssertSqlSafe;

use super::Books;
use super::accounts;
use super::consequences::{Committed, Consequences};
use crate::clock::now_ms;
use crate::store::{
    ActionResult, Engine, NewAction, StoreResult, StreamServer, earlier_result, language_of,
};
use crate::wallet::amounts::{Ndn, Stars};
use crate::wallet::ids::{ChargeId, OrderId, UserId};
use crate::wallet::model::{PaymentOutcome, Transfer};
use crate::wallet::payments::credit_for;

/// A payment as crediting it reads it: buyer, order, Stars, status, payload, hold reason, and
/// its order's NDN.
type HeldRow = (
    UserId,
    Option<OrderId>,
    Stars,
    String,
    String,
    Option<String>,
    Option<Ndn>,
);

/// A held payment credited now: what the ledger's effects need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) struct HeldCredit {
    pub outcome: PaymentOutcome,
    pub payload: String,
    pub stars: Stars,
}

impl Books {
    /// Credits the held payment `charge_id` with its order's NDN, or with the package of its
    /// price (`prices`: Stars → NDN) when it has no order. Anything but a held payment is left
    /// as it is, and the result says why.
    pub(in crate::ledger) async fn credit_held(
        &self,
        charge_id: &ChargeId,
        prices: &[(i64, i64)],
        reach: StreamServer,
        action: &NewAction,
    ) -> StoreResult<(ActionResult, Option<HeldCredit>)> {
        let now = now_ms();
        let engine = self.store.engine();
        let mut tx = self.store.write().await?;
        if let Some(earlier) = earlier_result(&mut *tx, &action.id).await? {
            return Ok((ActionResult::Repeated(earlier), None));
        }
        // A second credit of the same charge (another id, another instance) waits here.
        let lock = match engine {
            Engine::Postgres => " FOR UPDATE OF p",
            Engine::Sqlite => "",
        };
        let row = sqlx::query_as::<_, HeldRow>(AssertSqlSafe(format!(
            "SELECT p.user_id, p.order_id, p.stars, p.status, p.payload, p.hold_reason, o.ndn
             FROM payments p LEFT JOIN orders o ON o.id = p.order_id
             WHERE p.charge_id = $1{lock}"
        )))
        .bind(charge_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut credit = None;
        let result = match row {
            None => format!("no payment with charge id {charge_id}"),
            Some((user_id, order_id, stars, status, payload, reason, order_ndn)) => {
                let ndn = credit_for(order_ndn, stars, prices);
                match (status.as_str(), ndn) {
                    ("held", Some(ndn)) => {
                        let mut transfer = Transfer::purchase(user_id, ndn, charge_id, stars);
                        transfer.reason = Some(format!(
                            "held ({}), credited by operator {}",
                            reason.as_deref().unwrap_or("no reason"),
                            action.operator_id
                        ));
                        let balances =
                            accounts::post(&mut tx, engine, &[transfer], Default::default(), now)
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
                            order_id: order_id.unwrap_or_else(|| OrderId(payload.clone())),
                            ndn,
                            balance,
                        };
                        let language = language_of(&mut tx, user_id).await?;
                        let mut consequences = Consequences::new(self.notice);
                        consequences.add(
                            Committed::Payment {
                                payer: user_id,
                                outcome: &outcome,
                                charge_id,
                                payload: &payload,
                                stars,
                                language: Lang::from_code(&language),
                                by_operator: true,
                            },
                            now,
                        )?;
                        consequences.write(&mut tx, engine, reach, now).await?;
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
        match self.store.finish(tx, action, result, now).await? {
            done @ ActionResult::Done(_) => Ok((done, credit)),
            // Another tap with this id got there first: this one changed nothing.
            repeated => Ok((repeated, None)),
        }
    }
}
