//! The service API's request bodies, read field by field (to name the field at fault) into these
//! types, which also describe them in the OpenAPI document.

use super::MAX_HOLD;
use super::errors::ApiError;
use super::input::Body;
use crate::wallet::amounts::Ndn;
use crate::wallet::ids::UserId;

/// A debit.
#[derive(utoipa::ToSchema)]
pub(super) struct DebitRequest {
    #[schema(value_type = i64)]
    pub(super) user_id: UserId,
    /// 1 to 10^12.
    #[schema(value_type = i64)]
    pub(super) amount: Ndn,
    /// 1-200 characters; shown to the buyer in their history.
    pub(super) reason: String,
    /// Your own reference, at most 128 characters.
    pub(super) reference: Option<String>,
    /// A JSON object of at most 4 KB, kept with the debit.
    #[schema(value_type = Option<Object>)]
    pub(super) metadata: Option<String>,
}

impl DebitRequest {
    pub(super) fn read(body: &Body) -> Result<Self, ApiError> {
        body.only(&["user_id", "amount", "reason", "reference", "metadata"])?;
        Ok(Self {
            user_id: body.user_id()?,
            amount: body.required_amount()?,
            reason: body.reason(true)?.unwrap_or_default(),
            reference: body.reference()?,
            metadata: body.metadata()?,
        })
    }
}

/// A credit (NDN the operator gives).
#[derive(utoipa::ToSchema)]
pub(super) struct CreditRequest {
    #[schema(value_type = i64)]
    pub(super) user_id: UserId,
    /// 1 to 10^12.
    #[schema(value_type = i64)]
    pub(super) amount: Ndn,
    /// 1-200 characters; shown to the buyer and in the bot's message.
    pub(super) reason: String,
}

impl CreditRequest {
    pub(super) fn read(body: &Body) -> Result<Self, ApiError> {
        body.only(&["user_id", "amount", "reason"])?;
        Ok(Self {
            user_id: body.user_id()?,
            amount: body.required_amount()?,
            reason: body.reason(true)?.unwrap_or_default(),
        })
    }
}

/// A hold.
#[derive(utoipa::ToSchema)]
pub(super) struct HoldRequest {
    #[schema(value_type = i64)]
    pub(super) user_id: UserId,
    /// 1 to 10^12.
    #[schema(value_type = i64)]
    pub(super) amount: Ndn,
    /// Seconds until it is released by itself (at most 30 days).
    pub(super) expires_in: i64,
    pub(super) reason: Option<String>,
    pub(super) reference: Option<String>,
}

impl HoldRequest {
    pub(super) fn read(body: &Body) -> Result<Self, ApiError> {
        body.only(&["user_id", "amount", "expires_in", "reason", "reference"])?;
        let max = i64::try_from(MAX_HOLD.as_secs()).unwrap_or(i64::MAX);
        Ok(Self {
            user_id: body.user_id()?,
            amount: body.required_amount()?,
            expires_in: body.required_integer("expires_in", 1, max)?,
            reason: body.reason(false)?,
            reference: body.reference()?,
        })
    }
}

/// A capture.
#[derive(utoipa::ToSchema)]
pub(super) struct CaptureRequest {
    /// At most what the hold reserves; all of it when absent.
    #[schema(value_type = Option<i64>)]
    pub(super) amount: Option<Ndn>,
}

impl CaptureRequest {
    pub(super) fn read(body: &Body) -> Result<Self, ApiError> {
        body.only(&["amount"])?;
        Ok(Self {
            amount: body.amount()?,
        })
    }
}
