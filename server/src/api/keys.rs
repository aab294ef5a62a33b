//! The key behind a service API request: found by the `Authorization: Bearer` header (see
//! `keys/` for how keys are kept), with the scopes it may use.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::errors::ApiError;
use crate::keys::{FoundKey, Scope};
use crate::state::AppState;

/// The key behind a request, with its scopes.
#[derive(Debug, Clone)]
pub struct ServiceKey {
    pub id: i64,
    pub name: String,
    scopes: Vec<Scope>,
}

impl ServiceKey {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope.as_str()))
        }
    }
}

impl From<FoundKey> for ServiceKey {
    fn from(found: FoundKey) -> Self {
        Self {
            id: found.id,
            name: found.name,
            scopes: found.scopes,
        }
    }
}

impl FromRequestParts<AppState> for ServiceKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .ok_or_else(ApiError::unauthorized)?;
        state
            .api_keys
            .find(&state.store, presented)
            .await?
            .map(ServiceKey::from)
            .ok_or_else(ApiError::unauthorized)
    }
}
