//! The service API (`/v1/…`): how the operator's other services read balances and spend, hold
//! and grant NDN. Every change is a request to the ledger's one door, decided with the others
//! arriving at the same moment; money-moving requests carry an `Idempotency-Key`, and the same
//! key answers the same. Documented by the OpenAPI 3.1 document at `/v1/openapi.json`, made
//! from this code.

mod errors;
mod input;
pub mod keys;
mod requests;

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::now_ms;
use crate::contract::views::{
    AccountView, CreditView, DebitView, HoldView, ReceiptView, TransactionPage, TransactionView,
};
use crate::keys::Scope;
use crate::state::AppState;
use crate::store::StatementCursor;
use crate::wallet::ids::{HoldId, UserId};
use crate::wallet::operations::{Decision, IdempotencyKey, Operation, Request};
use errors::{ApiError, ErrorBody};
use input::{BODY_LIMIT, Body, idempotency, new_id};
use keys::ServiceKey;
use requests::{CaptureRequest, CreditRequest, DebitRequest, HoldRequest};

/// The longest a hold may last.
const MAX_HOLD: Duration = Duration::from_secs(30 * 86_400);
/// Statement pages: 20 lines unless asked, 100 at most.
const PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// The routes and the document from one list: a handler is routed at the path its
/// `#[utoipa::path]` documents, so no route exists undocumented and no documented one is
/// missing.
pub fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(account))
        .routes(routes!(transactions))
        .routes(routes!(debit))
        .routes(routes!(credit))
        .routes(routes!(hold))
        .routes(routes!(capture))
        .routes(routes!(void))
        .split_for_parts()
}

/// `/v1/…` and its document; anything else under `/v1` answers a JSON 404.
pub fn router() -> Router<AppState> {
    let (routes, document) = documented();
    let document = Arc::new(document);
    routes
        .route(
            "/v1/openapi.json",
            get(move |State(state): State<AppState>| {
                let document = Arc::clone(&document);
                async move { openapi(&document, &state.config) }
            }),
        )
        .route("/v1", any(endpoint_not_found))
        .route("/v1/{*rest}", any(endpoint_not_found))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn endpoint_not_found() -> ApiError {
    ApiError::not_found("endpoint")
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "NDN service API",
        version = "1",
        license(name = "MIT", identifier = "MIT"),
        description = "Read balances and spend, hold and grant NDN from the operator's own \
                       services. Authenticate with `Authorization: Bearer <key>` (`server keys \
                       create`). Every money-moving request needs an `Idempotency-Key` header \
                       (400 `idempotency_key_required` without it): the same key with the same \
                       body answers the first answer again (also after a restart and from \
                       another instance, for at least 24 hours); with another body, 422. A \
                       hold is settled (captured or voided) only by the key that made it."
    ),
    components(schemas(
        AccountView,
        DebitView,
        CreditView,
        HoldView,
        TransactionView,
        TransactionPage,
        ErrorBody
    )),
    modifiers(&BearerKeys),
    security(("api_key" = []))
)]
struct ApiDoc;

struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key, `ndn_…`"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document of this API, with this server's address as its server.
fn openapi(document: &utoipa::openapi::OpenApi, config: &crate::config::Config) -> Response {
    let document = with_server(document.clone(), server_url(config).as_deref());
    match document.to_pretty_json() {
        Ok(document) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            document,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "the OpenAPI document does not encode");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `document` naming `url` as its one server (none when there is no URL to name).
pub fn with_server(
    mut document: utoipa::openapi::OpenApi,
    url: Option<&str>,
) -> utoipa::openapi::OpenApi {
    document.servers = url.map(|url| {
        vec![
            utoipa::openapi::ServerBuilder::new()
                .url(url.trim_end_matches('/'))
                .description(Some("This server"))
                .build(),
        ]
    });
    document
}

/// Where this server answers: `PUBLIC_URL`, or the sandbox's address on this machine.
pub fn server_url(config: &crate::config::Config) -> Option<String> {
    config
        .mini_app_url()
        .map(|url| url.trim_end_matches('/').to_owned())
}

fn user_id(text: &str) -> Result<UserId, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(UserId)
        .ok_or_else(|| ApiError::invalid("user_id", "must be a Telegram user id"))
}

/// A hold id from the path. Ours are `hold_` and 32 hex digits; text that cannot be any id
/// (control characters such as NUL, spaces, over 64 bytes) is a hold that does not exist, and
/// never reaches the database.
fn hold_id(text: String) -> Result<HoldId, ApiError> {
    if text.is_empty() || text.len() > 64 || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::not_found("hold"));
    }
    Ok(HoldId(text))
}

/// Decides a money-moving `operation` under its idempotency key (every one has one: a retried
/// request must never move money twice) and answers `status`.
async fn keyed(
    state: &AppState,
    operation: Operation,
    key: IdempotencyKey,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let decision = state
        .ledger
        .operate(Request {
            operation,
            key: Some(key),
        })
        .await?;
    answer(decision, status)
}

