//! Sends the bot's queued messages at the pace Telegram allows: at most
//! `BOT_MESSAGES_PER_SECOND` for the whole bot (every instance together) and one a second to a
//! chat, each chat's messages in order. A `429 Too Many Requests` stops all sending for its
//! `retry_after`, then the same message goes first. Other failures are retried with backoff;
//! the queue is in the database, so nothing is lost in a restart, and each message is marked
//! sent once delivered.
//!
//! How the rate holds across instances: the bot's send slots are handed out one at a time by
//! the database (a row of `bot_state` keeps the next free slot; each claim moves it on by
//! `1 / BOT_MESSAGES_PER_SECOND`, and a `429` moves it past the pause), so two instances share
//! the rate instead of each taking all of it. SQLite is served by one instance: there the
//! slots are counted in memory and cost no write. What a worker claimed is leased to it
//! (`OUTBOX_LEASE`), renewed while it waits its turn.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{micros, millis, now_micros, now_ms};
use crate::state::AppState;
mod pacer;
pub mod queue;

use crate::telegram::bot_api::BotApiError;
use pacer::Pacer;
use queue::{ClaimedMessage, Queue};

/// The most messages claimed at once.
const BATCH: i64 = 128;
/// Due retries and other instances' messages are looked for at least this often.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// While sending, more messages are claimed at most this often.
const CLAIM_EVERY: Duration = Duration::from_millis(250);
/// Deliveries are recorded together, at least this often (one write for many messages).
const RECORD_EVERY: Duration = Duration::from_millis(200);
/// Telegram asks for at most one message a second to a chat; the margin covers the network's
/// jitter between two requests.
pub const CHAT_GAP: Duration = Duration::from_millis(1_100);
/// `BOT_MESSAGES_PER_SECOND` slots take this long, not one second: requests leave evenly
/// spaced but reach Telegram a few milliseconds early or late, and 25 slots in exactly one
/// second would put a 26th in some second where they arrive.
pub(super) const SLOT_SPAN: Duration = Duration::from_millis(1_040);
/// Shared slots are asked for this far ahead, so that the time the database takes to answer
/// does not make a slot late before it is used.
pub(super) const SLOT_LEAD: Duration = Duration::from_millis(50);
/// A send this much later than its slot (microseconds) moves the following slots.
const LATE_US: i64 = 5_000;
/// Requests waiting for Telegram's answer at once.
const MAX_IN_FLIGHT: usize = 64;
const MAX_BACKOFF_SECS: u64 = 300;
/// After this many attempts (about a day with the backoff cap) a message is given up.
const MAX_ATTEMPTS: i64 = 300;

/// How one send ended, reported back to the loop that owns the queue.
enum Outcome {
    Sent(ClaimedMessage),
    /// A `429`: everything waits `retry_after` seconds, then this message goes again.
    RateLimited(ClaimedMessage, u64),
    /// Another failure, recorded: a retry later (the chat waits for it) or given up.
    Failed {
        message: ClaimedMessage,
        retry: bool,
    },
}

/// The messages of one chat this worker holds, oldest first.
struct Chat {
    waiting: VecDeque<ClaimedMessage>,
    /// Not before this, a second after the chat's last message.
    not_before: Instant,
    /// A message of the chat is on its way; the next waits for its answer.
    sending: bool,
}

struct Notifier {
    state: AppState,
    queue: Queue,
    pacer: Pacer,
    chats: BTreeMap<i64, Chat>,
    in_flight: usize,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    /// Delivered, not yet recorded, and since when the oldest waits.
    delivered: Vec<i64>,
    delivered_since: Option<Instant>,
    /// After a `429`, nothing is sent before this.
    paused_until: Option<Instant>,
    last_claim: Option<Instant>,
}

