//! Fake Telegram's side of the webhook: updates POSTed over real HTTP to the server's webhook
//! with the secret header, at least once, retried with Telegram-like backoff, one in flight
//! per chat, with fault knobs for the hard cases.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bot::webhook::SECRET_HEADER;
use crate::sandbox::fake_telegram::{FakeTelegram, PRE_CHECKOUT_DEADLINE};
use crate::telegram::updates::Update;

/// Faults to inject into deliveries, set from the sandbox page or its HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Knobs {
    /// Deliver each `successful_payment` and `refunded_payment` this many times at once.
    pub copies: u32,
    /// Hold `successful_payment` back this many seconds.
    pub delay_secs: u32,
    /// Lose the answer to the first delivery, so Telegram delivers again.
    pub drop_first: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            copies: 1,
            delay_secs: 0,
            drop_first: false,
        }
    }
}

impl Knobs {
    fn bounded(self) -> Self {
        Self {
            copies: self.copies.clamp(1, 20),
            delay_secs: self.delay_secs.min(120),
            ..self
        }
    }
}

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Telegram keeps a message update for a day; the sandbox gives up sooner.
const MAX_ATTEMPTS: u32 = 30;

#[derive(Clone)]
pub struct Delivery {
    http: reqwest::Client,
    webhook_url: String,
    secret: String,
    telegram: FakeTelegram,
    knobs: Arc<Mutex<Knobs>>,
    next_update_id: Arc<AtomicI64>,
    chats: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Delivery {
    pub fn new(webhook_url: String, secret: String, telegram: FakeTelegram) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .expect("a TLS backend is compiled in");
        let first_id = crate::clock::now_ms() / 1000 * 10;
        Self {
            http,
            webhook_url,
            secret,
            telegram,
            knobs: Arc::default(),
            next_update_id: Arc::new(AtomicI64::new(first_id)),
            chats: Arc::default(),
        }
    }

    pub fn knobs(&self) -> Knobs {
        *self.knobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_knobs(&self, knobs: Knobs) -> Knobs {
        let knobs = knobs.bounded();
        *self.knobs.lock().unwrap_or_else(|p| p.into_inner()) = knobs;
        knobs
    }

    pub fn next_update_id(&self) -> i64 {
        self.next_update_id.fetch_add(1, Ordering::Relaxed)
    }

    fn chat_lock(&self, chat_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        chats.entry(chat_id).or_default().clone()
    }

    /// One POST of an update; the status and the body of a 2xx answer.
    async fn post(&self, update: &Update) -> Result<(u16, Value), String> {
        let response = self
            .http
            .post(&self.webhook_url)
            .header(SECRET_HEADER, &self.secret)
            .json(update)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// Sends a pre-checkout query and waits for its answer, given in the webhook response or by
    /// an `answerPreCheckoutQuery` call, for at most Telegram's 10 seconds.
    pub async fn ask_pre_checkout(&self, query_id: &str, update: Update) -> PreCheckout {
        self.telegram.open_pre_checkout(query_id);
        let started = tokio::time::Instant::now();
        let deadline = started + PRE_CHECKOUT_DEADLINE;
        while tokio::time::Instant::now() < deadline {
            let remaining = deadline - tokio::time::Instant::now();
            match tokio::time::timeout(remaining, self.post(&update)).await {
                Ok(Ok((status, body))) if (200..300).contains(&status) => {
                    let inline = body.get("method").and_then(Value::as_str)
                        == Some("answerPreCheckoutQuery");
                    if inline && let Err(error) = self.telegram.answer_pre_checkout_inline(&body) {
                        return PreCheckout::Invalid(error);
                    }
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                Err(_) => break,
            }
        }
        // The bot may also answer with a separate API call while we wait.
        while tokio::time::Instant::now() < deadline {
            if let Some((ok, message)) = self.telegram.pre_checkout_answer(query_id) {
                return if ok {
                    PreCheckout::Accepted
                } else {
                    PreCheckout::Refused(message.unwrap_or_default())
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        PreCheckout::TimedOut
    }

    /// Delivers a message update to its chat at least once, with the knobs applied; returns
    /// when every copy was acknowledged (or given up).
    pub async fn deliver(&self, chat_id: i64, update: Update, delay: bool) {
        let knobs = self.knobs();
        let lock = self.chat_lock(chat_id);
        let _in_flight = lock.lock().await;
        if delay && knobs.delay_secs > 0 {
            tokio::time::sleep(Duration::from_secs(knobs.delay_secs.into())).await;
        }
        if knobs.drop_first {
            // The server processes it, but the answer is "lost" and Telegram tries again.
            let _ = self.post(&update).await;
        }
        let copies = (0..knobs.copies).map(|_| self.deliver_once(&update));
        futures::future::join_all(copies).await;
    }

    async fn deliver_once(&self, update: &Update) {
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=MAX_ATTEMPTS {
            match self.post(update).await {
                Ok((status, _)) if (200..300).contains(&status) => return,
                Ok((status, _)) => tracing::warn!(
                    status,
                    attempt,
                    "sandbox: webhook refused the update; retrying"
                ),
                Err(error) => {
                    tracing::warn!(%error, attempt, "sandbox: webhook unreachable; retrying")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::error!("sandbox: update given up after {MAX_ATTEMPTS} attempts");
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreCheckout {
    Accepted,
    Refused(String),
    /// The answer broke Telegram's rules (e.g. `ok:false` without a message).
    Invalid(String),
    TimedOut,
}
