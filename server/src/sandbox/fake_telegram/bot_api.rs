//! The fake's Bot API over HTTP: `/bot<token>/<method>` answered as Telegram would, with the
//! faults, delays and flood limits a test set.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::*;

impl FakeTelegram {
    /// Routes `/bot<token>/<method>` and `/bot<token>/test/<method>`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/{bot}/{method}", post(call))
            .route("/{bot}/test/{method}", post(call_test_environment))
            .with_state(self.clone())
    }

    pub(super) fn answer(&self, method: &str, params: &Value) -> Answer {
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
                    .map_or(UserId(0), UserId);
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