pub async fn run(state: AppState, shutdown: CancellationToken) {
    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel();
    let wake = state.outbox.clone();
    let queue = Queue::new(&state.store);
    let mut notifier = Notifier {
        pacer: Pacer::new(&state, &queue),
        queue,
        state,
        chats: BTreeMap::new(),
        in_flight: 0,
        outcomes_tx,
        delivered: Vec::new(),
        delivered_since: None,
        paused_until: None,
        last_claim: None,
    };
    while !shutdown.is_cancelled() {
        while let Ok(outcome) = outcomes.try_recv() {
            notifier.settle(outcome).await;
        }
        notifier.record_if_due(false).await;
        notifier.claim_if_due().await;
        notifier.renew_if_due().await;
        if let Some(chat_id) = notifier.ready_chat() {
            let slot = match notifier.pacer.slot().await {
                Ok(slot) => slot,
                Err(error) => {
                    tracing::warn!(%error, "cannot take a send slot; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(IDLE_POLL) => {}
                        () = shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
            let wait = u64::try_from(slot - now_micros()).unwrap_or(0);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_micros(wait)) => {}
                () = shutdown.cancelled() => break,
            }
            // A 429 that came back meanwhile stops this send too (the slot is let go).
            while let Ok(outcome) = outcomes.try_recv() {
                notifier.settle(outcome).await;
            }
            match notifier.pacer.paused_elsewhere().await {
                Ok(Some(until)) => {
                    let wait =
                        Duration::from_micros(u64::try_from(until - now_micros()).unwrap_or(0));
                    notifier.pause_for(wait);
                }
                Ok(None) => {}
                // The database is away: the message's lease (checked before it goes) decides.
                Err(error) => tracing::warn!(%error, "cannot read the shared pause"),
            }
            if !notifier.paused() {
                notifier.send(chat_id).await;
                let sent = now_micros();
                if sent - slot > LATE_US
                    && let Err(error) = notifier.pacer.sent_late(sent).await
                {
                    tracing::warn!(%error, "cannot move the send slots after a late send");
                }
            }
            continue;
        }
        // Nothing may go now: wait for an answer, a wake-up, a chat's or the pause's end.
        let now = Instant::now();
        let until = notifier
            .chats
            .values()
            .filter(|chat| !chat.sending && !chat.waiting.is_empty())
            .map(|chat| chat.not_before)
            .chain(notifier.paused_until)
            .chain(notifier.delivered_since.map(|since| since + RECORD_EVERY))
            .filter(|at| *at > now)
            .min()
            .unwrap_or(now + IDLE_POLL)
            .min(now + IDLE_POLL);
        tokio::select! {
            Some(outcome) = outcomes.recv() => notifier.settle(outcome).await,
            () = wake.notified() => notifier.last_claim = None,
            () = tokio::time::sleep_until(until.into()) => {}
            () = shutdown.cancelled() => break,
        }
    }
    // Stopping: the requests on their way finish (the client's timeout bounds them), their
    // deliveries are recorded, and what was not sent goes back to the queue for the others.
    while notifier.in_flight > 0 {
        match outcomes.recv().await {
            Some(outcome) => notifier.settle(outcome).await,
            None => break,
        }
    }
    notifier.record_if_due(true).await;
    let held: Vec<(i64, i64)> = notifier.held().collect();
    if let Err(error) = notifier.queue.release(&held).await {
        tracing::warn!(%error, "cannot give back the unsent messages; their lease will run out");
    }
}

impl Notifier {
    fn paused(&mut self) -> bool {
        match self.paused_until {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                self.paused_until = None;
                false
            }
            None => false,
        }
    }

    /// Nothing is sent from here for `wait`; returns when that ends.
    fn pause_for(&mut self, wait: Duration) -> Instant {
        let until = Instant::now() + wait;
        let until = self.paused_until.map_or(until, |at| at.max(until));
        self.paused_until = Some(until);
        until
    }

    fn waiting(&self) -> usize {
        self.chats.values().map(|chat| chat.waiting.len()).sum()
    }

    /// `(id, leased_until)` of every message held and not on its way.
    fn held(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.chats.values().flat_map(|chat| {
            chat.waiting
                .iter()
                .map(|message| (message.id, message.leased_until))
        })
    }

    /// The chat whose turn it is: ready, and with the oldest message.
    fn ready_chat(&mut self) -> Option<i64> {
        if self.in_flight >= MAX_IN_FLIGHT || self.paused() {
            return None;
        }
        let now = Instant::now();
        self.chats
            .iter()
            .filter(|(_, chat)| !chat.sending && chat.not_before <= now)
            .filter_map(|(id, chat)| Some((chat.waiting.front()?.id, *id)))
            .min()
            .map(|(_, chat_id)| chat_id)
    }

    /// Claims more when fewer than a second's worth wait here (and a wake-up, the idle poll
    /// or, while sending, `CLAIM_EVERY` says it is time).
    async fn claim_if_due(&mut self) {
        let per_second = i64::from(self.state.config.telegram.bot_messages_per_second);
        let waiting = i64::try_from(self.waiting()).unwrap_or(i64::MAX);
        if waiting >= per_second {
            return;
        }
        let busy = waiting > 0 || self.in_flight > 0;
        let due = match self.last_claim {
            None => true,
            Some(at) => at.elapsed() >= if busy { CLAIM_EVERY } else { IDLE_POLL },
        };
        // A wake-up that came while sending counts as well.
        if !due && self.state.outbox.notified().now_or_never().is_none() {
            return;
        }
        self.last_claim = Some(Instant::now());
        let limit = (2 * per_second).clamp(8, BATCH) - waiting;
        let claimed = match self
            .queue
            .claim(limit, self.state.config.telegram.outbox_lease, CHAT_GAP)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox; retrying");
                return;
            }
        };
        let now = Instant::now();
        for message in claimed {
            self.chats
                .entry(message.chat_id)
                .or_insert_with(|| Chat {
                    waiting: VecDeque::new(),
                    not_before: now,
                    sending: false,
                })
                .waiting
                .push_back(message);
        }
    }

    /// Renews the leases of what waits here once half of the earliest lease has gone; a
    /// chat that lost a message to another worker is let go entirely (keeping its order).
    async fn renew_if_due(&mut self) {
        let lease = self.state.config.telegram.outbox_lease;
        let half = millis(lease) / 2;
        let Some(earliest) = self.held().map(|(_, until)| until).min() else {
            return;
        };
        if earliest - now_ms() > half {
            return;
        }
        let held: Vec<(i64, i64)> = self.held().collect();
        let renewed = match self.queue.renew(&held, lease).await {
            Ok(renewed) => renewed.into_iter().collect::<BTreeMap<i64, i64>>(),
            Err(error) => {
                tracing::warn!(%error, "cannot renew the notifications' lease");
                return;
            }
        };
        let mut lost = Vec::new();
        for (chat_id, chat) in &mut self.chats {
            for message in &mut chat.waiting {
                match renewed.get(&message.id) {
                    Some(until) => message.leased_until = *until,
                    None => lost.push(*chat_id),
                }
            }
        }
        lost.dedup();
        for chat_id in lost {
            self.let_go(chat_id).await;
        }
    }

    /// Gives a chat's waiting messages back to the queue.
    async fn let_go(&mut self, chat_id: i64) {
        let Some(chat) = self.chats.get_mut(&chat_id) else {
            return;
        };
        let held: Vec<(i64, i64)> = chat
            .waiting
            .drain(..)
            .map(|message| (message.id, message.leased_until))
            .collect();
        if !chat.sending {
            self.chats.remove(&chat_id);
        }
        if let Err(error) = self.queue.release(&held).await {
            tracing::warn!(%error, "cannot give messages back; their lease will run out");
        }
    }

    /// Sends the next message of `chat_id` in the background.
    async fn send(&mut self, chat_id: i64) {
        let quarter = millis(self.state.config.telegram.outbox_lease) / 4;
        let Some(chat) = self.chats.get_mut(&chat_id) else {
            return;
        };
        let Some(message) = chat.waiting.pop_front() else {
            return;
        };
        if message.leased_until - now_ms() < quarter {
            // The lease could not be renewed (the database is away): another worker may take
            // the message soon, so this one must not send it.
            chat.waiting.push_front(message);
            self.let_go(chat_id).await;
            return;
        }
        chat.sending = true;
        chat.not_before = Instant::now() + CHAT_GAP;
        self.in_flight += 1;
        let state = self.state.clone();
        let queue = self.queue.clone();
        let outcomes = self.outcomes_tx.clone();
        tokio::spawn(async move {
            let outcome = deliver(&state, &queue, message).await;
            let _ = outcomes.send(outcome);
        });
    }

    async fn settle(&mut self, outcome: Outcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let chat_id = match &outcome {
            Outcome::Sent(message)
            | Outcome::RateLimited(message, _)
            | Outcome::Failed { message, .. } => message.chat_id,
        };
        match outcome {
            Outcome::Sent(message) => {
                self.delivered.push(message.id);
                self.delivered_since.get_or_insert_with(Instant::now);
            }
            Outcome::RateLimited(message, retry_after) => {
                let wait = Duration::from_secs(retry_after.max(1));
                let until = self.pause_for(wait);
                let until_us = now_micros().saturating_add(micros(wait));
                if let Err(error) = self.pacer.rate_limited(until_us).await {
                    tracing::warn!(%error, "cannot share the pause with the other instances");
                }
                if let Some(chat) = self.chats.get_mut(&chat_id) {
                    chat.waiting.push_front(message);
                } else {
                    self.chats.insert(
                        chat_id,
                        Chat {
                            waiting: VecDeque::from([message]),
                            not_before: until,
                            sending: true,
                        },
                    );
                }
            }
            Outcome::Failed { retry: true, .. } => {
                // The chat's later messages wait for this one's retry (the claim will not hand
                // them out before it), so they go back now.
                self.let_go(chat_id).await;
            }
            Outcome::Failed { retry: false, .. } => {}
        }
        if let Some(chat) = self.chats.get_mut(&chat_id) {
            chat.sending = false;
            if chat.waiting.is_empty() {
                self.chats.remove(&chat_id);
            }
        }
    }

    /// Records the deliveries in one statement when there are many, when the oldest has
    /// waited `RECORD_EVERY`, when nothing else is on its way, or when `now`.
    async fn record_if_due(&mut self, now: bool) {
        let Some(since) = self.delivered_since else {
            return;
        };
        if !(now
            || self.in_flight == 0
            || self.delivered.len() >= usize::try_from(BATCH).unwrap_or(128)
            || since.elapsed() >= RECORD_EVERY)
        {
            return;
        }
        let delivered = std::mem::take(&mut self.delivered);
        self.delivered_since = None;
        if let Err(error) = self.queue.sent(&delivered).await {
            // The leases run out and the messages are sent again: at least once, never lost.
            tracing::error!(%error, count = delivered.len(), "cannot record deliveries");
        }
    }
}

