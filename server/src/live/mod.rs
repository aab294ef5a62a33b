//! Live balance events: published after a credit or debit commits (by the ledger's effects, or
//! heard from other processes), for the Mini App's stream (`mini_app/stream.rs`), and the signed
//! tokens that open it.

pub mod relay;

use std::time::Duration;

use app::api::BalanceEvent;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::broadcast;

use crate::store::{BALANCE_CHANNEL, Store};
use crate::wallet::ids::UserId;
use relay::{Relay, RelayedEvent};

/// A balance change as it crosses instances: each `NOTIFY` on [`BALANCE_CHANNEL`] carries a
/// JSON array of these (written by the store as `BalanceNote`s).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct BalanceBroadcast {
    pub user_id: UserId,
    pub event: BalanceEvent,
}

/// Fans balance changes out to every subscribed stream of this process.
#[derive(Clone)]
pub struct LiveEvents {
    sender: broadcast::Sender<(UserId, BalanceEvent)>,
}

impl Default for LiveEvents {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl LiveEvents {
    pub fn publish(&self, user_id: UserId, event: BalanceEvent) {
        // No subscriber is not an error: nobody has the app open.
        let _ = self.sender.send((user_id, event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(UserId, BalanceEvent)> {
        self.sender.subscribe()
    }
}

/// Feeds this instance's subscribers from PostgreSQL `NOTIFY`s, reconnecting as needed.
pub async fn listen(
    events: LiveEvents,
    database_url: String,
    shutdown: tokio_util::sync::CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect(&database_url).await?;
            listener.listen(BALANCE_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for balance events; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let notification = tokio::select! {
                () = shutdown.cancelled() => return,
                notification = listener.recv() => notification,
            };
            match notification {
                Ok(notification) => {
                    match serde_json::from_str::<Vec<BalanceBroadcast>>(notification.payload()) {
                        Ok(changes) => {
                            for BalanceBroadcast { user_id, event } in changes {
                                events.publish(user_id, event);
                            }
                        }
                        Err(error) => tracing::warn!(%error, "undecodable balance events"),
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "balance event listener lost; reconnecting");
                    break;
                }
            }
        }
    }
}

/// How often a SQLite server looks for changes a command-line run relayed.
const RELAY_EVERY: Duration = Duration::from_millis(200);

/// Feeds this (SQLite) server's subscribers with the balance changes other processes made
/// (`server refund`, `server reconcile`), which they relay through the database.
pub async fn relay(
    events: LiveEvents,
    store: Store,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let table = Relay::new(&store);
    let mut position = None;
    while !shutdown.is_cancelled() {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RELAY_EVERY) => {}
        }
        let after = match position {
            Some(after) => after,
            // Changes relayed before this server started are old news.
            None => match table.position().await {
                Ok(now) => *position.insert(now),
                Err(error) => {
                    tracing::warn!(%error, "cannot read relayed balance events; retrying");
                    continue;
                }
            },
        };
        match table.after(after).await {
            Ok(relayed) => {
                for RelayedEvent { id, change } in relayed {
                    events.publish(change.user_id, change.event);
                    position = Some(id);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read relayed balance events"),
        }
    }
}

/// Short claims signed with a key derived from the bot token and a label of their own (so a
/// token of one kind is never valid as another): `claims.hex(HMAC-SHA256)`.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(label: &[u8], bot_token: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(label).expect("any key");
        mac.update(bot_token.as_bytes());
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    /// `claims`, then a `.` and their signature.
    pub fn sign(&self, claims: &str) -> String {
        let mut mac = self.mac();
        mac.update(claims.as_bytes());
        format!("{claims}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The claims of a genuinely signed token.
    pub fn open<'a>(&self, token: &'a str) -> Option<&'a str> {
        let (claims, signature) = token.rsplit_once('.')?;
        let mut mac = self.mac();
        mac.update(claims.as_bytes());
        mac.verify_slice(&hex::decode(signature).ok()?).ok()?;
        Some(claims)
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("any key")
    }
}

/// Signed tokens for the stream (an `EventSource` cannot send headers). A token expires with
/// the launch data it was issued for, and so does a stream opened with it.
#[derive(Clone)]
pub struct StreamTokens {
    signer: Signer,
    lifetime_secs: i64,
}

/// What a genuine token grants: `user_id`'s events until `expires` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamGrant {
    pub user_id: UserId,
    pub expires: i64,
}

impl StreamTokens {
    pub fn new(bot_token: &str, lifetime: Duration) -> Self {
        Self {
            signer: Signer::new(b"NDN live event stream", bot_token),
            lifetime_secs: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// A token for `user_id` whose launch data was signed at `auth_date` (Unix seconds): it
    /// expires when that launch data does.
    pub fn issue(&self, user_id: UserId, auth_date: i64) -> String {
        let expires = auth_date.saturating_add(self.lifetime_secs);
        self.signer.sign(&format!("{user_id}.{expires}"))
    }

    /// What the token grants, if it is genuine and unexpired.
    pub fn verify(&self, token: &str, now: i64) -> Option<StreamGrant> {
        let (user_id, expires) = self.signer.open(token)?.split_once('.')?;
        let (user_id, expires): (i64, i64) = (user_id.parse().ok()?, expires.parse().ok()?);
        (expires >= now).then_some(StreamGrant {
            user_id: UserId(user_id),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_user_and_lifetime() {
        let tokens = StreamTokens::new("1:t", Duration::from_secs(60));
        let token = tokens.issue(UserId(42), 1_000);
        let grant = StreamGrant {
            user_id: UserId(42),
            expires: 1_060,
        };
        assert_eq!(tokens.verify(&token, 1_000), Some(grant));
        assert_eq!(tokens.verify(&token, 1_060), Some(grant));
        assert_eq!(tokens.verify(&token, 1_061), None);
        assert_eq!(tokens.verify(&token.replacen("42", "43", 1), 1_000), None);
        let other = StreamTokens::new("2:t", Duration::from_secs(60));
        assert_eq!(other.verify(&token, 1_000), None);
        assert_eq!(tokens.verify("garbage", 1_000), None);
    }

    #[test]
    fn a_token_expires_with_its_launch_data_not_with_the_call() {
        let tokens = StreamTokens::new("1:t", Duration::from_secs(86_400));
        let launched = 1_000_000;
        // Issued an hour before the launch data expires: an hour left, not a day.
        let token = tokens.issue(UserId(7), launched);
        let an_hour_before = launched + 86_400 - 3_600;
        assert_eq!(
            tokens
                .verify(&token, an_hour_before)
                .map(|grant| grant.expires),
            Some(launched + 86_400)
        );
        assert_eq!(tokens.verify(&token, launched + 86_401), None);
    }
}
