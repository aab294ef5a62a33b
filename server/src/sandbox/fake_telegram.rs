//! A stand-in for Telegram's Bot API, with Telegram's envelope and input rules, for the
//! sandbox and for tests. It is mounted only in sandbox mode (`NDN_SANDBOX=1`), or served
//! on its own loopback port by tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// A message the bot sent, as the fake recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub message_id: i64,
    pub chat_id: i64,
    pub text: String,
    pub reply_markup: Option<Value>,
    /// When the fake accepted it.
    pub sent_at: Instant,
}

/// Telegram's flood limits for `sendMessage`, as its Bot FAQ gives them; past them the fake
/// answers `429 Too Many Requests` with a `retry_after`, as Telegram does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    /// Messages the bot may send in any one second, all chats together.
    pub per_second: usize,
    /// The least time between two messages to one chat.
    pub chat_gap: Duration,
}

impl FloodLimits {
    /// About 30 messages a second overall and one a second to a chat.
    pub const TELEGRAM: Self = Self {
        per_second: 30,
        chat_gap: Duration::from_secs(1),
    };
}

/// A created invoice link.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLink {
    pub slug: String,
    pub title: String,
    pub payload: String,
    pub amount: i64,
}

/// Makes the next `times` calls of `method` fail with `status` (and `retry_after` on 429).
/// Status 0 means no answer at all for `HANG` (a timeout for any sane client), then 504.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: String,
    pub status: u16,
    pub retry_after: Option<u64>,
    pub times: u32,
}

/// A Stars payment as the fake recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Charge {
    pub id: String,
    pub user_id: i64,
    pub amount: i64,
    pub payload: String,
    pub refunded: bool,
}