/// The answer to a decided request: `status` and the receipt (the same one again for a request
/// answered before, marked `Idempotent-Replayed: true`), or the refusal.
fn answer(decision: Decision, status: StatusCode) -> Result<Response, ApiError> {
    match decision {
        Decision::Applied(change) => {
            Ok((status, Json(ReceiptView::from(&change.receipt))).into_response())
        }
        Decision::Repeated(receipt) => {
            let mut response = (status, Json(ReceiptView::from(&receipt))).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        Decision::Refused(refusal) => Err(ApiError::refused(&refusal)),
        Decision::NothingToExpire => Err(ApiError::not_found("hold")),
    }
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{user_id}",
    operation_id = "getAccount",
    summary = "A buyer's balance",
    tag = "accounts",
    params(("user_id" = i64, Path, description = "The buyer's Telegram user id")),
    responses(
        (status = 200, description = "The buyer's balance", body = AccountView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such buyer", body = ErrorBody)
    )
)]
async fn account(
    caller: ServiceKey,
    State(state): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    caller.require(Scope::Read)?;
    let user_id = user_id(&user)?;
    let funds = state
        .store
        .funds(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(AccountView::new(user_id, funds)))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{user_id}/transactions",
    operation_id = "listTransactions",
    summary = "A buyer's transactions, newest first",
    tag = "accounts",
    params(
        ("user_id" = i64, Path, description = "The buyer's Telegram user id"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, description = "Lines per page, 1-100 (20)")
    ),
    responses(
        (status = 200, description = "Purchases, refunds, debits, credits and holds, newest first", body = TransactionPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)
    )
)]
async fn transactions(
    caller: ServiceKey,
    State(state): State<AppState>,
    Path(user): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TransactionPage>, ApiError> {
    caller.require(Scope::Read)?;
    let user_id = user_id(&user)?;
    if let Some(unknown) = query
        .keys()
        .find(|name| *name != "cursor" && *name != "limit")
    {
        return Err(ApiError::invalid(
            unknown,
            "unknown parameter; use cursor and limit",
        ));
    }
    let limit = match query.get("limit") {
        None => PAGE,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be 1-{MAX_PAGE}")))?,
    };
    let cursor = query
        .get("cursor")
        .map(|text| {
            parse_cursor(text)
                .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API gave"))
        })
        .transpose()?;
    if state.store.funds(user_id).await?.is_none() {
        return Err(ApiError::not_found("account"));
    }
    let entries = state
        .store
        .statement(user_id, cursor.as_ref(), limit + 1)
        .await?;
    let more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    let page: Vec<_> = entries
        .iter()
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    let next_cursor = page
        .last()
        .filter(|_| more)
        .map(|entry| write_cursor(&entry.cursor()));
    Ok(Json(TransactionPage {
        data: page.into_iter().map(TransactionView::from).collect(),
        next_cursor,
    }))
}

/// A cursor is opaque to clients: the position's fields, hex-encoded.
fn write_cursor(cursor: &StatementCursor) -> String {
    hex::encode(format!(
        "{}.{}.{}.{}",
        cursor.created_at, cursor.source, cursor.number, cursor.text
    ))
}

fn parse_cursor(text: &str) -> Option<StatementCursor> {
    let decoded = String::from_utf8(hex::decode(text).ok()?).ok()?;
    let mut parts = decoded.splitn(4, '.');
    Some(StatementCursor {
        created_at: parts.next()?.parse().ok()?,
        source: parts.next()?.parse().ok().filter(|s| (0..=1).contains(s))?,
        number: parts.next()?.parse().ok()?,
        text: Some(parts.next()?)
            .filter(|text| !text.chars().any(char::is_control))?
            .to_owned(),
    })
}

#[utoipa::path(
    post,
    path = "/v1/debits",
    operation_id = "createDebit",
    summary = "Spend a buyer's NDN",
    tag = "money",
    params(("Idempotency-Key" = String, Header, description = "A unique key per debit, sent again on retries")),
    request_body(content = inline(DebitRequest), description = "What to debit"),
    responses(
        (status = 201, description = "Debited (or answered again for the same key)", body = DebitView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "No such buyer", body = ErrorBody),
        (status = 409, description = "Not enough available NDN; nothing changed", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody)
    )
)]
async fn debit(
    caller: ServiceKey,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Spend)?;
    let asked = DebitRequest::read(&body)?;
    let operation = Operation::Debit {
        id: new_id("dbt")?,
        user_id: asked.user_id,
        amount: asked.amount,
        reason: asked.reason,
        reference: asked.reference,
        metadata: asked.metadata,
    };
    let key = idempotency(&headers, &caller, "POST /v1/debits", &body)?;
    keyed(&state, operation, key, StatusCode::CREATED).await
}

