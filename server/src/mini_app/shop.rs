//! The wallet behind the Mini App's server functions, for a buyer the server authenticated.

use app::api::{ApiError, Invoice, OrderState, OrderStatusView, UserView, WalletView};
use app::backend::{SignedBuyer, WalletBackend};
use app::i18n::Lang;
use async_trait::async_trait;

use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::{Admission, OrderLimits, StoreError, StoredBuyer};
use crate::telegram::bot_api::StarsInvoice;
use crate::telegram::bot_text;
use crate::wallet::ids::OrderId;
use crate::wallet::model::Buyer;

const HISTORY_LENGTH: i64 = 20;

pub struct Shop {
    state: AppState,
}

impl Shop {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The buyer as Telegram signed them, and as stored (if known). Each launch reads; only a
    /// new buyer or a changed name or language costs a write.
    async fn signed_and_stored(
        &self,
        signed: &SignedBuyer,
    ) -> Result<(Buyer, Option<StoredBuyer>), ApiError> {
        let mut buyer = Buyer {
            id: signed.id,
            first_name: signed.first_name.clone(),
            username: signed.username.clone(),
            language_code: Some(language(signed).code().to_owned()),
        };
        buyer.make_storable();
        let stored = self.state.store.buyer(buyer.id).await?;
        Ok((buyer, stored))
    }
}

/// Storage failures are logged here, and the buyer learns only that something broke.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "storage failed");
        ApiError::Internal
    }
}

fn language(buyer: &SignedBuyer) -> Lang {
    Lang::from_code(buyer.language_code.as_deref().unwrap_or("en"))
}

#[async_trait]
impl WalletBackend for Shop {
    async fn wallet(&self, buyer: &SignedBuyer) -> Result<WalletView, ApiError> {
        let state = &self.state;
        let funds = match self.signed_and_stored(buyer).await? {
            (signed, Some(stored)) if stored.buyer == signed => stored.funds,
            (changed, _) => {
                state.store.upsert_buyer(&changed).await?;
                state.store.funds(buyer.id).await?.unwrap_or_default()
            }
        };
        let history = super::history::history(&state.store, buyer.id, HISTORY_LENGTH).await?;
        Ok(WalletView {
            user: UserView {
                id: buyer.id,
                first_name: buyer.first_name.clone(),
                language: language(buyer).code().into(),
            },
            balance: funds.balance,
            held: funds.held,
            packages: state.config.shop.packages.clone(),
            history,
            // Expires with the launch data, not a day after this call.
            events_token: state.tokens.issue(buyer.id, buyer.auth_date),
            operator: state.config.is_operator(buyer.id),
        })
    }

    async fn create_invoice(
        &self,
        buyer: &SignedBuyer,
        package_id: &str,
    ) -> Result<Invoice, ApiError> {
        let state = &self.state;
        let package = state
            .config
            .package(package_id)
            .ok_or_else(|| ApiError::InvalidInput(format!("unknown package `{package_id}`")))?;
        let (signed, stored) = self.signed_and_stored(buyer).await?;
        let profile =
            (stored.map(|stored| stored.buyer).as_ref() != Some(&signed)).then_some(signed);
        let limits = OrderLimits {
            per_minute: i64::from(state.config.shop.invoice_rate_per_minute),
            open: state.config.shop.max_pending_orders,
        };
        let order_id = OrderId(uuid::Uuid::new_v4().simple().to_string());
        let admission = state
            .store
            .create_order(
                &order_id,
                buyer.id,
                package,
                state.config.shop.order_ttl,
                limits,
                profile.as_ref(),
            )
            .await?;
        if let Admission::Refused { retry_after_ms } = admission {
            let retry_after_secs = u64::try_from(retry_after_ms)
                .unwrap_or(0)
                .div_ceil(1000)
                .max(1);
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        let description = bot_text::invoice_description(language(buyer), package.ndn);
        let invoice = StarsInvoice {
            title: &package.title,
            description: &description,
            payload: order_id.as_str(),
            label: &package.title,
            amount: package.stars,
        };
        match state.bot.create_invoice_link(&invoice).await {
            Ok(url) => {
                state.store.set_invoice_url(&order_id, &url).await?;
                tracing::info!(
                    order_id = order_id.as_str(),
                    package = package.id,
                    user_id = buyer.id.get(),
                    "invoice created"
                );
                Ok(Invoice {
                    order_id: order_id.0,
                    invoice_url: url,
                })
            }
            Err(error) => {
                tracing::error!(order_id = order_id.as_str(), %error, "createInvoiceLink failed");
                state.store.fail_order(&order_id).await?;
                Err(ApiError::Unavailable)
            }
        }
    }

    async fn order_status(
        &self,
        buyer: &SignedBuyer,
        order_id: &str,
    ) -> Result<OrderStatusView, ApiError> {
        let state = &self.state;
        // Someone else's order answers exactly like a missing one.
        let order = state
            .store
            .order(&order_id.into())
            .await?
            .filter(|order| order.user_id == buyer.id)
            .ok_or(ApiError::NotFound)?;
        let balance = state.store.balance(buyer.id).await?;
        let status: OrderState = order.state_at(now_ms());
        Ok(OrderStatusView {
            order_id: order.id.0,
            status,
            balance,
        })
    }
}