/// Sends one message; failures other than a `429` are recorded here.
async fn deliver(state: &AppState, queue: &Queue, message: ClaimedMessage) -> Outcome {
    let markup = message
        .reply_markup
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    let result = state
        .bot
        .send_message(message.chat_id, &message.text, markup.as_ref())
        .await;
    let error = match result {
        Ok(_) => {
            state.metrics.notifications_sent.inc();
            return Outcome::Sent(message);
        }
        Err(error) => error,
    };
    state.metrics.notifications_failed.inc();
    if let BotApiError::Api { code: 429, .. } = error {
        let retry_after = error.retry_after().unwrap_or(1);
        tracing::warn!(
            message_id = message.id,
            retry_after,
            "Telegram asks the bot to slow down; all sending pauses"
        );
        return Outcome::RateLimited(message, retry_after);
    }
    let retry = error.is_transient() && message.attempts < MAX_ATTEMPTS;
    let recorded = if retry {
        let wait = backoff_secs(message.attempts);
        tracing::warn!(message_id = message.id, %error, wait, "sendMessage failed; will retry");
        queue
            .retry(message.id, Duration::from_secs(wait), error.description())
            .await
    } else {
        tracing::error!(message_id = message.id, %error, "sendMessage failed for good");
        queue.failed(message.id, error.description()).await
    };
    if let Err(error) = recorded {
        tracing::error!(message_id = message.id, %error, "cannot record the failed delivery");
    }
    Outcome::Failed { message, retry }
}

fn backoff_secs(attempts: i64) -> u64 {
    let exponent = u32::try_from(attempts.clamp(1, 9) - 1).unwrap_or(0);
    2u64.pow(exponent).min(MAX_BACKOFF_SECS)
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_secs(1), 1);
        assert_eq!(backoff_secs(2), 2);
        assert_eq!(backoff_secs(5), 16);
        assert_eq!(backoff_secs(100), 256);
    }
}