#[utoipa::path(
    post,
    path = "/v1/credits",
    operation_id = "createCredit",
    summary = "Give a buyer NDN",
    tag = "money",
    params(("Idempotency-Key" = String, Header, description = "A unique key per credit, sent again on retries")),
    request_body(content = inline(CreditRequest), description = "What to give"),
    responses(
        (status = 201, description = "Credited (or answered again for the same key)", body = CreditView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "No such buyer", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)
    )
)]
async fn credit(
    caller: ServiceKey,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Grant)?;
    let asked = CreditRequest::read(&body)?;
    let operation = Operation::Grant {
        id: new_id("crd")?,
        user_id: asked.user_id,
        amount: asked.amount,
        reason: asked.reason,
    };
    let key = idempotency(&headers, &caller, "POST /v1/credits", &body)?;
    keyed(&state, operation, key, StatusCode::CREATED).await
}

#[utoipa::path(
    post,
    path = "/v1/holds",
    operation_id = "createHold",
    summary = "Reserve a buyer's NDN",
    tag = "money",
    params(("Idempotency-Key" = String, Header, description = "A unique key per hold, sent again on retries")),
    request_body(content = inline(HoldRequest), description = "What to reserve, and for how long"),
    responses(
        (status = 201, description = "Reserved", body = HoldView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not enough available NDN", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)
    )
)]
async fn hold(
    caller: ServiceKey,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Spend)?;
    let asked = HoldRequest::read(&body)?;
    let operation = Operation::Hold {
        id: HoldId(new_id("hold")?),
        user_id: asked.user_id,
        amount: asked.amount,
        reason: asked.reason,
        reference: asked.reference,
        expires_at: now_ms() + asked.expires_in * 1000,
        owner: caller.id,
    };
    let key = idempotency(&headers, &caller, "POST /v1/holds", &body)?;
    keyed(&state, operation, key, StatusCode::CREATED).await
}

#[utoipa::path(
    post,
    path = "/v1/holds/{hold_id}/capture",
    operation_id = "captureHold",
    summary = "Spend what a hold reserved",
    tag = "money",
    params(
        ("hold_id" = String, Path, description = "The hold"),
        ("Idempotency-Key" = String, Header, description = "A unique key per capture, sent again on retries")
    ),
    request_body(content = inline(CaptureRequest), description = "How much of the hold to spend (all when absent)"),
    responses(
        (status = 200, description = "Captured: the amount debited, the rest released (the same answer again for the same capture)", body = HoldView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "The key lacks the spend scope, or another key made the hold (`hold_of_another_key`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The hold was voided or expired, the amount exceeds it, or a refund took back what it reserved (`insufficient_funds`)", body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody)
    )
)]
async fn capture(
    caller: ServiceKey,
    State(state): State<AppState>,
    Path(hold_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Spend)?;
    let hold_id = self::hold_id(hold_id)?;
    let asked = CaptureRequest::read(&body)?;
    let endpoint = format!("POST /v1/holds/{hold_id}/capture");
    let key = idempotency(&headers, &caller, &endpoint, &body)?;
    let operation = Operation::Capture {
        hold_id,
        amount: asked.amount,
        by: caller.id,
    };
    keyed(&state, operation, key, StatusCode::OK).await
}

#[utoipa::path(
    post,
    path = "/v1/holds/{hold_id}/void",
    operation_id = "voidHold",
    summary = "Release a hold",
    tag = "money",
    params(
        ("hold_id" = String, Path, description = "The hold"),
        ("Idempotency-Key" = String, Header, description = "A unique key per void, sent again on retries")
    ),
    responses(
        (status = 200, description = "Released (the same answer again for a voided hold)", body = HoldView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "The key lacks the spend scope, or another key made the hold (`hold_of_another_key`)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The hold was captured or expired", body = ErrorBody),
        (status = 422, description = "The key was used for another request", body = ErrorBody)
    )
)]
async fn void(
    caller: ServiceKey,
    State(state): State<AppState>,
    Path(hold_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Spend)?;
    let hold_id = self::hold_id(hold_id)?;
    body.only(&[])?;
    let endpoint = format!("POST /v1/holds/{hold_id}/void");
    let key = idempotency(&headers, &caller, &endpoint, &body)?;
    let operation = Operation::Void {
        hold_id,
        by: caller.id,
    };
    keyed(&state, operation, key, StatusCode::OK).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = StatementCursor {
            created_at: 1_700_000_000_123,
            source: 0,
            number: 0,
            text: "hold_ab.cd".into(),
        };
        assert_eq!(parse_cursor(&write_cursor(&cursor)), Some(cursor));
        assert_eq!(parse_cursor("zz"), None);
        assert_eq!(parse_cursor(&hex::encode("1.7.0.x")), None);
        assert_eq!(parse_cursor(&hex::encode("1.0.0.a\0b")), None);
        assert_eq!(hold_id("a\0b".into()).unwrap_err().status, 404);
        assert_eq!(hold_id("hold_ab".into()).unwrap(), HoldId::from("hold_ab"));
    }
}
