//! `POST /webhook/telegram`: Telegram's updates, acknowledged only once what matters is stored.

use std::net::SocketAddr;

use app::i18n::Lang;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::bot::commands;
use crate::clock::now_ms;
use crate::config::networks::client_ip;
use crate::state::AppState;
use crate::store::StoreError;
use crate::telegram::bot_text;
use crate::telegram::updates::{
    InlineCall, Message, PreCheckoutAnswer, PreCheckoutQuery, RefundedPayment, SuccessfulPayment,
    Update,
};
use crate::telemetry::metrics::{Kind, Reason};
use crate::telemetry::untrusted::Untrusted;
use crate::wallet::checkout::{Checkout, judge_pre_checkout};
use crate::wallet::ids::UserId;
use crate::wallet::model::{Buyer, IncomingPayment};

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// Telegram's updates are small; anything larger is not from Telegram.
pub const BODY_LIMIT: usize = 256 * 1024;

/// `POST /webhook/telegram`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/webhook/telegram",
        axum::routing::post(receive).layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT)),
    )
}

/// The source and the secret are checked before the body is read: a caller without the secret
/// gets its 401 without the server waiting for (or buffering) what it sends.
async fn receive(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if let Some(networks) = &state.config.http.webhook_networks {
        let client = client_ip(
            peer.ip(),
            headers,
            state.config.http.trusted_proxy_header.as_deref(),
        );
        if !client.is_some_and(|ip| networks.contains(ip)) {
            tracing::warn!(peer = %peer.ip(), ?client, "webhook call from outside the allowed networks");
            return (StatusCode::FORBIDDEN, "source address not allowed").into_response();
        }
    }
    let presented = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(presented.ct_eq(state.config.telegram.webhook_secret.as_bytes())) {
        tracing::warn!("webhook call with a wrong or missing secret token");
        return (StatusCode::UNAUTHORIZED, "wrong secret token").into_response();
    }
    // The route's body limit applies here, with its 413.
    let body = match Bytes::from_request(Request::from_parts(parts, body), &state).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a Telegram update: {error}"),
            )
                .into_response();
        }
    };
    handle(&state, update).await
}

/// What became of an update.
#[derive(Debug)]
pub enum Handled {
    /// Stored (or nothing to store): acknowledge.
    Done,
    /// Acknowledge with the pre-checkout's answer, a Bot API call Telegram performs.
    Answer(PreCheckoutAnswer),
    /// Not stored: the update must be delivered again.
    Retry(String),
}

/// Processes one update; the answer tells Telegram whether to deliver it again.
pub async fn handle(state: &AppState, update: Update) -> Response {
    match process(state, update).await {
        Handled::Done => StatusCode::OK.into_response(),
        Handled::Answer(answer) => axum::Json(InlineCall {
            method: PreCheckoutAnswer::METHOD,
            parameters: answer,
        })
        .into_response(),
        // 5xx: Telegram delivers the update again, so nothing acknowledged is lost.
        Handled::Retry(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "storage unavailable",
        )
            .into_response(),
    }
}

/// The same processing for webhook and long-polling deliveries.
pub async fn process(state: &AppState, update: Update) -> Handled {
    let kind = update.kind();
    let update_id = update.update_id;
    let started = std::time::Instant::now();
    state.metrics.updates.get_or_create(&Kind { kind }).inc();
    let result = if let Some(query) = &update.pre_checkout_query {
        answer_pre_checkout(state, query).await
    } else if let Some(message) = &update.message {
        if let Some(payment) = &message.successful_payment {
            credit(state, message, payment).await
        } else if let Some(refund) = &message.refunded_payment {
            refund_payment(state, message, refund).await
        } else {
            commands::reply(state, update_id, message)
                .await
                .map(|()| Handled::Done)
        }
    } else {
        Ok(Handled::Done)
    };
    state
        .metrics
        .webhook_seconds
        .get_or_create(&Kind { kind })
        .observe(started.elapsed().as_secs_f64());
    result.unwrap_or_else(|error| {
        tracing::error!(update_id, kind, %error, "update not processed");
        Handled::Retry(error.to_string())
    })
}

/// Answered in the webhook response itself: no extra round trip on the 10-second path, and
/// no dependence on the Bot API being reachable at that moment.
async fn answer_pre_checkout(
    state: &AppState,
    query: &PreCheckoutQuery,
) -> Result<Handled, StoreError> {
    let order = state
        .store
        .order(&query.invoice_payload.as_str().into())
        .await?;
    let checkout = Checkout {
        buyer: query.from.id,
        currency: &query.currency,
        total_amount: query.total_amount,
    };
    let verdict = judge_pre_checkout(order.as_ref(), checkout, now_ms());
    let answer = match verdict {
        Ok(()) => {
            tracing::info!(
                order_id = %Untrusted(&query.invoice_payload),
                user_id = query.from.id.get(),
                "pre-checkout accepted"
            );
            PreCheckoutAnswer {
                pre_checkout_query_id: query.id.clone(),
                ok: true,
                error_message: None,
            }
        }
        Err(refusal) => {
            tracing::info!(
                order_id = %Untrusted(&query.invoice_payload),
                reason = refusal.label(),
                "pre-checkout refused"
            );
            state
                .metrics
                .pre_checkout_refusals
                .get_or_create(&Reason {
                    reason: refusal.label(),
                })
                .inc();
            let language = Lang::from_code(query.from.language_code.as_deref().unwrap_or("en"));
            PreCheckoutAnswer {
                pre_checkout_query_id: query.id.clone(),
                ok: false,
                error_message: Some(bot_text::refusal(language, refusal).to_owned()),
            }
        }
    };
    Ok(Handled::Answer(answer))
}

async fn credit(
    state: &AppState,
    message: &Message,
    payment: &SuccessfulPayment,
) -> Result<Handled, StoreError> {
    let incoming = IncomingPayment {
        charge_id: payment.telegram_payment_charge_id.clone(),
        provider_charge_id: payment.provider_payment_charge_id.clone(),
        payload: payment.invoice_payload.clone(),
        currency: payment.currency.clone(),
        stars: payment.total_amount,
    };
    state.ledger.pay(message_buyer(message), incoming).await?;
    Ok(Handled::Done)
}

async fn refund_payment(
    state: &AppState,
    message: &Message,
    refund: &RefundedPayment,
) -> Result<Handled, StoreError> {
    let user_id = message
        .from
        .as_ref()
        .map_or(UserId(message.chat.id), |user| user.id);
    state
        .ledger
        .refund(
            user_id,
            &refund.telegram_payment_charge_id,
            refund.total_amount,
        )
        .await?;
    Ok(Handled::Done)
}

fn message_buyer(message: &Message) -> Buyer {
    match &message.from {
        Some(user) => Buyer {
            id: user.id,
            first_name: user.first_name.clone(),
            username: user.username.clone(),
            language_code: user.language_code.clone(),
        },
        None => Buyer {
            // A payment arrives in the buyer's private chat, whose id is theirs.
            id: UserId(message.chat.id),
            first_name: String::new(),
            username: None,
            language_code: None,
        },
    }
}
