//! Telegram on the developer's machine: the fake Bot API, the delivery of updates to the
//! webhook, and the host page `/sandbox` that plays the Telegram client around the Mini App.
//! Mounted only when no bot token is configured.

mod delivery;
pub mod fake_telegram;
mod receiver;

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use delivery::{Delivery, Knobs, PreCheckout};
pub use receiver::{RECEIVER_ROUTE, Received, Receiver};

use crate::sandbox::fake_telegram::FakeTelegram;
use crate::telegram::init_data::InitDataValidator;
use crate::telegram::updates::{
    Message, PreCheckoutQuery, RefundedPayment, SuccessfulPayment, Update, User,
};
use crate::wallet::amounts::Stars;
use crate::wallet::checkout::STARS;
use crate::wallet::ids::UserId;

/// A buyer the sandbox can act as.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SandboxUser {
    pub id: UserId,
    pub first_name: &'static str,
    pub language_code: &'static str,
    /// The sandbox's operator, who sees the console (when `ADMIN_USER_IDS` is left unset).
    pub operator: bool,
}

pub const USERS: [SandboxUser; 3] = [
    SandboxUser {
        id: UserId(100_001),
        first_name: "Alice",
        language_code: "en",
        operator: false,
    },
    SandboxUser {
        id: UserId(100_002),
        first_name: "Борис",
        language_code: "ru",
        operator: false,
    },
    OPERATOR,
];

/// The sandbox's operator (its `ADMIN_USER_IDS` unless set), who sees the console.
pub const OPERATOR: SandboxUser = SandboxUser {
    id: crate::config::SANDBOX_OPERATOR_ID,
    first_name: "Olga",
    language_code: "en",
    operator: true,
};

/// Where pages load `telegram-web-app.js` from in the sandbox, which has no internet.
pub const TELEGRAM_SCRIPT_ROUTE: &str = "/sandbox/telegram-web-app.js";
/// Where the setup installs the official script (npm package `@twa-dev/sdk`).
const TELEGRAM_SCRIPT_FILE: &str = "end2end/node_modules/@twa-dev/sdk/dist/telegram-web-apps.js";

#[derive(Clone)]
pub struct Sandbox {
    pub telegram: FakeTelegram,
    pub delivery: Delivery,
    /// The operator's backend, played: it receives the signed events.
    pub receiver: Receiver,
    signer: InitDataValidator,
}

impl Sandbox {
    pub fn new(
        telegram: FakeTelegram,
        delivery: Delivery,
        receiver: Receiver,
        bot_token: &str,
    ) -> Self {
        Self {
            telegram,
            delivery,
            receiver,
            signer: InitDataValidator::new(bot_token, Duration::from_secs(86_400)),
        }
    }

    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/sandbox", get(page))
            .route(TELEGRAM_SCRIPT_ROUTE, get(telegram_script))
            .route("/sandbox/host.js", get(script))
            .route("/sandbox/host.css", get(stylesheet))
            .route("/sandbox/api/users", get(users))
            .route("/sandbox/api/launch", get(launch))
            .route("/sandbox/api/chat", get(chat))
            .route("/sandbox/api/command", post(command))
            .route("/sandbox/api/invoice/{slug}", get(invoice))
            .route("/sandbox/api/pay", post(pay))
            .route("/sandbox/api/refund", post(refund))
            .route("/sandbox/api/unmatched", post(unmatched))
            .route("/sandbox/api/charges", get(charges))
            .route("/sandbox/api/knobs", get(knobs).post(set_knobs))
            .route(RECEIVER_ROUTE, post(receive))
            .route("/sandbox/api/received", get(received))
            .with_state(self.clone())
            .nest("/sandbox/bot-api", self.telegram.router())
    }

    /// A `message` update in the user's private chat, made by `content` from a bare message.
    fn message_update(
        &self,
        user: SandboxUser,
        content: impl FnOnce(Message) -> Message,
    ) -> Update {
        let update_id = self.delivery.next_update_id();
        Update::message(
            update_id,
            content(Message::private(update_id, user.telegram())),
        )
    }
}

impl Sandbox {
    /// Telegram takes the Stars and tells the bot: the charge is recorded, and its
    /// `successful_payment` delivered to the webhook in the background.
    fn charge(&self, user: SandboxUser, payload: &str, stars: i64) -> Response {
        let charge_id = self.telegram.record_charge(user.id, stars, payload);
        let update = self.message_update(user, |message| {
            message.with_payment(SuccessfulPayment::stars(payload, stars, &charge_id))
        });
        let delivery = self.delivery.clone();
        tokio::spawn(async move { delivery.deliver(user.id.private_chat(), update, true).await });
        axum::Json(json!({ "status": "paid", "charge_id": charge_id })).into_response()
    }
}

