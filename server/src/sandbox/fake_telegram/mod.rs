//! A stand-in for Telegram's Bot API, with Telegram's envelope and input rules, for the
//! sandbox and for tests. It is mounted only in sandbox mode (`NDN_SANDBOX=1`), or served
//! on its own loopback port by tests.

mod bot_api;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::wallet::ids::UserId;
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
    pub user_id: UserId,
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
    charges: HashMap<String, (UserId, i64, String, i64)>,
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
    pub fn record_charge(&self, user_id: UserId, amount: i64, payload: &str) -> String {
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
    pub fn charges_of(&self, user_id: UserId) -> Vec<Charge> {
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
