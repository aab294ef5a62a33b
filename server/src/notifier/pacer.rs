//! The bot's send slots: `BOT_MESSAGES_PER_SECOND` for the whole bot, and the pause a `429`
//! asks for. One instance (SQLite) counts them in memory; a cluster claims them from the
//! database ([`Queue::next_send_slot`]).

use std::time::Duration;

use super::queue::Queue;
use super::{SLOT_LEAD, SLOT_SPAN};
use crate::clock::{micros, now_micros};
use crate::state::AppState;
use crate::store::Engine;

/// Hands out the bot's send slots.
pub(super) enum Pacer {
    /// One instance (SQLite): the next free slot, in microseconds since the epoch.
    Local { interval: Duration, next: i64 },
    /// Every instance of the cluster: the slots are claimed from the database.
    Shared { interval: Duration, queue: Queue },
}

impl Pacer {
    pub(super) fn new(state: &AppState, queue: &Queue) -> Self {
        let per_second = state.config.telegram.bot_messages_per_second.max(1);
        let interval = SLOT_SPAN / per_second;
        match state.store.engine() {
            Engine::Sqlite => Self::Local { interval, next: 0 },
            Engine::Postgres => Self::Shared {
                interval,
                queue: queue.clone(),
            },
        }
    }

    /// The time of this worker's next send, in microseconds since the epoch.
    pub(super) async fn slot(&mut self) -> Result<i64, crate::store::StoreError> {
        match self {
            Self::Local { interval, next } => {
                let slot = (*next).max(now_micros());
                *next = slot.saturating_add(micros(*interval));
                Ok(slot)
            }
            Self::Shared { interval, queue } => queue.next_send_slot(*interval, SLOT_LEAD).await,
        }
    }

    /// A `429`: no slot before `until` (microseconds since the epoch), and on a cluster the
    /// other instances' slots already taken do not send either.
    pub(super) async fn rate_limited(
        &mut self,
        until: i64,
    ) -> Result<(), crate::store::StoreError> {
        match self {
            Self::Local { .. } => self.pause(until).await,
            Self::Shared { queue, .. } => queue.pause_all_sending(until).await,
        }
    }

    /// On a cluster, the end of another instance's `429` pause if it is not over: a slot taken
    /// before that `429` came back must not be used.
    pub(super) async fn paused_elsewhere(&self) -> Result<Option<i64>, crate::store::StoreError> {
        match self {
            Self::Local { .. } => Ok(None),
            Self::Shared { queue, .. } => {
                let until = queue.sending_paused_until().await?;
                Ok((until > now_micros()).then_some(until))
            }
        }
    }

    /// A send that left at `sent` (microseconds), later than its slot: the slots after it
    /// move so that they keep their distance from when it really left.
    pub(super) async fn sent_late(&mut self, sent: i64) -> Result<(), crate::store::StoreError> {
        let (Self::Local { interval, .. } | Self::Shared { interval, .. }) = self;
        let resume = sent.saturating_add(micros(*interval));
        self.pause(resume).await
    }

    /// No slot before `until` (microseconds since the epoch).
    pub(super) async fn pause(&mut self, until: i64) -> Result<(), crate::store::StoreError> {
        match self {
            Self::Local { next, .. } => {
                *next = (*next).max(until);
                Ok(())
            }
            Self::Shared { queue, .. } => queue.pause_sending(until).await,
        }
    }
}
