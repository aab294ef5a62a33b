//! The wallet behind the Mini App's server functions.

use app::api::{ApiError, AuthFailure, Invoice, OrderState, OrderStatusView, UserView, WalletView};
use app::backend::WalletBackend;
use app::i18n::Lang;
use async_trait::async_trait;

use crate::bot_api::StarsInvoice;
use crate::bot_text;
use crate::clock::now_ms;
use crate::init_data::{InitData, InitDataError};
use crate::state::AppState;
use crate::store::{Admission, OrderLimits, StoreError, StoredBuyer};
use crate::wallet::model::Buyer;

const HISTORY_LENGTH: i64 = 20;

pub struct Shop {
    state: AppState,
}

impl Shop {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The buyer from `Authorization: tma <initData>`, and from nothing else.
    fn authenticate(&self, authorization: Option<&str>) -> Result<InitData, ApiError> {
        let raw = authorization
            .and_then(|value| value.strip_prefix("tma "))
            .map(str::trim)
            .filter(|raw| !raw.is_empty())
            .ok_or(ApiError::Unauthorized(AuthFailure::Missing))?;
        self.state
            .validator
            .validate(raw, now_ms() / 1000)
            .map_err(|error| {
                tracing::info!(%error, "initData refused");
                ApiError::Unauthorized(match error {
                    InitDataError::Expired => AuthFailure::Expired,
                    _ => AuthFailure::Invalid,
                })
            })
    }

    /// The buyer as Telegram signed them, and as stored (if known). Each launch reads; only a
    /// new buyer or a changed name or language costs a write.
    async fn signed_and_stored(
        &self,
        data: &InitData,
    ) -> Result<(Buyer, Option<StoredBuyer>), ApiError> {
        let mut buyer = buyer(data);
        buyer.make_storable();
        let stored = self.state.store.buyer(buyer.id).await.map_err(internal)?;
        Ok((buyer, stored))
    }
}

/// The buyer's name and language as Telegram signed them.
fn buyer(data: &InitData) -> Buyer {
    let user = &data.user;
    Buyer {
        id: user.id,
        first_name: user.first_name.clone(),
        username: user.username.clone(),
        language_code: Some(language(data).to_owned()),
    }
}

fn internal(error: StoreError) -> ApiError {
    tracing::error!(%error, "storage failed");
    ApiError::Internal
}

fn language(data: &InitData) -> &'static str {
    Lang::from_code(data.user.language_code.as_deref().unwrap_or("en")).code()
}

#[async_trait]
impl WalletBackend for Shop {
    async fn wallet(&self, authorization: Option<&str>) -> Result<WalletView, ApiError> {
        let data = self.authenticate(authorization)?;
        let user = &data.user;
        let language = language(&data);
        let state = &self.state;
        let balance = match self.signed_and_stored(&data).await? {
            (signed, Some(stored)) if stored.buyer == signed => stored.balance,
            (changed, _) => state.store.upsert_buyer(&changed).await.map_err(internal)?,
        };
        let history = state
            .store
            .history(user.id, HISTORY_LENGTH)
            .await
            .map_err(internal)?;
        Ok(WalletView {
            user: UserView {
                id: user.id,
                first_name: user.first_name.clone(),
                language: language.into(),
            },
            balance,
            packages: state.config.packages.clone(),
            history,
            // Expires with the launch data, not a day after this call.
            events_token: state.tokens.issue(user.id, data.auth_date),
        })
    }

    async fn create_invoice(
        &self,
        authorization: Option<&str>,
        package_id: &str,
    ) -> Result<Invoice, ApiError> {
        let data = self.authenticate(authorization)?;
        let state = &self.state;
        let package = state
            .config
            .package(package_id)
            .ok_or_else(|| ApiError::InvalidInput(format!("unknown package `{package_id}`")))?;
        let user = &data.user;
        let (signed, stored) = self.signed_and_stored(&data).await?;
        let profile =
            (stored.map(|stored| stored.buyer).as_ref() != Some(&signed)).then_some(signed);
        let limits = OrderLimits {
            per_minute: i64::from(state.config.invoice_rate_per_minute),
            open: state.config.max_pending_orders,
        };
        let order_id = uuid::Uuid::new_v4().simple().to_string();
        let admission = state
            .store
            .create_order(
                &order_id,
                user.id,
                package,
                state.config.order_ttl,
                limits,
                profile.as_ref(),
            )
            .await
            .map_err(internal)?;
        if let Admission::Refused { retry_after_ms } = admission {
            let retry_after_secs = u64::try_from(retry_after_ms)
                .unwrap_or(0)
                .div_ceil(1000)
                .max(1);
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        let description = bot_text::invoice_description(language(&data), package.ndn);
        let invoice = StarsInvoice {
            title: &package.title,
            description: &description,
            payload: &order_id,
            label: &package.title,
            amount: package.stars,
        };
        match state.bot.create_invoice_link(&invoice).await {
            Ok(url) => {
                state
                    .store
                    .set_invoice_url(&order_id, &url)
                    .await
                    .map_err(internal)?;
                tracing::info!(
                    order_id,
                    package = package.id,
                    user_id = user.id,
                    "invoice created"
                );
                Ok(Invoice {
                    order_id,
                    invoice_url: url,
                })
            }
            Err(error) => {
                tracing::error!(order_id, %error, "createInvoiceLink failed");
                state.store.fail_order(&order_id).await.map_err(internal)?;
                Err(ApiError::Unavailable)
            }
        }
    }

    async fn order_status(
        &self,
        authorization: Option<&str>,
        order_id: &str,
    ) -> Result<OrderStatusView, ApiError> {
        let data = self.authenticate(authorization)?;
        let state = &self.state;
        let order = state.store.order(order_id).await.map_err(internal)?;
        // Someone else's order answers exactly like a missing one.
        let order = order
            .filter(|order| order.user_id == data.user.id)
            .ok_or(ApiError::NotFound)?;
        let balance = state.store.balance(data.user.id).await.map_err(internal)?;
        let status: OrderState = order.state_at(now_ms());
        Ok(OrderStatusView {
            order_id: order.id,
            status,
            balance,
        })
    }
}
