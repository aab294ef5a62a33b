//! The seam between the server functions and the wallet that `server` implements.

use std::sync::Arc;

use async_trait::async_trait;
use leptos::prelude::*;

use crate::api::{ApiError, AuthFailure, Invoice, OrderStatusView, WalletView};

/// The buyer who made a request, as Telegram signed them into the Mini App's launch data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBuyer {
    pub id: i64,
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

/// The backend and the buyer of the request being served (a 401 when there is none).
pub fn request() -> Result<(Arc<dyn WalletBackend>, SignedBuyer), ApiError> {
    let Some(backend) = use_context::<Backend>() else {
        return Err(answer_error(ApiError::Internal));
    };
    let caller = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>().cloned())
        .unwrap_or(Caller(Err(AuthFailure::Missing)));
    match caller.0 {
        Ok(buyer) => Ok((backend.0, buyer)),
        Err(failure) => Err(answer_error(ApiError::Unauthorized(failure))),
    }
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
