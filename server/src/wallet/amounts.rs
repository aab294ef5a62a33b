//! Amounts, each its own type: NDN moved by one request or purchase, and Stars paid. Balances
//! are sums and stay plain `i64` (the system accounts' go negative); an amount is always
//! positive and never more than one request may move, so `Ndn` is made only through a check
//! (and the tables' own `CHECK` refuses any amount below 1).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};

/// The largest amount one request may move (whole NDN).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// An amount of NDN that one transfer moves: 1 to [`MAX_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Ndn(i64);

impl Ndn {
    /// `amount` NDN, if one transfer may move it.
    pub const fn new(amount: i64) -> Option<Self> {
        if amount >= 1 && amount <= MAX_AMOUNT {
            Some(Self(amount))
        } else {
            None
        }
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Ndn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Remembered answers and stored events carry amounts: one outside the range is refused on
/// the way back in too.
impl<'de> Deserialize<'de> for Ndn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let amount = i64::deserialize(deserializer)?;
        Self::new(amount).ok_or_else(|| {
            de::Error::custom(format_args!("{amount} NDN: an amount is 1 to {MAX_AMOUNT}"))
        })
    }
}

/// Telegram Stars (`XTR`), as an invoice asks for them and a payment or refund reports them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct Stars(pub i64);

impl Stars {
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Stars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndn_is_one_to_the_most_one_request_moves() {
        assert_eq!(Ndn::new(0), None);
        assert_eq!(Ndn::new(-5), None);
        assert_eq!(Ndn::new(MAX_AMOUNT + 1), None);
        assert_eq!(Ndn::new(1).map(Ndn::get), Some(1));
        assert_eq!(Ndn::new(MAX_AMOUNT).map(Ndn::get), Some(MAX_AMOUNT));
        // The wire is a plain number both ways, and the range holds when reading back.
        let ndn = Ndn::new(500).unwrap();
        assert_eq!(serde_json::to_string(&ndn).unwrap(), "500");
        assert_eq!(serde_json::from_str::<Ndn>("500").unwrap(), ndn);
        assert!(serde_json::from_str::<Ndn>("0").is_err());
    }
}
