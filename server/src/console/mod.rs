//! The operator console behind its server functions (`app::console`): figures, held payments,
//! buyers, health, and the operator's actions — each balance change through the ledger's one
//! door with its audit row in the same transaction — and the download of the books
//! (`download.rs`).

mod download;
pub mod export;
pub mod reads;

use download::ExportLinks;
pub use download::{ExportQuery, Period, router};

use std::sync::Mutex;
use std::time::{Duration, Instant};

use app::api::ApiError;
use app::backend::ConsoleBackend;
use app::console::{
    ActionDone, BuyerCard, Day, Health, HeldPayment, KeyLine, Overview, StarBalance, TransferLine,
};
use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::bot::operator::{self, OpsError};
use crate::clock::{DAY_MS, now_ms};
use crate::state::AppState;
use crate::store::{ActionResult, NewAction, StatementEntry};
use crate::wallet::amounts::Ndn;
use crate::wallet::ids::{ChargeId, UserId};
use crate::wallet::operations::{Decision, IdempotencyKey, MAX_AMOUNT, Operation, Request};

/// How long `getMyStarBalance`'s answer is shown before Telegram is asked again.
const STAR_BALANCE_FRESH: Duration = Duration::from_secs(60);
/// How long a download link works.
const EXPORT_LINK_LIFETIME_SECS: i64 = 300;
/// The API key id under which the console's grants remember their answers (real keys start at 1).
const CONSOLE_KEY_ID: i64 = 0;
const LISTED: i64 = 100;

pub struct OperatorConsole {
    state: AppState,
    star_balance: Mutex<Option<(StarBalance, Instant)>>,
}

impl OperatorConsole {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            star_balance: Mutex::new(None),
        }
    }

    /// The bot's Stars, read from Telegram at most once a minute; the last reading (with its
    /// time) when Telegram does not answer.
    async fn star_balance(&self) -> Option<StarBalance> {
        let kept = *self.star_balance.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((balance, at)) = kept
            && at.elapsed() < STAR_BALANCE_FRESH
        {
            return Some(balance);
        }
        match self.state.bot.get_my_star_balance().await {
            Ok(amount) => {
                let balance = StarBalance {
                    amount: amount.amount,
                    read_at: now_ms() / 1000,
                };
                *self.star_balance.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((balance, Instant::now()));
                Some(balance)
            }
            Err(error) => {
                tracing::warn!(%error, "getMyStarBalance failed");
                kept.map(|(balance, _)| balance)
            }
        }
    }

    /// An action of `operator`, once its id is checked.
    fn action(
        operator: UserId,
        id: &str,
        action: &'static str,
        target: impl ToString,
    ) -> Result<NewAction, ApiError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::InvalidInput(
                "action_id: 1-64 printable characters".into(),
            ));
        }
        Ok(NewAction {
            id: id.to_owned(),
            operator_id: operator.get(),
            action,
            target: target.to_string(),
        })
    }

    fn reads(&self) -> reads::ConsoleReads {
        reads::ConsoleReads::new(&self.state.store)
    }

    /// A typed argument, refused with its name when it holds a control character (a NUL would
    /// fail PostgreSQL's statement; none belongs in an id, a query or a reason).
    fn plain<'a>(field: &str, text: &'a str) -> Result<&'a str, ApiError> {
        if text.chars().any(char::is_control) {
            return Err(ApiError::InvalidInput(format!(
                "{field}: holds a control character"
            )));
        }
        Ok(text)
    }

    /// The action recorded under this id before, if any.
    async fn earlier(&self, action: &NewAction) -> Result<Option<ActionDone>, ApiError> {
        Ok(self
            .reads()
            .action(&action.id)
            .await?
            .map(|earlier| ActionDone {
                result: earlier.result,
                repeated: true,
            }))
    }

    /// Records an action whose effects took transactions of their own (a reconciliation), or
    /// none at all (Telegram refused a refund).
    async fn record(&self, action: &NewAction, result: String) -> Result<ActionDone, ApiError> {
        let acted = self
            .state
            .store
            .record_action(action, &result, now_ms())
            .await?;
        Ok(done(acted))
    }
}

fn done(acted: ActionResult) -> ActionDone {
    match acted {
        ActionResult::Done(result) => ActionDone {
            result,
            repeated: false,
        },
        ActionResult::Repeated(result) => ActionDone {
            result,
            repeated: true,
        },
    }
}

