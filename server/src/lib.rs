//! The NDN server: the Mini App (Leptos SSR + hydration), its server functions and Telegram's
//! webhook on one axum server.

pub mod api;
pub mod bot;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod contract;
pub mod http;
pub mod keys;
pub mod ledger;
pub mod live;
pub(crate) mod mini_app;
pub mod notifier;
pub mod outgoing;
pub mod sandbox;
pub mod state;
pub mod store;
pub mod telegram;
pub mod telemetry;
pub mod wallet;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode};
use crate::http::effects::Effects;
use crate::ledger::Ledger;
use crate::live::{LiveEvents, StreamTokens};
use crate::sandbox::fake_telegram::FakeTelegram;
use crate::sandbox::{Delivery, Sandbox};
use crate::state::{AppState, Shared};
use crate::store::Store;
use crate::telegram::bot_api::BotApi;
use crate::telegram::init_data::InitDataValidator;

const TELEGRAM_SCRIPT: &str = "https://telegram.org/js/telegram-web-app.js";

/// A server started by [`start`].
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `METRICS_ADDR` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    /// Telegram's stand-in, in sandbox mode.
    pub sandbox: Option<Sandbox>,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    /// The notification worker, the poller and the reconciler, as configured.
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops the worker, closes the pool.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        for worker in self.workers {
            let _ = worker.await;
        }
        self.state.store.close().await;
    }

    /// Ends everything at once, as a crash would: no request or delivery is finished, no lease
    /// released (for tests of what other instances do then).
    pub fn kill(self) {
        self.server.abort();
        for worker in self.workers {
            worker.abort();
        }
    }

    /// Resolves when the server stops by itself (it should not) or `stop` was requested.
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Opens the database, applies migrations and serves on `listener` until stopped.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let store = Store::connect_with(
        &config.database.url,
        config.database.max_connections,
        config.database.statement_timeout,
    )
    .await?;
    if config.database.migrate_on_start {
        store.migrate_to_current().await?;
    } else {
        store.require_current_schema().await?;
    }

    let sandbox = (config.mode == Mode::Sandbox).then(|| {
        let telegram = FakeTelegram::new(&config.telegram.bot_token);
        let webhook = format!("http://{}/webhook/telegram", config::loopback(addr));
        let delivery = Delivery::new(
            webhook,
            config.telegram.webhook_secret.clone(),
            telegram.clone(),
        );
        let receiver = sandbox::Receiver::new(
            store.clone(),
            format!(
                "http://{}{}",
                config::loopback(addr),
                sandbox::RECEIVER_ROUTE
            ),
        );
        Sandbox::new(telegram, delivery, receiver, &config.telegram.bot_token)
    });
    if let Some(sandbox) = &sandbox {
        if config.events.allow_private {
            sandbox.receiver.subscribe().await?;
        } else {
            tracing::warn!(
                "ENDPOINTS_ALLOW_PRIVATE=false: the sandbox's receiver is not subscribed"
            );
        }
    }
    let api_url = match &config.telegram.api_url {
        Some(url) => url.clone(),
        None => format!("http://{}/sandbox/bot-api", config::loopback(addr)),
    };
    let metrics = Arc::new(telemetry::metrics::Metrics::default());
    let bot = BotApi::with_timeout(
        &api_url,
        &config.telegram.bot_token,
        config.telegram.test_env,
        config.telegram.api_timeout,
    )
    .with_metrics(metrics.clone());

    // cargo-leptos passes the site's settings in the environment; without them (tests, a bare
    // binary) the defaults serve `target/site`.
    let from_cargo_leptos = std::env::var_os("LEPTOS_OUTPUT_NAME").is_some()
        || option_env!("LEPTOS_OUTPUT_NAME").is_some();
    let mut leptos = from_cargo_leptos
        .then(|| leptos::config::get_configuration(None).ok())
        .flatten()
        .map(|conf| conf.leptos_options)
        .unwrap_or_else(|| {
            leptos::config::LeptosOptions::builder()
                .output_name("ndn")
                .site_root("target/site")
                .build()
        });
    if leptos.output_name.is_empty() {
        leptos.output_name = "ndn".into();
    }
    leptos.site_addr = addr;
    if let Some(root) = &config.http.site_root {
        leptos.site_root = root.to_string_lossy().into_owned().into();
    } else if std::env::var_os("LEPTOS_SITE_ROOT").is_none()
        && let Some(beside) = config::bundle::site_beside_the_binary()
    {
        // The release: `site/` sits beside `server`, wherever it is run from.
        leptos.site_root = beside.to_string_lossy().into_owned().into();
    }
    let bundle = config::bundle::locate(&leptos, config.http.hash_file.as_deref());
    // A real bot serves production pages whatever LEPTOS_ENV says: Leptos defaults to its
    // development settings, whose policy lets pages open live-reload sockets anywhere.
    if config.mode == Mode::Production {
        leptos.env = leptos::config::Env::PROD;
    }
    let metrics_listener = match config.http.metrics_addr {
        Some(metrics_addr) => Some(TcpListener::bind(metrics_addr).await.map_err(|error| {
            anyhow::anyhow!("cannot listen on METRICS_ADDR {metrics_addr}: {error}")
        })?),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;

    let events = LiveEvents::default();
    let outbox = Arc::new(Notify::new());
    let hooks = Arc::new(Notify::new());
    let effects = Effects::serving(
        metrics.clone(),
        store.engine(),
        events.clone(),
        outbox.clone(),
    )
    .waking_hooks(hooks.clone());
    let state = AppState::new(Shared {
        validator: InitDataValidator::new(
            &config.telegram.bot_token,
            config.telegram.init_data_max_age,
        ),
        tokens: StreamTokens::new(
            &config.telegram.bot_token,
            config.telegram.init_data_max_age,
        ),
        events,
        metrics,
        outbox,
        hooks,
        bot,
        ledger: Ledger::new(store.clone(), effects),
        store,
        leptos,
        bundle,
        telegram_script: if sandbox.is_some() {
            sandbox::TELEGRAM_SCRIPT_ROUTE
        } else {
            TELEGRAM_SCRIPT
        }
        .to_owned(),
        bot_username: std::sync::OnceLock::new(),
        api_keys: keys::KeyBook::default(),
        shutdown: CancellationToken::new(),
        config,
    });

    let router = http::router(state.clone(), sandbox.as_ref());
    let shutdown = state.shutdown.clone();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        }
    });
    let mut workers = vec![
        tokio::spawn(notifier::run(state.clone(), shutdown.clone())),
        tokio::spawn(outgoing::worker::run(state.clone(), shutdown.clone())),
        tokio::spawn(state::learn_bot_username(state.clone())),
        tokio::spawn(ledger::run_upkeep(state.ledger.clone(), shutdown.clone())),
        tokio::spawn(outgoing::retention::run(
            outgoing::EventStore::new(&state.store),
            state.config.events.retention,
            shutdown.clone(),
        )),
    ];
    if let Some(listener) = metrics_listener {
        let metrics = http::metrics::router().with_state(state.clone());
        let shutdown = shutdown.clone();
        workers.push(tokio::spawn(async move {
            let served = axum::serve(listener, metrics)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics listener stopped");
            }
        }));
    }
    workers.push(tokio::spawn(match state.store.engine() {
        store::Engine::Postgres => live::listen(
            state.events.clone(),
            state.config.database.url.clone(),
            shutdown.clone(),
        )
        .boxed(),
        store::Engine::Sqlite => {
            live::relay(state.events.clone(), state.store.clone(), shutdown.clone()).boxed()
        }
    }));
    if state.config.telegram.poll_updates {
        workers.push(tokio::spawn(bot::poller::run(
            state.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(interval) = state.config.telegram.reconcile_interval {
        workers.push(tokio::spawn(bot::operator::reconcile_every(
            interval,
            state.clone(),
            shutdown.clone(),
        )));
    }
    Ok(Running {
        addr,
        metrics_addr,
        state,
        sandbox,
        shutdown,
        server,
        workers,
    })
}