impl SandboxUser {
    /// The user as Telegram describes them in updates and initData.
    fn telegram(self) -> User {
        User::person(self.id, self.first_name, self.language_code)
    }
}

fn find_user(id: UserId) -> Result<SandboxUser, Box<Response>> {
    USERS.into_iter().find(|user| user.id == id).ok_or_else(|| {
        Box::new((StatusCode::NOT_FOUND, format!("no sandbox user {id}")).into_response())
    })
}

/// The official `telegram-web-app.js` from the npm package the setup installs.
async fn telegram_script() -> Response {
    let candidates = [
        std::path::PathBuf::from(TELEGRAM_SCRIPT_FILE),
        std::path::PathBuf::from("..").join(TELEGRAM_SCRIPT_FILE),
    ];
    for path in candidates {
        if let Ok(script) = tokio::fs::read(&path).await {
            return (
                [
                    (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                    // Cached for a day, as phones keep the copy from telegram.org.
                    (header::CACHE_CONTROL, "public, max-age=86400"),
                ],
                script,
            )
                .into_response();
        }
    }
    (
        StatusCode::NOT_FOUND,
        "telegram-web-app.js is not installed: run ./scripts/setup (it installs @twa-dev/sdk in end2end/)",
    )
        .into_response()
}

async fn receive(
    State(sandbox): State<Sandbox>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    sandbox.receiver.receive(&headers, &body).await
}

async fn received(State(sandbox): State<Sandbox>) -> axum::Json<Vec<Received>> {
    axum::Json(sandbox.receiver.received())
}

async fn page() -> Html<&'static str> {
    Html(include_str!("host.html"))
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("host.js"),
    )
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("host.css"),
    )
}

async fn users() -> axum::Json<[SandboxUser; 3]> {
    axum::Json(USERS)
}

#[derive(Deserialize)]
struct UserQuery {
    user: UserId,
}

#[derive(Deserialize)]
struct LaunchQuery {
    user: UserId,
    /// The app's language for this launch (`en`, `ru`), instead of the user's own.
    #[serde(default)]
    lang: Option<String>,
}

/// Signed initData for the user, as Telegram puts it in the Mini App's URL fragment.
async fn launch(State(sandbox): State<Sandbox>, Query(query): Query<LaunchQuery>) -> Response {
    let user = match find_user(query.user) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let mut telegram_user = user.telegram();
    if let Some(lang) = query
        .lang
        .filter(|lang| matches!(lang.as_str(), "en" | "ru"))
    {
        telegram_user.language_code = Some(lang);
    }
    let user_field = serde_json::to_string(&telegram_user).unwrap_or_default();
    let auth_date = (crate::clock::now_ms() / 1000).to_string();
    let query_id = format!("AAE{}", uuid::Uuid::new_v4().simple());
    let init_data = sandbox.signer.sign(&[
        ("query_id", &query_id),
        ("user", &user_field),
        ("auth_date", &auth_date),
        ("chat_type", "sender"),
    ]);
    axum::Json(json!({ "init_data": init_data })).into_response()
}

/// Messages the bot sent to the user's chat.
async fn chat(State(sandbox): State<Sandbox>, Query(query): Query<UserQuery>) -> Response {
    let messages: Vec<Value> = sandbox
        .telegram
        .sent_messages()
        .into_iter()
        .filter(|message| message.chat_id == query.user.private_chat())
        .map(|message| json!({ "id": message.message_id, "text": message.text, "reply_markup": message.reply_markup }))
        .collect();
    axum::Json(messages).into_response()
}

#[derive(Deserialize)]
struct CommandRequest {
    user: UserId,
    text: String,
}

/// Text typed in the bot chat becomes a `message` update.
async fn command(
    State(sandbox): State<Sandbox>,
    axum::Json(request): axum::Json<CommandRequest>,
) -> Response {
    let user = match find_user(request.user) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let text = request.text.trim();
    if text.is_empty() || text.chars().count() > 4096 {
        return (StatusCode::BAD_REQUEST, "text must be 1-4096 characters").into_response();
    }
    let update = sandbox.message_update(user, |message| message.with_text(text));
    tokio::spawn(async move {
        sandbox
            .delivery
            .deliver(user.id.private_chat(), update, false)
            .await
    });
    StatusCode::ACCEPTED.into_response()
}