#[async_trait]
impl ConsoleBackend for OperatorConsole {
    fn is_operator(&self, user_id: UserId) -> bool {
        self.state.config.is_operator(user_id)
    }

    async fn overview(&self) -> Result<Overview, ApiError> {
        let reads = self.reads();
        let now = now_ms();
        let today = now - now.rem_euclid(DAY_MS);
        let month = today - 29 * DAY_MS;
        let mut days: Vec<Day> = (0..30)
            .map(|index| Day {
                start: (month + index * DAY_MS) / 1000,
                stars: 0,
                purchases: 0,
            })
            .collect();
        for (index, stars, purchases) in reads.daily_purchases(month).await? {
            if let Some(day) = usize::try_from(index).ok().and_then(|i| days.get_mut(i)) {
                day.stars = stars;
                day.purchases = purchases;
            }
        }
        let (pending, failed) = reads.message_counts().await?;
        Ok(Overview {
            today: reads.figures_since(today).await?,
            week: reads.figures_since(today - 6 * DAY_MS).await?,
            month: reads.figures_since(month).await?,
            days,
            held_payments: reads.held_count().await?,
            pending_notifications: pending,
            failed_notifications: failed,
            star_balance: self.star_balance().await,
        })
    }

    async fn held(&self) -> Result<Vec<HeldPayment>, ApiError> {
        let prices = self.state.config.prices();
        Ok(self.reads().held_payments(&prices, LISTED).await?)
    }

    async fn credit(
        &self,
        operator: UserId,
        action_id: &str,
        charge_id: &str,
    ) -> Result<ActionDone, ApiError> {
        let charge_id = ChargeId::from(Self::plain("charge_id", charge_id)?);
        let action = Self::action(operator, action_id, "credit", &charge_id)?;
        let prices = self.state.config.prices();
        let acted = self
            .state
            .ledger
            .credit_held(&charge_id, &prices, &action)
            .await?;
        Ok(done(acted))
    }

    async fn refund(
        &self,
        operator: UserId,
        action_id: &str,
        charge_id: &str,
    ) -> Result<ActionDone, ApiError> {
        let charge_id = ChargeId::from(Self::plain("charge_id", charge_id)?);
        let action = Self::action(operator, action_id, "refund", &charge_id)?;
        // A repeated tap must not ask Telegram again.
        if let Some(earlier) = self.earlier(&action).await? {
            return Ok(earlier);
        }
        match operator::refund_as(
            &self.state.bot,
            &self.state.ledger,
            &charge_id,
            Some(&action),
        )
        .await
        {
            Ok((_, Some(acted))) => Ok(done(acted)),
            Ok((text, None)) => Ok(ActionDone {
                result: text,
                repeated: false,
            }),
            Err(OpsError::Store(error)) => Err(error.into()),
            Err(error) => self.record(&action, format!("not refunded: {error}")).await,
        }
    }

    async fn find(&self, query: &str) -> Result<BuyerCard, ApiError> {
        let store = &self.state.store;
        let query = Self::plain("query", query)?;
        if query.trim().is_empty() || query.len() > 200 {
            return Err(ApiError::InvalidInput(
                "a user id, @username or charge id".into(),
            ));
        }
        let user_id = self
            .reads()
            .find_buyer(query)
            .await?
            .ok_or(ApiError::NotFound)?;
        let stored = store.buyer(user_id).await?.ok_or(ApiError::NotFound)?;
        let payments = self.reads().payments_of(user_id, LISTED).await?;
        let history = store
            .statement(user_id, None, LISTED)
            .await?
            .into_iter()
            .filter_map(|entry| match entry {
                StatementEntry::Transfer {
                    kind,
                    change,
                    stars,
                    reference,
                    reason,
                    created_at,
                    ..
                } => Some(TransferLine {
                    kind: kind.as_str().to_owned(),
                    ndn: change,
                    stars,
                    reference,
                    reason,
                    created_at: created_at / 1000,
                }),
                StatementEntry::Hold(_) => None,
            })
            .collect();
        Ok(BuyerCard {
            user_id,
            first_name: stored.buyer.first_name,
            username: stored.buyer.username,
            balance: stored.funds.balance,
            held: stored.funds.held,
            payments,
            history,
        })
    }

