//! The seam between the server functions and the wallet that `server` implements.

use std::sync::Arc;

use async_trait::async_trait;
use leptos::prelude::*;

use crate::api::{ApiError, Invoice, OrderStatusView, WalletView};

/// The wallet as the server functions see it. `authorization` is the raw `Authorization`
/// header; the implementation validates it and takes the buyer from it and from nothing else.
#[async_trait]
pub trait WalletBackend: Send + Sync + 'static {
    async fn wallet(&self, authorization: Option<&str>) -> Result<WalletView, ApiError>;
    async fn create_invoice(
        &self,
        authorization: Option<&str>,
        package_id: &str,
    ) -> Result<Invoice, ApiError>;
    async fn order_status(
        &self,
        authorization: Option<&str>,
        order_id: &str,
    ) -> Result<OrderStatusView, ApiError>;
}

/// Provided as Leptos context by the server.
#[derive(Clone)]
pub struct Backend(pub Arc<dyn WalletBackend>);

/// The backend and the `Authorization` header of the request being served.
pub fn request() -> Result<(Arc<dyn WalletBackend>, Option<String>), ApiError> {
    let Some(backend) = use_context::<Backend>() else {
        return Err(answer_error(ApiError::Internal));
    };
    let authorization = use_context::<http::request::Parts>().and_then(|parts| {
        parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    });
    Ok((backend.0, authorization))
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
