//! The service API's errors: a status and a JSON body with a stable code, the field at fault
//! and, where it helps, the figures (what is available, what is held). Internals are logged,
//! never answered.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;
use crate::wallet::operations::{HoldStatus, Refusal};

/// An error answer: `{"error": code, "message", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_request`, `idempotency_key_required`, `unauthorized`,
    /// `forbidden`, `hold_of_another_key`, `not_found`, `insufficient_funds`,
    /// `hold_not_active`, `capture_exceeds_hold`, `balance_limit`, `body_too_large`,
    /// `idempotency_key_reused`, `internal`.
    pub error: &'static str,
    pub message: String,
    /// The request field (or header) at fault, for `invalid_request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// NDN that could be spent, for `insufficient_funds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// What the hold reserves, for `capture_exceeds_hold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<i64>,
    /// The hold's status, for `hold_not_active`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// The scope the key lacks, for `forbidden`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Box<ErrorBody>,
}

impl ApiError {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody {
                error,
                message: message.into(),
                field: None,
                available: None,
                held: None,
                status: None,
                scope: None,
            }),
        }
    }

    /// A 400 naming the field at fault.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        error.body.field = Some(field.to_owned());
        error
    }

    /// A 400 for a money-moving request without its `Idempotency-Key`.
    pub fn key_required() -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "an Idempotency-Key header is required: a unique key per operation, e.g. a UUID, \
             sent again on retries",
        );
        error.body.field = Some("Idempotency-Key".to_owned());
        error
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
        )
    }

    pub fn forbidden(scope: &'static str) -> Self {
        let mut error = Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key lacks the `{scope}` scope"),
        );
        error.body.scope = Some(scope);
        error
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body may be {limit} bytes at most"),
        )
    }

    /// Why a request was refused, as the rules said.
    pub fn refused(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::UnknownAccount => Self::not_found("account"),
            Refusal::UnknownHold => Self::not_found("hold"),
            Refusal::InsufficientFunds { available } => {
                let mut error = Self::new(
                    StatusCode::CONFLICT,
                    "insufficient_funds",
                    "not enough available NDN; nothing was changed",
                );
                error.body.available = Some(*available);
                error
            }
            Refusal::KeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            ),
            Refusal::HoldClosed { status } => {
                let mut error = Self::new(
                    StatusCode::CONFLICT,
                    "hold_not_active",
                    match status {
                        HoldStatus::Expired => "the hold expired; its NDN were released",
                        HoldStatus::Voided => "the hold was voided",
                        HoldStatus::Captured => "the hold was captured with another amount",
                        HoldStatus::Active => "the hold is active",
                    },
                );
                error.body.status = Some(status.as_str());
                error
            }
            Refusal::CaptureExceedsHold { held } => {
                let mut error = Self::new(
                    StatusCode::CONFLICT,
                    "capture_exceeds_hold",
                    "a capture may take at most what the hold reserves",
                );
                error.body.held = Some(*held);
                error
            }
            Refusal::HoldOfAnotherKey => Self::new(
                StatusCode::FORBIDDEN,
                "hold_of_another_key",
                "only the API key that made a hold may capture or void it",
            ),
            Refusal::BalanceLimit => Self::new(
                StatusCode::CONFLICT,
                "balance_limit",
                "the balance would pass the largest the books can count; nothing was changed",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "service API: storage failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; retry with the same Idempotency-Key",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(*self.body)).into_response()
    }
}
