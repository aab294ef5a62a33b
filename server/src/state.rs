//! What every request handler shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::sync::Notify;

use crate::config::Config;
use crate::ledger::Ledger;
use crate::live::{LiveEvents, StreamTokens};
use crate::store::Store;
use crate::telegram::bot_api::BotApi;
use crate::telegram::init_data::InitDataValidator;
use crate::telemetry::metrics::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    /// Reads; and the writes outside the books (orders, the outbox, limits).
    pub store: Store,
    /// Every balance change, through the one door.
    pub ledger: Ledger,
    pub bot: BotApi,
    pub validator: InitDataValidator,
    pub events: LiveEvents,
    pub metrics: Arc<Metrics>,
    pub tokens: StreamTokens,
    /// Wakes the notification worker when a message is queued.
    pub outbox: Arc<Notify>,
    /// Wakes the event delivery worker when an event is written.
    pub hooks: Arc<Notify>,
    pub leptos: LeptosOptions,
    /// The current build's file names under `/pkg/`.
    pub bundle: crate::config::bundle::Bundle,
    /// Where pages load `telegram-web-app.js` from (telegram.org, or the sandbox's copy).
    pub telegram_script: String,
    /// The bot's @username, learned from `getMe` once after the start (see `learn_bot_username`).
    pub bot_username: std::sync::OnceLock<String>,
    /// The service API's keys found recently.
    pub api_keys: crate::keys::KeyBook,
    /// Cancelled when the server stops (open event streams end with it).
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// Asks Telegram for the bot's @username until it answers (backing off to a minute), so that
/// no update waits for `getMe`.
pub async fn learn_bot_username(state: AppState) {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        let asked = tokio::select! {
            () = state.shutdown.cancelled() => return,
            asked = state.bot.get_me() => asked,
        };
        match asked {
            Ok(me) => {
                if let Some(name) = me.username.filter(|name| !name.is_empty()) {
                    let _ = state.bot_username.set(name);
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "getMe failed: the bot's username is unknown for now")
            }
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(60));
    }
}
