//! Signed events to the operator's backend (webhooks out): what a change becomes
//! ([`event`]), how it is signed and checked ([`signature`]), where it may go ([`address`]) and
//! the worker that delivers it ([`worker`]). Events are written by the store in the change's
//! own transaction; endpoints are managed with `server endpoints`, events with `server events`.

pub mod address;
mod deliveries;
pub mod retention;
pub mod signature;
pub mod tables;
pub mod worker;

pub use tables::{
    EndpointLease, EndpointRecord, EventLine, EventStore, FailedPost, Outgoing, PendingDelivery,
    Position,
};

use crate::clock::now_ms;
use crate::contract::event::EventType;
use crate::store::Store;

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// The most events one POST may carry.
pub const MAX_BATCH: i64 = 1000;

/// `batch` if it is a batch size an endpoint may have (1 to [`MAX_BATCH`]).
pub fn check_batch(batch: i64) -> anyhow::Result<i64> {
    if (1..=MAX_BATCH).contains(&batch) {
        Ok(batch)
    } else {
        anyhow::bail!("--batch must be 1 (one event per POST) to {MAX_BATCH}, not {batch}")
    }
}

/// A new endpoint: the URL checked (and, unless private addresses are allowed, resolved to
/// public addresses only), its secret made; `batch` events at most in one POST. Returns its id
/// and secret (shown once).
pub async fn add_endpoint(
    store: &Store,
    url: &str,
    types: &str,
    batch: i64,
    allow_private: bool,
) -> anyhow::Result<(i64, String)> {
    let types = EventType::parse_list(types).map_err(|problem| anyhow::anyhow!(problem))?;
    let batch = check_batch(batch)?;
    let url = address::check_url(url, allow_private).map_err(|problem| anyhow::anyhow!(problem))?;
    address::check_resolves(&url, allow_private)
        .await
        .map_err(|problem| anyhow::anyhow!(problem))?;
    let secret = signature::new_secret();
    let id = EventStore::new(store)
        .add(url.as_str(), &secret, &types, batch, now_ms())
        .await?;
    Ok((id, secret))
}

/// A new secret for endpoint `id` (`None` if there is no such endpoint); the old one stays
/// valid for [`ROTATION_OVERLAP_MS`].
pub async fn rotate_secret(store: &Store, id: i64) -> anyhow::Result<Option<String>> {
    let secret = signature::new_secret();
    let rotated = EventStore::new(store)
        .rotate_secret(id, &secret, now_ms() + ROTATION_OVERLAP_MS)
        .await?;
    Ok(rotated.then_some(secret))
}
