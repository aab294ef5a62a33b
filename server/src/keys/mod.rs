//! The service API's keys: `ndn_` and 256 random bits, shown once when created; only their SHA-256 is stored,
//! and a request's key is found by its hash (so there is nothing to compare byte by byte).
//! Keys found are remembered for two seconds, and their last use is written at most once a
//! minute. A revocation in the console holds at once on the instance that made it (the key is
//! forgotten there); everywhere else — other instances, and servers when `server keys revoke`
//! ran in another process — within those two seconds.

pub mod table;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::clock::now_ms;
use crate::store::{Store, StoreError};
use table::{ApiKeyRecord, KeyStore};

const PREFIX: &str = "ndn_";
const REMEMBERED: Duration = Duration::from_secs(2);
const USE_WRITTEN_EVERY: Duration = Duration::from_secs(60);

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read balances and statements.
    Read,
    /// Debit, hold, capture and void.
    Spend,
    /// Give NDN (credits).
    Grant,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Spend => "spend",
            Self::Grant => "grant",
        }
    }

    /// `read,spend` → the scopes; an unknown name is refused.
    pub fn parse_list(text: &str) -> Result<Vec<Scope>, String> {
        let mut scopes = Vec::new();
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let scope = match name {
                "read" => Self::Read,
                "spend" => Self::Spend,
                "grant" => Self::Grant,
                other => return Err(format!("unknown scope `{other}` (read, spend, grant)")),
            };
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err("give at least one scope: read, spend, grant".into());
        }
        Ok(scopes)
    }
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// `server keys create`: a new key, returned once.
pub async fn create(store: &Store, name: &str, scopes: &[Scope]) -> Result<String, String> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err("the name must be 1-64 printable characters without spaces".into());
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| format!("no randomness: {error}"))?;
    let key = format!("{PREFIX}{}", hex::encode(secret));
    let scopes: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    match KeyStore::new(store)
        .add(name, &hash(&key), &scopes.join(","), now_ms())
        .await
    {
        Ok(Some(_)) => Ok(key),
        Ok(None) => Err(format!(
            "an active key is already named `{name}`: revoke it first, or choose another name"
        )),
        Err(error) => Err(error.to_string()),
    }
}

/// A key a request presented, as found: its id, name and scopes.
#[derive(Debug, Clone)]
pub struct FoundKey {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
}

/// Keys recently found, and when each key's use was last written.
#[derive(Default)]
pub struct KeyBook {
    found: Mutex<HashMap<String, (ApiKeyRecord, Instant)>>,
    written: Mutex<HashMap<i64, Instant>>,
}

impl KeyBook {
    /// Forgets key `id`, so that its next request reads it from the database (after a
    /// revocation, as revoked).
    pub fn forget(&self, id: i64) {
        self.found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (record, _)| record.id != id);
    }

    /// The key `presented` stands for, if it is one (revoked or not: the caller checks).
    pub async fn find(
        &self,
        store: &Store,
        presented: &str,
    ) -> Result<Option<FoundKey>, StoreError> {
        if !presented.starts_with(PREFIX) {
            return Ok(None);
        }
        let digest = hash(presented);
        let now = Instant::now();
        let cached = self
            .found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .filter(|(_, at)| now.duration_since(*at) < REMEMBERED)
            .map(|(record, _)| record.clone());
        let record = match cached {
            Some(record) => record,
            None => {
                let Some(record) = KeyStore::new(store).by_hash(&digest).await? else {
                    return Ok(None);
                };
                let mut found = self.found.lock().unwrap_or_else(|p| p.into_inner());
                if found.len() > 10_000 {
                    found.retain(|_, (_, at)| now.duration_since(*at) < REMEMBERED);
                }
                found.insert(digest, (record.clone(), now));
                record
            }
        };
        self.note_use(store, record.id, now);
        Ok(Some(FoundKey {
            id: record.id,
            name: record.name,
            scopes: Scope::parse_list(&record.scopes).unwrap_or_default(),
        }))
    }

    fn note_use(&self, store: &Store, id: i64, now: Instant) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let due = written
            .get(&id)
            .is_none_or(|at| now.duration_since(*at) >= USE_WRITTEN_EVERY);
        if due {
            written.insert(id, now);
            let keys = KeyStore::new(store);
            tokio::spawn(async move {
                if let Err(error) = keys.used(id, now_ms()).await {
                    tracing::warn!(%error, "cannot record an API key's use");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            Scope::parse_list("read, spend,read"),
            Ok(vec![Scope::Read, Scope::Spend])
        );
        assert!(Scope::parse_list("read,admin").is_err());
        assert!(Scope::parse_list(" , ").is_err());
    }

    #[test]
    fn only_the_hash_of_a_key_is_kept_and_it_is_not_the_key() {
        let digest = hash("ndn_0123");
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains("0123"));
        assert_eq!(digest, hash("ndn_0123"));
    }
}