    async fn grant(
        &self,
        operator: UserId,
        action_id: &str,
        user_id: UserId,
        amount: i64,
        reason: &str,
    ) -> Result<ActionDone, ApiError> {
        let action = Self::action(operator, action_id, "grant", user_id)?;
        let reason = Self::plain("reason", reason)?.trim();
        let Some(amount) = Ndn::new(amount) else {
            return Err(ApiError::InvalidInput(format!(
                "amount: 1 to {MAX_AMOUNT} NDN"
            )));
        };
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(ApiError::InvalidInput(
                "reason: 1-200 characters, shown to the buyer".into(),
            ));
        }
        // A refused grant remembers no answer: its audit row is what answers a repeated tap.
        if let Some(earlier) = self.earlier(&action).await? {
            return Ok(earlier);
        }
        let reason = format!("{reason} (operator {operator})");
        let fingerprint = hex::encode(Sha256::digest(
            format!("console grant\n{user_id}\n{amount}\n{reason}").as_bytes(),
        ));
        let request = Request {
            operation: Operation::Grant {
                id: format!("crd_{}", uuid::Uuid::new_v4().simple()),
                user_id,
                amount,
                reason,
            },
            key: Some(IdempotencyKey {
                api_key_id: CONSOLE_KEY_ID,
                key: format!("console:{}", action.id),
                fingerprint,
            }),
        };
        let decision = self
            .state
            .ledger
            .operate_for(request, Some(action.clone()))
            .await?;
        Ok(match decision {
            Decision::Repeated(_) => self.earlier(&action).await?.unwrap_or(ActionDone {
                result: "granted before".into(),
                repeated: true,
            }),
            _ => match self.reads().action(&action.id).await? {
                Some(recorded) => ActionDone {
                    result: recorded.result,
                    repeated: false,
                },
                None => return Err(ApiError::Internal),
            },
        })
    }

    async fn health(&self) -> Result<Health, ApiError> {
        Ok(Health {
            failed: self.reads().failed_messages(LISTED).await?,
            keys: crate::keys::table::KeyStore::new(&self.state.store)
                .list()
                .await?
                .into_iter()
                .map(|key| KeyLine {
                    id: key.id,
                    name: key.name,
                    scopes: key.scopes,
                    created_at: key.created_at / 1000,
                    last_used_at: key.last_used_at.map(|at| at / 1000),
                    revoked_at: key.revoked_at.map(|at| at / 1000),
                })
                .collect(),
            actions: self.reads().actions(50).await?,
        })
    }

    async fn reconcile(&self, operator: UserId, action_id: &str) -> Result<ActionDone, ApiError> {
        let action = Self::action(operator, action_id, "reconcile", "Star transactions")?;
        if let Some(earlier) = self.earlier(&action).await? {
            return Ok(earlier);
        }
        // Each change takes the webhook's own transaction; the audit row follows them.
        let result = match operator::reconcile(&self.state.bot, &self.state.ledger).await {
            Ok(report) => report.to_string().trim_end().replace('\n', "; "),
            Err(OpsError::Store(error)) => return Err(error.into()),
            Err(error) => format!("not reconciled: {error}"),
        };
        self.record(&action, result).await
    }

    async fn retry(
        &self,
        operator: UserId,
        action_id: &str,
        message_id: i64,
    ) -> Result<ActionDone, ApiError> {
        let action = Self::action(
            operator,
            action_id,
            "retry",
            format!("message {message_id}"),
        )?;
        let acted = self
            .state
            .store
            .retry_message(message_id, &action, now_ms())
            .await?;
        self.state.outbox.notify_one();
        Ok(done(acted))
    }

    async fn revoke(
        &self,
        operator: UserId,
        action_id: &str,
        key_id: i64,
    ) -> Result<ActionDone, ApiError> {
        let action = Self::action(operator, action_id, "revoke", format!("key {key_id}"))?;
        let acted = self
            .state
            .store
            .revoke_key(key_id, &action, now_ms())
            .await?;
        self.state.api_keys.forget(key_id);
        Ok(done(acted))
    }

    async fn export_link(
        &self,
        operator: UserId,
        from: &str,
        to: &str,
        format: &str,
    ) -> Result<String, ApiError> {
        let period = Period::parse(from, to, format).map_err(ApiError::InvalidInput)?;
        let expires = now_ms() / 1000 + EXPORT_LINK_LIFETIME_SECS;
        let token = ExportLinks::new(&self.state.config.telegram.bot_token)
            .issue(operator, &period, expires);
        Ok(format!("/api/console/export?token={token}"))
    }
}