async fn invoice(State(sandbox): State<Sandbox>, Path(slug): Path<String>) -> Response {
    match sandbox.telegram.invoice_by_slug(&slug) {
        Some(link) => {
            axum::Json(json!({ "slug": link.slug, "title": link.title, "amount": link.amount }))
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such invoice").into_response(),
    }
}

#[derive(Deserialize)]
struct PayRequest {
    user: UserId,
    slug: String,
    /// "Pay, but the payment fails": the pre-checkout passes, the charge does not.
    #[serde(default)]
    fail: bool,
}

/// The buyer pressed Pay in the payment sheet: pre-checkout over HTTP (10 s deadline), then
/// the charge and the `successful_payment` delivery, which runs on in the background like
/// Telegram's. Answers with the status the sheet closes with.
async fn pay(
    State(sandbox): State<Sandbox>,
    axum::Json(request): axum::Json<PayRequest>,
) -> Response {
    let user = match find_user(request.user) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let Some(link) = sandbox.telegram.invoice_by_slug(&request.slug) else {
        return (StatusCode::NOT_FOUND, "no such invoice").into_response();
    };
    let query_id = uuid::Uuid::new_v4().simple().to_string();
    let query = Update::pre_checkout(
        sandbox.delivery.next_update_id(),
        PreCheckoutQuery {
            id: query_id.clone(),
            from: user.telegram(),
            currency: STARS.into(),
            total_amount: Stars(link.amount),
            invoice_payload: link.payload.clone(),
        },
    );
    let failed =
        |error: String| axum::Json(json!({ "status": "failed", "error": error })).into_response();
    match sandbox.delivery.ask_pre_checkout(&query_id, query).await {
        PreCheckout::Accepted => {}
        PreCheckout::Refused(message) => return failed(message),
        PreCheckout::Invalid(error) => {
            return failed(format!("the bot's answer was invalid: {error}"));
        }
        PreCheckout::TimedOut => {
            return failed("the bot did not answer the pre-checkout within 10 s".into());
        }
    }
    if request.fail {
        return failed("the payment was declined".into());
    }
    sandbox.charge(user, &link.payload, link.amount)
}

#[derive(Deserialize)]
struct UnmatchedRequest {
    user: UserId,
    stars: i64,
}

/// A payment the shop cannot match to an order (its payload names none, as after a lost
/// database or a link from elsewhere): Telegram took the Stars, so the shop records it and
/// holds it for the operator — what the console's Held tab is for.
async fn unmatched(
    State(sandbox): State<Sandbox>,
    axum::Json(request): axum::Json<UnmatchedRequest>,
) -> Response {
    let user = match find_user(request.user) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    if !(1..=100_000).contains(&request.stars) {
        return (StatusCode::BAD_REQUEST, "stars: 1 to 100000").into_response();
    }
    let payload = format!("unmatched-{}", uuid::Uuid::new_v4().simple());
    sandbox.charge(user, &payload, request.stars)
}

#[derive(Deserialize)]
struct RefundRequest {
    charge_id: String,
}

/// Refunds a charge on Telegram's side and delivers `refunded_payment`.
async fn refund(
    State(sandbox): State<Sandbox>,
    axum::Json(request): axum::Json<RefundRequest>,
) -> Response {
    let Some(charge) = sandbox.telegram.refund(&request.charge_id) else {
        return (StatusCode::CONFLICT, "unknown or already refunded charge").into_response();
    };
    let user = match find_user(charge.user_id) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let update = sandbox.message_update(user, |message| {
        message.with_refund(RefundedPayment::stars(
            &charge.payload,
            charge.amount,
            &charge.id,
        ))
    });
    let delivery = sandbox.delivery.clone();
    tokio::spawn(async move {
        delivery
            .deliver(user.id.private_chat(), update, false)
            .await
    });
    axum::Json(json!({ "ok": true })).into_response()
}

async fn charges(State(sandbox): State<Sandbox>, Query(query): Query<UserQuery>) -> Response {
    axum::Json(sandbox.telegram.charges_of(query.user)).into_response()
}

async fn knobs(State(sandbox): State<Sandbox>) -> axum::Json<Knobs> {
    axum::Json(sandbox.delivery.knobs())
}

async fn set_knobs(
    State(sandbox): State<Sandbox>,
    axum::Json(knobs): axum::Json<Knobs>,
) -> axum::Json<Knobs> {
    axum::Json(sandbox.delivery.set_knobs(knobs))
}
