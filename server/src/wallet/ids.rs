//! The ids the books are keyed by, each its own type, so that a buyer's id is never passed where
//! a chat, an API key or an amount belongs. They travel as plain numbers and strings: serde and
//! sqlx see through them (`transparent`), so the wire and the tables are as before. `UserId` is
//! the app crate's, since the Mini App's and the console's wire carry it too.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A buyer, shared with the Mini App and the console (their wire carries it too).
pub use app::ids::UserId;

/// Text ids: Telegram's charge ids, our order and hold ids.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

text_id!(
    /// Telegram's `telegram_payment_charge_id`: what a payment and its refund are known by.
    ChargeId
);
text_id!(
    /// An order of ours (`ord_…`), the invoice payload that ties a payment to a package.
    OrderId
);
text_id!(
    /// A hold of ours (`hold_…`).
    HoldId
);
