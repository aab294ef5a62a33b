//! Answers remembered under idempotency keys, kept in memory for a while so that a retried
//! request is answered without a database read. An answer never changes once written (until
//! it is forgotten, days later), so a copy cannot go stale; each instance keeps its own, and a
//! key it has not seen is read from the database as before.
//!
//! Two generations: lookups try the young one, then the old; when the young one is full or ten
//! minutes old it becomes the old one and the old one is dropped. Memory stays bounded and no
//! copy outlives twenty minutes, far inside the days the database keeps an answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::now_ms;
use crate::wallet::operations::{IdempotencyKey, StoredAnswer};

use super::upkeep::ANSWERS_KEPT;

/// Answers per generation (a few hundred bytes each).
const GENERATION: usize = 50_000;
const GENERATION_AGE: Duration = Duration::from_secs(600);

type Slot = (i64, String);

struct Generations {
    young: HashMap<Slot, Arc<StoredAnswer>>,
    old: HashMap<Slot, Arc<StoredAnswer>>,
    born: Instant,
}

#[derive(Clone)]
pub(super) struct Answers(Arc<Mutex<Generations>>);

impl Answers {
    pub(super) fn new() -> Self {
        Self(Arc::new(Mutex::new(Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            born: Instant::now(),
        })))
    }

    pub(super) fn get(&self, key: &IdempotencyKey) -> Option<Arc<StoredAnswer>> {
        let slot = (key.api_key_id, key.key.clone());
        let generations = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        generations
            .young
            .get(&slot)
            .or_else(|| generations.old.get(&slot))
            .cloned()
    }

    /// Keeps `answer`, written at `created_at` (Unix ms), unless it is near the end of the time
    /// the database keeps it (a copy must never answer for a key the database has forgotten).
    pub(super) fn keep(&self, key: &IdempotencyKey, answer: Arc<StoredAnswer>, created_at: i64) {
        let margin = i64::try_from((ANSWERS_KEPT / 2).as_millis()).unwrap_or(i64::MAX);
        if now_ms().saturating_sub(created_at) > margin {
            return;
        }
        let mut generations = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if generations.young.len() >= GENERATION || generations.born.elapsed() >= GENERATION_AGE {
            generations.old = std::mem::take(&mut generations.young);
            generations.born = Instant::now();
        }
        generations
            .young
            .insert((key.api_key_id, key.key.clone()), answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::amounts::Ndn;
    use crate::wallet::ids::UserId;
    use crate::wallet::operations::{Funds, Receipt};

    fn key(name: &str) -> IdempotencyKey {
        IdempotencyKey {
            api_key_id: 1,
            key: name.into(),
            fingerprint: "f".into(),
        }
    }

    fn answer(amount: i64) -> StoredAnswer {
        StoredAnswer {
            fingerprint: "f".into(),
            receipt: Receipt::Credit {
                id: format!("crd_{amount}"),
                user_id: UserId(7),
                amount: Ndn::new(amount).unwrap(),
                reason: "r".into(),
                created_at: 0,
                funds: Funds {
                    balance: amount,
                    held: 0,
                },
            },
        }
    }

    #[test]
    fn answers_are_found_under_their_key_and_api_key_only() {
        let answers = Answers::new();
        answers.keep(&key("a"), Arc::new(answer(1)), now_ms());
        assert_eq!(answers.get(&key("a")).as_deref(), Some(&answer(1)));
        assert!(answers.get(&key("b")).is_none());
        let other_api_key = IdempotencyKey {
            api_key_id: 2,
            ..key("a")
        };
        assert!(answers.get(&other_api_key).is_none());
    }

    #[test]
    fn answers_near_the_end_of_their_time_are_not_kept() {
        let answers = Answers::new();
        let old = now_ms() - i64::try_from(ANSWERS_KEPT.as_millis()).unwrap() + 60_000;
        answers.keep(&key("a"), Arc::new(answer(1)), old);
        assert!(answers.get(&key("a")).is_none());
    }

    #[test]
    fn a_full_generation_ages_out_and_memory_stays_bounded() {
        let answers = Answers::new();
        for i in 0..GENERATION * 2 + 1 {
            answers.keep(&key(&format!("k{i}")), Arc::new(answer(1)), now_ms());
        }
        // The first generation was dropped, the second is the old one, one answer is young.
        assert!(answers.get(&key("k0")).is_none());
        assert!(answers.get(&key(&format!("k{GENERATION}"))).is_some());
        assert!(answers.get(&key(&format!("k{}", GENERATION * 2))).is_some());
        let generations = answers.0.lock().unwrap();
        assert!(generations.young.len() + generations.old.len() <= GENERATION * 2);
    }
}