/// How long a "status 0" fault keeps the caller waiting.
pub const HANG: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Default)]
struct Inner {
    invoices: HashMap<String, InvoiceLink>,
    messages: Vec<SentMessage>,
    faults: Vec<Fault>,
    /// charge id → (user id, amount, payload, date)
    charges: HashMap<String, (i64, i64, String, i64)>,
    charge_order: Vec<String>,
    refunded: HashSet<String>,
    pre_checkout_answers: Vec<Value>,
    /// Pre-checkout queries sent and not yet answered, with when they were sent.
    open_queries: HashMap<String, std::time::Instant>,
    /// Answers given, by query id: (ok, error_message).
    query_answers: HashMap<String, (bool, Option<String>)>,
    webhook: Value,
    commands: Vec<Value>,
    menu_button: Option<Value>,
    calls: Vec<String>,
    /// Calls made through Telegram's test-environment path (`/bot<token>/test/<method>`).
    test_environment_calls: usize,
    next_id: i64,
    /// Updates waiting for `getUpdates`, in order.
    queued_updates: Vec<Value>,
    /// Enforced unless switched off (the benchmark's runs of the server alone).
    flood: Option<FloodLimits>,
    /// When the messages of the last second were accepted.
    last_second: VecDeque<Instant>,
    /// Each chat's last accepted message.
    chat_last: HashMap<i64, Instant>,
    /// `sendMessage` calls refused for going too fast.
    flood_refusals: usize,
    /// When each `429` was answered (for the limits or injected).
    too_many_requests: Vec<Instant>,
    /// The `offset` of every `getUpdates` call, in order.
    update_offsets: Vec<i64>,
    /// Methods whose answers are held back this long (after the call is recorded).
    delays: HashMap<String, Duration>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    token: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

type Answer = Result<Value, (u16, String, Option<u64>)>;

fn bad(description: &str) -> (u16, String, Option<u64>) {
    (400, format!("Bad Request: {description}"), None)
}

impl FakeTelegram {
    pub fn new(token: &str) -> Self {
        let inner = Inner {
            webhook: json!({ "url": "", "pending_update_count": 0 }),
            flood: Some(FloodLimits::TELEGRAM),
            ..Inner::default()
        };
        Self {
            token: token.into(),
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// Routes `/bot<token>/<method>` and `/bot<token>/test/<method>`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/{bot}/{method}", post(call))
            .route("/{bot}/test/{method}", post(call_test_environment))
            .with_state(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Answers every later call of `method` only `by` after it arrived (the call is counted
    /// on arrival): a slow Telegram, to hold a request of ours open.
    pub fn delay(&self, method: &str, by: Duration) {
        self.lock().delays.insert(method.to_owned(), by);
    }

    fn delay_of(&self, method: &str) -> Option<Duration> {
        self.lock().delays.get(method).copied()
    }

    /// The `offset` each `getUpdates` call asked from, in order.
    pub fn update_offsets(&self) -> Vec<i64> {
        self.lock().update_offsets.clone()
    }

    /// Consumes a pending "no answer" fault for `method`.
    fn take_hang(&self, method: &str) -> bool {
        let mut inner = self.lock();
        match inner
            .faults
            .iter_mut()
            .find(|f| f.method == method && f.times > 0 && f.status == 0)
        {
            Some(fault) => {
                fault.times -= 1;
                inner.calls.push(method.to_owned());
                true
            }
            None => false,
        }
    }

    /// Telegram's limits (the default), others, or none (`None`).
    pub fn set_flood_limits(&self, limits: Option<FloodLimits>) {
        self.lock().flood = limits;
    }

    /// How many `sendMessage` calls were refused with a 429 for going too fast.
    pub fn flood_refusals(&self) -> usize {
        self.lock().flood_refusals
    }

    /// When each `429 Too Many Requests` was answered, injected or for the limits.
    pub fn too_many_requests(&self) -> Vec<Instant> {
        self.lock().too_many_requests.clone()
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.lock().messages.clone()
    }

    /// The invoice behind a `https://t.me/$<slug>` link.
    pub fn invoice(&self, url: &str) -> Option<InvoiceLink> {
        self.invoice_by_slug(url.rsplit('$').next()?)
    }

    pub fn test_environment_calls(&self) -> usize {
        self.lock().test_environment_calls
    }

    pub fn calls(&self, method: &str) -> usize {
        self.lock().calls.iter().filter(|m| *m == method).count()
    }

    pub fn last_call_params(&self, method: &str) -> Option<Value> {
        let inner = self.lock();
        match method {
            "setWebhook" => Some(inner.webhook.clone()),
            "setMyCommands" => inner.commands.last().cloned(),
            "setChatMenuButton" => inner.menu_button.clone(),
            "answerPreCheckoutQuery" => inner.pre_checkout_answers.last().cloned(),
            _ => None,
        }
    }

    /// Records a Stars charge as Telegram would on a successful payment, returning its id.
    pub fn record_charge(&self, user_id: i64, amount: i64, payload: &str) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = format!(
            "stxSANDBOX{:06}{}",
            inner.next_id,
            uuid::Uuid::new_v4().simple()
        );
        let date = crate::clock::now_ms() / 1000;
        inner
            .charges
            .insert(id.clone(), (user_id, amount, payload.to_owned(), date));
        inner.charge_order.push(id.clone());
        id
    }

    /// Queues an update for `getUpdates` (long-polling mode).
    pub fn queue_update(&self, update: Value) {
        self.lock().queued_updates.push(update);
    }

    /// Queued updates from `offset` on; forgets the ones before it, as Telegram does.
    fn updates_from(&self, offset: i64) -> Result<Vec<Value>, (u16, String, Option<u64>)> {
        let mut inner = self.lock();
        if inner
            .webhook
            .get("url")
            .and_then(Value::as_str)
            .is_some_and(|url| !url.is_empty())
        {
            return Err((409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first".into(), None));
        }
        inner.calls.push("getUpdates".into());
        inner.update_offsets.push(offset);
        let id = |update: &Value| update.get("update_id").and_then(Value::as_i64).unwrap_or(0);
        inner.queued_updates.retain(|update| id(update) >= offset);
        Ok(inner.queued_updates.iter().take(100).cloned().collect())
    }

    /// Registers a pre-checkout query about to be sent; it may be answered for 10 seconds.
    pub fn open_pre_checkout(&self, query_id: &str) {
        self.lock()
            .open_queries
            .insert(query_id.to_owned(), std::time::Instant::now());
    }

    /// Applies an answer carried in a webhook response body, as Telegram does.
    pub fn answer_pre_checkout_inline(&self, params: &Value) -> Result<(), String> {
        self.lock()
            .answer_pre_checkout(params)
            .map_err(|(_, description, _)| description)
    }

    /// The answer to a pre-checkout query, once given.
    pub fn pre_checkout_answer(&self, query_id: &str) -> Option<(bool, Option<String>)> {
        self.lock().query_answers.get(query_id).cloned()
    }

    pub fn invoice_by_slug(&self, slug: &str) -> Option<InvoiceLink> {
        self.lock().invoices.get(slug).cloned()
    }

    /// Refunds a charge as Telegram support would; `None` when unknown or already refunded.
    pub fn refund(&self, charge_id: &str) -> Option<Charge> {
        let mut inner = self.lock();
        let charge = inner.charge(charge_id)?;
        inner
            .refunded
            .insert(charge_id.to_owned())
            .then_some(charge)
    }

    /// The charges of one user, newest first.
    pub fn charges_of(&self, user_id: i64) -> Vec<Charge> {
        let inner = self.lock();
        let mut charges: Vec<Charge> = inner
            .charge_order
            .iter()
            .filter_map(|id| inner.charge(id))
            .filter(|c| c.user_id == user_id)
            .collect();
        charges.reverse();
        charges
    }

    pub fn is_refunded(&self, charge_id: &str) -> bool {
        self.lock().refunded.contains(charge_id)
    }

    fn answer(&self, method: &str, params: &Value) -> Answer {
        let mut inner = self.lock();
        inner.calls.push(method.to_owned());
        if let Some(fault) = inner
            .faults
            .iter_mut()
            .find(|f| f.method == method && f.times > 0 && f.status != 0)
        {
            fault.times -= 1;
            let (status, retry_after) = (fault.status, fault.retry_after);
            if status == 429 {
                inner.too_many_requests.push(Instant::now());
            }
            let description = match status {
                429 => format!(
                    "Too Many Requests: retry after {}",
                    retry_after.unwrap_or(1)
                ),
                code if code >= 500 => "Internal Server Error".to_owned(),
                _ => "Bad Request: injected fault".to_owned(),
            };
            return Err((status, description, retry_after));
        }
        let str_param = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match method {
            "getMe" => {
                let id: i64 = self
                    .token
                    .split(':')
                    .next()
                    .and_then(|id| id.parse().ok())
                    .unwrap_or(1);
                Ok(
                    json!({ "id": id, "is_bot": true, "first_name": "NDN Sandbox", "username": "ndn_sandbox_bot" }),
                )
            }
            "createInvoiceLink" => {
                let link = validate_stars_invoice(params)?;
                inner.next_id += 1;
                let slug = format!(
                    "sandbox{}{}",
                    inner.next_id,
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                );
                let url = format!("https://t.me/${slug}");
                inner
                    .invoices
                    .insert(slug.clone(), InvoiceLink { slug, ..link });
                Ok(json!(url))
            }
            "answerPreCheckoutQuery" => {
                inner.answer_pre_checkout(params)?;
                Ok(json!(true))
            }
            "sendMessage" => {
                let chat_id = params
                    .get("chat_id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| bad("chat not found"))?;
                let text = str_param("text");
                if text.is_empty() {
                    return Err(bad("message text is empty"));
                }
                if text.chars().count() > 4096 {
                    return Err(bad("message is too long"));
                }
                let sent_at = Instant::now();
                inner.check_flood(chat_id, sent_at)?;
                inner.next_id += 1;
                let message_id = inner.next_id;
                inner.messages.push(SentMessage {
                    message_id,
                    chat_id,
                    text: text.clone(),
                    reply_markup: params.get("reply_markup").cloned(),
                    sent_at,
                });
                Ok(
                    json!({ "message_id": message_id, "chat": { "id": chat_id, "type": "private" }, "date": crate::clock::now_ms() / 1000, "text": text }),
                )
            }
            "refundStarPayment" => {
                let charge = str_param("telegram_payment_charge_id");
                let user_id = params
                    .get("user_id")
                    .and_then(Value::as_i64)
                    .unwrap_or_default();
                match inner.charges.get(&charge) {
                    None => Err(bad("CHARGE_NOT_FOUND")),
                    Some((owner, ..)) if *owner != user_id => Err(bad("USER_ID_INVALID")),
                    Some(_) if inner.refunded.contains(&charge) => {
                        Err(bad("CHARGE_ALREADY_REFUNDED"))
                    }
                    Some(_) => {
                        inner.refunded.insert(charge);
                        Ok(json!(true))
                    }
                }
            }
            "getMyStarBalance" => {
                let kept: i64 = inner
                    .charges
                    .iter()
                    .filter(|(id, _)| !inner.refunded.contains(*id))
                    .map(|(_, (_, amount, ..))| *amount)
                    .sum();
                Ok(json!({ "amount": kept, "nanostar_amount": 0 }))
            }
            "getStarTransactions" => {
                let offset = params.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
                let limit = params
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(100)
                    .clamp(1, 100) as usize;
                let mut all = Vec::new();
                for id in &inner.charge_order {
                    let (user, amount, payload, date) = &inner.charges[id];
                    all.push(
                        json!({ "id": id, "amount": amount, "date": date, "source": {
                        "type": "user", "transaction_type": "invoice_payment",
                        "user": { "id": user, "is_bot": false, "first_name": "Buyer" },
                        "invoice_payload": payload } }),
                    );
                    if inner.refunded.contains(id) {
                        all.push(json!({ "id": id, "amount": amount, "date": date, "receiver": {
                            "type": "user", "user": { "id": user, "is_bot": false, "first_name": "Buyer" } } }));
                    }
                }
                let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
                Ok(json!({ "transactions": page }))
            }
            "setWebhook" => {
                let url = str_param("url");
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    return Err(bad(
                        "bad webhook: An HTTPS URL must be provided for webhook",
                    ));
                }
                let secret = str_param("secret_token");
                if !secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    || secret.len() > 256
                {
                    return Err(bad("secret token contains unallowed characters"));
                }
                inner.webhook = params.clone();
                Ok(json!(true))
            }
            "getWebhookInfo" => {
                let webhook = &inner.webhook;
                Ok(json!({
                    "url": webhook.get("url").cloned().unwrap_or(json!("")),
                    "pending_update_count": 0,
                    "max_connections": webhook.get("max_connections").cloned().unwrap_or(json!(40)),
                    "allowed_updates": webhook.get("allowed_updates").cloned().unwrap_or(json!(["message"])),
                }))
            }
            "deleteWebhook" => {
                inner.webhook = json!({ "url": "" });
                Ok(json!(true))
            }
            "setMyCommands" => {
                if !params.get("commands").is_some_and(Value::is_array) {
                    return Err(bad("commands must be an array"));
                }
                inner.commands.push(params.clone());
                Ok(json!(true))
            }
            "setChatMenuButton" => {
                inner.menu_button = Some(params.clone());
                Ok(json!(true))
            }
            _ => Err((404, "Not Found".into(), None)),
        }
    }
}

/// How long Telegram waits for a pre-checkout answer.
pub const PRE_CHECKOUT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

impl Inner {
    /// Refuses a message that would go past the flood limits; counts it as sent otherwise.
    fn check_flood(
        &mut self,
        chat_id: i64,
        now: Instant,
    ) -> Result<(), (u16, String, Option<u64>)> {
        let Some(limits) = self.flood else {
            return Ok(());
        };
        let second = Duration::from_secs(1);
        while self
            .last_second
            .front()
            .is_some_and(|at| now.duration_since(*at) >= second)
        {
            self.last_second.pop_front();
        }
        let free_at = if self.last_second.len() >= limits.per_second {
            self.last_second.front().map(|oldest| *oldest + second)
        } else {
            self.chat_last
                .get(&chat_id)
                .map(|last| *last + limits.chat_gap)
                .filter(|free| *free > now)
        };
        if let Some(free_at) = free_at {
            self.flood_refusals += 1;
            self.too_many_requests.push(now);
            // Telegram gives whole seconds, at least one.
            let wait = free_at.duration_since(now).as_secs_f64().ceil().max(1.0) as u64;
            return Err((
                429,
                format!("Too Many Requests: retry after {wait}"),
                Some(wait),
            ));
        }
        self.last_second.push_back(now);
        self.chat_last.insert(chat_id, now);
        Ok(())
    }

    fn charge(&self, id: &str) -> Option<Charge> {
        let (user_id, amount, payload, _) = self.charges.get(id)?;
        Some(Charge {
            id: id.to_owned(),
            user_id: *user_id,
            amount: *amount,
            payload: payload.clone(),
            refunded: self.refunded.contains(id),
        })
    }

    /// Accepts an answer only for a query that was sent and is not yet answered or too late.
    fn answer_pre_checkout(&mut self, params: &Value) -> Result<(), (u16, String, Option<u64>)> {
        let id = params
            .get("pre_checkout_query_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ok = params
            .get("ok")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("ok is required"))?;
        let message = params
            .get("error_message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty());
        if !ok && message.is_none() {
            return Err(bad("ERROR_MESSAGE_EMPTY"));
        }
        let Some(sent) = self.open_queries.remove(id) else {
            return Err(bad("QUERY_ID_INVALID"));
        };
        if sent.elapsed() > PRE_CHECKOUT_DEADLINE {
            return Err(bad("QUERY_ID_INVALID"));
        }
        self.pre_checkout_answers.push(params.clone());
        self.query_answers
            .insert(id.to_owned(), (ok, message.map(str::to_owned)));
        Ok(())
    }
}

/// Telegram's rules for a Stars invoice (telegram.md §3).
fn validate_stars_invoice(params: &Value) -> Result<InvoiceLink, (u16, String, Option<u64>)> {
    let text = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
    let title = text("title");
    if title.is_empty() || title.chars().count() > 32 {
        return Err(bad("invoice title must be 1-32 characters"));
    }
    let description = text("description");
    if description.is_empty() || description.chars().count() > 255 {
        return Err(bad("invoice description must be 1-255 characters"));
    }
    let payload = text("payload");
    if payload.is_empty() || payload.len() > 128 {
        return Err(bad("invoice payload must be 1-128 bytes"));
    }
    if text("currency") != "XTR" {
        return Err(bad("CURRENCY_INVALID"));
    }
    if !text("provider_token").is_empty() {
        return Err(bad("PAYMENT_PROVIDER_INVALID"));
    }
    if params
        .get("max_tip_amount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0
    {
        return Err(bad("STARS_INVOICE_INVALID"));
    }
    let prices = params
        .get("prices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let [price] = prices.as_slice() else {
        return Err(bad("STARS_INVOICE_INVALID"));
    };
    let amount = price.get("amount").and_then(Value::as_i64).unwrap_or(0);
    if amount <= 0 {
        return Err(bad("STARS_INVOICE_INVALID"));
    }
    Ok(InvoiceLink {
        slug: String::new(),
        title: title.to_owned(),
        payload: payload.to_owned(),
        amount,
    })
}

async fn call_test_environment(
    state: State<FakeTelegram>,
    path: Path<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    state.lock().test_environment_calls += 1;
    call(state, path, body).await
}

async fn call(
    State(fake): State<FakeTelegram>,
    Path(path): Path<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let envelope = |code: u16, description: String, retry_after: Option<u64>| {
        let mut body = json!({ "ok": false, "error_code": code, "description": description });
        if let Some(seconds) = retry_after {
            body["parameters"] = json!({ "retry_after": seconds });
        }
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(body)).into_response()
    };
    let bot = path.get("bot").map(String::as_str).unwrap_or_default();
    if bot.strip_prefix("bot") != Some(&*fake.token) {
        return envelope(401, "Unauthorized".into(), None);
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(params) => params,
            Err(_) => return envelope(400, "Bad Request: can't parse JSON".into(), None),
        }
    };
    let method = path.get("method").map(String::as_str).unwrap_or_default();
    if fake.take_hang(method) {
        tokio::time::sleep(HANG).await;
        return envelope(504, "Gateway Timeout".into(), None);
    }
    if method == "getUpdates" {
        // Long polling: wait (briefly, for tests) until something is queued.
        let offset = params.get("offset").and_then(Value::as_i64).unwrap_or(0);
        let wait = params
            .get("timeout")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(2);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        loop {
            match fake.updates_from(offset) {
                Ok(updates) if !updates.is_empty() || tokio::time::Instant::now() >= deadline => {
                    return axum::Json(json!({ "ok": true, "result": updates })).into_response();
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err((code, description, retry_after)) => {
                    return envelope(code, description, retry_after);
                }
            }
        }
    }
    let answer = fake.answer(method, &params);
    if let Some(delay) = fake.delay_of(method) {
        tokio::time::sleep(delay).await;
    }
    match answer {
        Ok(result) => axum::Json(json!({ "ok": true, "result": result })).into_response(),
        Err((code, description, retry_after)) => envelope(code, description, retry_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(telegram: &FakeTelegram, chat_id: i64) -> Answer {
        telegram.answer("sendMessage", &json!({ "chat_id": chat_id, "text": "hi" }))
    }

    #[test]
    fn more_than_thirty_a_second_is_refused_with_retry_after() {
        let telegram = FakeTelegram::new("1:t");
        for chat in 0..30 {
            assert!(send(&telegram, chat).is_ok(), "message {chat}");
        }
        let refused = send(&telegram, 30).unwrap_err();
        assert_eq!(refused.0, 429);
        assert_eq!(refused.2, Some(1));
        assert!(refused.1.starts_with("Too Many Requests: retry after 1"));
        assert_eq!(telegram.sent_messages().len(), 30);
        assert_eq!(telegram.flood_refusals(), 1);
        assert_eq!(telegram.too_many_requests().len(), 1);
    }

    #[test]
    fn a_second_message_to_a_chat_within_a_second_is_refused() {
        let telegram = FakeTelegram::new("1:t");
        assert!(send(&telegram, 7).is_ok());
        assert_eq!(send(&telegram, 7).unwrap_err().0, 429);
        // Another chat is not held up by it.
        assert!(send(&telegram, 8).is_ok());
        telegram
            .lock()
            .chat_last
            .insert(7, Instant::now() - Duration::from_secs(1));
        assert!(send(&telegram, 7).is_ok());
    }

    #[test]
    fn without_limits_any_speed_is_accepted() {
        let telegram = FakeTelegram::new("1:t");
        telegram.set_flood_limits(None);
        for _ in 0..100 {
            assert!(send(&telegram, 7).is_ok());
        }
        assert_eq!(telegram.flood_refusals(), 0);
    }
}
