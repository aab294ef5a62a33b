//! The operator's backend, played by the sandbox: an endpoint at `/sandbox/receiver`
//! subscribed to every event, which checks each signature as a real receiver should and keeps
//! the last events for the host page's receiver panel.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::clock::now_ms;
use crate::contract::event::EventType;
use crate::outgoing::EventStore;
use crate::outgoing::signature::{self, EVENT_ID_HEADER, SIGNATURE_HEADER};
use crate::store::Store;

pub const RECEIVER_ROUTE: &str = "/sandbox/receiver";
/// Events kept for the panel.
const KEPT: usize = 50;

/// One POST as the receiver saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub event_id: String,
    pub event_type: String,
    pub user_id: Option<i64>,
    /// The amount and balance after, in a few words.
    pub summary: String,
    /// The signature checked out (with a current secret, within the time tolerance).
    pub verified: bool,
    pub problem: Option<String>,
    /// An event id seen before (a retry or a replay): a real receiver ignores it.
    pub repeat: bool,
    /// Unix ms.
    pub received_at: i64,
}

#[derive(Clone)]
pub struct Receiver {
    store: Store,
    url: String,
    received: Arc<Mutex<(VecDeque<Received>, HashSet<String>)>>,
}

impl Receiver {
    pub fn new(store: Store, url: String) -> Self {
        Self {
            store,
            url,
            received: Arc::default(),
        }
    }

    /// Registers the sandbox's endpoint for every event type, once per database.
    pub async fn subscribe(&self) -> anyhow::Result<()> {
        let endpoints = EventStore::new(&self.store).list().await?;
        if endpoints.iter().any(|e| e.url == self.url) {
            return Ok(());
        }
        // The sandbox's own endpoint from a run on another port follows it here.
        if let Some(earlier) = endpoints
            .iter()
            .find(|e| e.url.starts_with("http://127.0.0.1:") && e.url.ends_with(RECEIVER_ROUTE))
        {
            EventStore::new(&self.store)
                .move_to(earlier.id, &self.url)
                .await?;
            return Ok(());
        }
        let all = EventType::ALL.map(EventType::as_str).join(",");
        let (id, _) = crate::outgoing::add_endpoint(&self.store, &self.url, &all, 1, true).await?;
        tracing::info!(
            endpoint = id,
            url = self.url,
            "the sandbox's receiver subscribed to every event"
        );
        Ok(())
    }

    /// Checks and keeps one POST (an event, or a batch of them): 200 if its signature is good,
    /// 400 if not.
    pub async fn receive(&self, headers: &HeaderMap, body: &Bytes) -> StatusCode {
        let now = now_ms();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let secrets = EventStore::new(&self.store)
            .secrets_for(&self.url, now)
            .await
            .unwrap_or_default();
        let signed = header(SIGNATURE_HEADER);
        let mut outcome = Err(signature::Invalid::Mismatch);
        for secret in &secrets {
            outcome = signature::verify(secret, &signed, body, now / 1000);
            if outcome.is_ok() {
                break;
            }
        }
        let mut kept = self.received.lock().expect("not poisoned");
        for event in crate::contract::event::events_in(body) {
            let data = &event["data"];
            let balance = data["balance"]
                .as_i64()
                .or_else(|| data["account"]["balance"].as_i64());
            let summary = match (data["amount"].as_i64(), balance) {
                (Some(amount), Some(balance)) => format!("{amount} NDN, balance {balance}"),
                (Some(amount), None) => format!("{amount} NDN"),
                _ => String::new(),
            };
            // The id in the event itself (also in a header when it comes alone).
            let event_id = event["id"]
                .as_str()
                .map_or_else(|| header(EVENT_ID_HEADER), ToOwned::to_owned);
            let repeat = !kept.1.insert(event_id.clone());
            kept.0.push_front(Received {
                event_type: event["type"].as_str().unwrap_or_default().to_owned(),
                user_id: data["user_id"].as_i64(),
                summary,
                verified: outcome.is_ok(),
                problem: outcome.as_ref().err().map(ToString::to_string),
                repeat,
                received_at: now,
                event_id,
            });
        }
        kept.0.truncate(KEPT);
        drop(kept);
        if outcome.is_ok() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        }
    }

    /// The latest events received, newest first.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .expect("not poisoned")
            .0
            .iter()
            .cloned()
            .collect()
    }
}
