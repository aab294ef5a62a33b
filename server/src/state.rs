//! What every request handler shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::sync::Notify;

use crate::bot_api::BotApi;
use crate::config::Config;
use crate::events::{LiveEvents, StreamTokens};
use crate::init_data::InitDataValidator;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub bot: BotApi,
    pub validator: InitDataValidator,
    pub events: LiveEvents,
    pub metrics: Arc<Metrics>,
    pub tokens: StreamTokens,
    /// Wakes the notification worker when a message is queued.
    pub outbox: Arc<Notify>,
    pub leptos: LeptosOptions,
    /// Where pages load `telegram-web-app.js` from (telegram.org, or the sandbox's copy).
    pub telegram_script: String,
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
