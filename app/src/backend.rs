//! The seam between the server functions and the wallet that `server` implements.

use std::sync::Arc;

use async_trait::async_trait;
use leptos::prelude::*;

use crate::api::{ApiError, AuthFailure, Invoice, OrderStatusView, WalletView};
use crate::console::{ActionDone, BuyerCard, Health, HeldPayment, Overview};
use crate::ids::UserId;

/// The buyer who made a request, as Telegram signed them into the Mini App's launch data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBuyer {
    pub id: UserId,
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
    /// When Telegram signed the launch data (Unix seconds).
    pub auth_date: i64,
}

/// Who called a server function: the server checks `Authorization: tma <initData>` once per
/// request and puts this in the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller(pub Result<SignedBuyer, AuthFailure>);

/// The wallet as the server functions see it, for a buyer the server authenticated.
#[async_trait]
pub trait WalletBackend: Send + Sync + 'static {
    async fn wallet(&self, buyer: &SignedBuyer) -> Result<WalletView, ApiError>;
    async fn create_invoice(
        &self,
        buyer: &SignedBuyer,
        package_id: &str,
    ) -> Result<Invoice, ApiError>;
    async fn order_status(
        &self,
        buyer: &SignedBuyer,
        order_id: &str,
    ) -> Result<OrderStatusView, ApiError>;
}

/// Provided as Leptos context by the server.
#[derive(Clone)]
pub struct Backend(pub Arc<dyn WalletBackend>);

/// The operator console as its server functions see it. `operator` is the signed-in user the
/// server found in `ADMIN_USER_IDS`; `action_id` names the tap (the same id again changes
/// nothing and answers what the first did).
#[async_trait]
pub trait ConsoleBackend: Send + Sync + 'static {
    fn is_operator(&self, user_id: UserId) -> bool;
    async fn overview(&self) -> Result<Overview, ApiError>;
    async fn held(&self) -> Result<Vec<HeldPayment>, ApiError>;
    async fn credit(
        &self,
        operator: UserId,
        action_id: &str,
        charge_id: &str,
    ) -> Result<ActionDone, ApiError>;
    async fn refund(
        &self,
        operator: UserId,
        action_id: &str,
        charge_id: &str,
    ) -> Result<ActionDone, ApiError>;
    async fn find(&self, query: &str) -> Result<BuyerCard, ApiError>;
    async fn grant(
        &self,
        operator: UserId,
        action_id: &str,
        user_id: UserId,
        amount: i64,
        reason: &str,
    ) -> Result<ActionDone, ApiError>;
    async fn health(&self) -> Result<Health, ApiError>;
    async fn reconcile(&self, operator: UserId, action_id: &str) -> Result<ActionDone, ApiError>;
    async fn retry(
        &self,
        operator: UserId,
        action_id: &str,
        message_id: i64,
    ) -> Result<ActionDone, ApiError>;
    async fn revoke(
        &self,
        operator: UserId,
        action_id: &str,
        key_id: i64,
    ) -> Result<ActionDone, ApiError>;
    async fn export_link(
        &self,
        operator: UserId,
        from: &str,
        to: &str,
        format: &str,
    ) -> Result<String, ApiError>;
}

/// Provided as Leptos context by the server.
#[derive(Clone)]
pub struct Console(pub Arc<dyn ConsoleBackend>);

/// The console and the operator of the request being served: a 401 without valid launch data,
/// a 403 for anyone who is not an operator (whatever the function).
pub fn operator() -> Result<(Arc<dyn ConsoleBackend>, SignedBuyer), ApiError> {
    let Some(console) = use_context::<Console>() else {
        return Err(answer_error(ApiError::Internal));
    };
    let user = signed_user()?;
    if !console.0.is_operator(user.id) {
        return Err(answer_error(ApiError::Forbidden));
    }
    Ok((console.0, user))
}

fn signed_user() -> Result<SignedBuyer, ApiError> {
    let caller = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>().cloned())
        .unwrap_or(Caller(Err(AuthFailure::Missing)));
    caller
        .0
        .map_err(|failure| answer_error(ApiError::Unauthorized(failure)))
}

/// The backend and the buyer of the request being served (a 401 when there is none).
pub fn request() -> Result<(Arc<dyn WalletBackend>, SignedBuyer), ApiError> {
    let Some(backend) = use_context::<Backend>() else {
        return Err(answer_error(ApiError::Internal));
    };
    Ok((backend.0, signed_user()?))
}

/// Sets the response status from the error, so a 401 is a 401 on the wire too.
pub fn answer<T>(result: Result<T, ApiError>) -> Result<T, ApiError> {
    result.map_err(answer_error)
}

fn answer_error(error: ApiError) -> ApiError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>()
        && let Ok(status) = http::StatusCode::from_u16(error.status())
    {
        response.set_status(status);
        if let ApiError::RateLimited { retry_after_secs } = &error
            && let Ok(value) = http::HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.insert_header(http::header::RETRY_AFTER, value);
        }
    }
    error
}
