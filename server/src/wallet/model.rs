//! The wallet's nouns: accounts and the transfers between them, buyers, payments as Telegram
//! reports them, and what became of each.

use app::i18n::Lang;

use super::amounts::{Ndn, Stars};
use super::checkout::STARS;
use super::ids::{ChargeId, OrderId, UserId};

/// An account of the books. Every buyer has one (its id is their Telegram user id); the system
/// accounts take the other side of every movement, so that the books always sum to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    Buyer(UserId),
    /// NDN issued against Stars received: goes negative by every NDN sold.
    Sales,
    /// NDN taken back when Stars were refunded.
    Refunds,
    /// NDN given by the operator: goes negative by every NDN granted.
    Grants,
    /// NDN consumed in the operator's product.
    Spent,
}

impl Account {
    pub const SYSTEM: [Account; 4] = [Self::Sales, Self::Refunds, Self::Grants, Self::Spent];

    /// The id stored in transfers: a buyer's Telegram id (always positive), or a negative id
    /// for a system account (the `system_accounts` table names them).
    pub fn id(self) -> i64 {
        match self {
            Self::Buyer(id) => id.get(),
            Self::Sales => -1,
            Self::Refunds => -2,
            Self::Grants => -3,
            Self::Spent => -4,
        }
    }

    pub fn from_id(id: i64) -> Option<Self> {
        match id {
            id if id > 0 => Some(Self::Buyer(UserId(id))),
            -1 => Some(Self::Sales),
            -2 => Some(Self::Refunds),
            -3 => Some(Self::Grants),
            -4 => Some(Self::Spent),
            _ => None,
        }
    }

    /// `buyer:<id>`, or the system account's name.
    pub fn name(self) -> String {
        match self {
            Self::Buyer(id) => format!("buyer:{id}"),
            Self::Sales => "sales".into(),
            Self::Refunds => "refunds".into(),
            Self::Grants => "grants".into(),
            Self::Spent => "spent".into(),
        }
    }

    pub fn buyer(self) -> Option<UserId> {
        match self {
            Self::Buyer(id) => Some(id),
            _ => None,
        }
    }
}

/// Why NDN moved; with its reference, what makes a transfer unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    /// Sales → buyer, for a payment in Stars (reference: the charge id).
    Purchase,
    /// Buyer → refunds, when the Stars of a purchase went back (reference: the charge id).
    Refund,
    /// Grants → buyer, by the operator.
    Grant,
    /// Buyer → spent, in the operator's product.
    Spend,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Refund => "refund",
            Self::Grant => "grant",
            Self::Spend => "spend",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "purchase" => Self::Purchase,
            "refund" => Self::Refund,
            "grant" => Self::Grant,
            "spend" => Self::Spend,
            _ => return None,
        })
    }
}

/// A movement of `amount` NDN (always positive) from one account to another, written once and
/// never changed; a correction is another transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub from: Account,
    pub to: Account,
    pub amount: Ndn,
    pub kind: TransferKind,
    /// The charge id, or the key of the operation that made it: unique per kind.
    pub reference: String,
    /// Stars received (purchase) or given back (refund); 0 otherwise.
    pub stars: Stars,
    pub reason: Option<String>,
    /// The client's own reference, for a transfer made through the service API.
    pub external_reference: Option<String>,
    /// The client's metadata (a JSON object), likewise.
    pub metadata: Option<String>,
}

impl Transfer {
    pub fn purchase(buyer: UserId, ndn: Ndn, charge_id: &ChargeId, stars: Stars) -> Self {
        Self {
            from: Account::Sales,
            to: Account::Buyer(buyer),
            amount: ndn,
            kind: TransferKind::Purchase,
            reference: charge_id.to_string(),
            stars,
            reason: None,
            external_reference: None,
            metadata: None,
        }
    }

    pub fn refund(buyer: UserId, ndn: Ndn, charge_id: &ChargeId, stars: Stars) -> Self {
        Self {
            from: Account::Buyer(buyer),
            to: Account::Refunds,
            amount: ndn,
            kind: TransferKind::Refund,
            reference: charge_id.to_string(),
            stars,
            reason: None,
            external_reference: None,
            metadata: None,
        }
    }

    /// What the transfer does to `account`'s balance.
    pub fn effect_on(&self, account: Account) -> i64 {
        match (self.from == account, self.to == account) {
            (true, false) => -self.amount.get(),
            (false, true) => self.amount.get(),
            _ => 0,
        }
    }
}

/// A buyer as Telegram describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub id: UserId,
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl Buyer {
    /// What is stored of the profile: without what the database cannot store (see
    /// [`make_storable`]), and with the language the shop speaks to the buyer in (`en` or
    /// `ru`), so that the Mini App and the webhook never rewrite each other's value.
    pub fn make_storable(&mut self) {
        make_storable(&mut self.first_name);
        for text in [self.username.as_mut(), self.language_code.as_mut()]
            .into_iter()
            .flatten()
        {
            make_storable(text);
        }
        if let Some(code) = self.language_code.as_mut() {
            *code = Lang::from_code(code).code().to_owned();
        }
    }
}

/// Removes NUL characters: valid in Telegram's JSON strings, refused by PostgreSQL's text
/// (a payment would fail on every redelivery). Nothing Telegram or we use as an id has them.
pub fn make_storable(text: &mut String) {
    if text.contains('\0') {
        text.retain(|c| c != '\0');
    }
}

/// The facts of a `successful_payment` the wallet needs.
#[derive(Debug, Clone)]
pub struct IncomingPayment {
    pub charge_id: ChargeId,
    pub provider_charge_id: Option<String>,
    pub payload: String,
    pub currency: String,
    pub stars: Stars,
}

impl IncomingPayment {
    /// A payment of `stars` Stars for `payload`, with no provider charge id (as Stars are).
    pub fn in_stars(charge_id: &str, payload: &str, stars: i64) -> Self {
        Self {
            charge_id: charge_id.into(),
            provider_charge_id: None,
            payload: payload.to_owned(),
            currency: STARS.to_owned(),
            stars: Stars(stars),
        }
    }

    pub fn make_storable(&mut self) {
        for text in [&mut self.charge_id.0, &mut self.payload, &mut self.currency]
            .into_iter()
            .chain(self.provider_charge_id.as_mut())
        {
            make_storable(text);
        }
    }
}

/// A payment as stored, as far as a refund needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub charge_id: ChargeId,
    pub user_id: UserId,
    pub order_id: Option<OrderId>,
    /// NDN credited: 0 for a payment held and never credited.
    pub ndn: i64,
    pub stars: Stars,
    pub status: PaymentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Credited,
    Held,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credited => "credited",
            Self::Held => "held",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "credited" => Self::Credited,
            "held" => Self::Held,
            "refunded" => Self::Refunded,
            _ => return None,
        })
    }
}

/// What became of a `successful_payment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Credited {
        user_id: UserId,
        order_id: OrderId,
        ndn: Ndn,
        /// The buyer's balance right after this credit.
        balance: i64,
    },
    Held {
        user_id: UserId,
        reason: &'static str,
    },
    /// This charge was recorded before: nothing changed.
    Duplicate,
}

/// What became of a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Debited {
        user_id: UserId,
        order_id: Option<OrderId>,
        ndn: Ndn,
        balance: i64,
    },
    ClosedHeld,
    RecordedUnknown,
    AlreadyRefunded,
}

impl RefundOutcome {
    /// What the refund did to the books, in words (the command line's and the audit log's).
    pub fn describe(&self) -> String {
        match self {
            Self::Debited { ndn, balance, .. } => {
                format!("debited {ndn} NDN, balance now {balance}")
            }
            Self::AlreadyRefunded => "the ledger already had the refund".into(),
            Self::ClosedHeld => "the held payment is closed (nothing was credited)".into(),
            Self::RecordedUnknown => "recorded".into(),
        }
    }

    /// An operator's refund in words: the charge, what Telegram said, what the books did.
    pub fn summary(&self, charge_id: &ChargeId, telegram: &str) -> String {
        format!("{charge_id}: {telegram}; {}", self.describe())
    }
}

/// Writes the text of a notification once the outcome (and the new balance) is known.
pub trait Notice {
    fn payment(&self, lang: Lang, outcome: &PaymentOutcome, stars: Stars) -> Option<String>;
    fn refund(&self, lang: Lang, outcome: &RefundOutcome, stars: Stars) -> Option<String>;
    /// NDN the operator granted.
    fn credit(&self, lang: Lang, receipt: &super::operations::Receipt) -> Option<String>;
}

/// A message to a chat, sent later by the notification worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub dedupe_key: String,
    pub chat_id: i64,
    pub text: String,
    pub reply_markup: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names stored in the database: rows written by an older build must still parse, so
    /// a name never changes.
    #[test]
    fn stored_names_are_fixed_and_parse_back() {
        let kinds = [
            (TransferKind::Purchase, "purchase"),
            (TransferKind::Refund, "refund"),
            (TransferKind::Grant, "grant"),
            (TransferKind::Spend, "spend"),
        ];
        for (kind, name) in kinds {
            assert_eq!(kind.as_str(), name);
            assert_eq!(TransferKind::parse(name), Some(kind));
        }
        let statuses = [
            (PaymentStatus::Credited, "credited"),
            (PaymentStatus::Held, "held"),
            (PaymentStatus::Refunded, "refunded"),
        ];
        for (status, name) in statuses {
            assert_eq!(status.as_str(), name);
            assert_eq!(PaymentStatus::parse(name), Some(status));
        }
        for unknown in ["", "Purchase", "credit", "xyzzy"] {
            assert_eq!(TransferKind::parse(unknown), None);
            assert_eq!(PaymentStatus::parse(unknown), None);
        }
    }

    #[test]
    fn only_a_buyers_account_has_a_buyer() {
        assert_eq!(
            Account::Buyer(UserId(279_058_397)).buyer(),
            Some(UserId(279_058_397))
        );
        assert_eq!(Account::Buyer(UserId(-5)).buyer(), Some(UserId(-5)));
        for system in Account::SYSTEM {
            assert_eq!(system.buyer(), None);
        }
    }

    #[test]
    fn a_payment_with_nul_in_any_text_is_made_storable() {
        let mut payment = IncomingPayment {
            charge_id: "ch\0arge".into(),
            provider_charge_id: Some("pro\0vider".into()),
            payload: "pay\0load".into(),
            currency: "X\0TR".into(),
            stars: Stars(5),
        };
        payment.make_storable();
        assert_eq!(
            (
                payment.charge_id.as_str(),
                payment.provider_charge_id.as_deref(),
                payment.payload.as_str(),
                payment.currency.as_str()
            ),
            ("charge", Some("provider"), "payload", "XTR")
        );
    }

    /// The words the command line, the console and the audit log show for a refund.
    #[test]
    fn a_refund_is_described_in_words() {
        let debited = RefundOutcome::Debited {
            user_id: UserId(7),
            order_id: None,
            ndn: Ndn::new(500).unwrap(),
            balance: -20,
        };
        assert_eq!(debited.describe(), "debited 500 NDN, balance now -20");
        assert_eq!(
            RefundOutcome::AlreadyRefunded.describe(),
            "the ledger already had the refund"
        );
        assert_eq!(
            RefundOutcome::ClosedHeld.describe(),
            "the held payment is closed (nothing was credited)"
        );
        assert_eq!(RefundOutcome::RecordedUnknown.describe(), "recorded");
        assert_eq!(
            debited.summary(&ChargeId::from("ch1"), "Stars refunded by Telegram"),
            "ch1: Stars refunded by Telegram; debited 500 NDN, balance now -20"
        );
    }

    #[test]
    fn account_ids_round_trip_and_buyers_are_never_system_accounts() {
        for account in Account::SYSTEM
            .into_iter()
            .chain([Account::Buyer(UserId(279_058_397))])
        {
            assert_eq!(Account::from_id(account.id()), Some(account));
        }
        assert!(Account::SYSTEM.iter().all(|account| account.id() < 0));
        assert_eq!(Account::from_id(0), None);
        assert_eq!(Account::from_id(-5), None);
    }

    #[test]
    fn a_transfer_moves_its_amount_from_one_side_to_the_other() {
        let ndn = Ndn::new(500).unwrap();
        let purchase = Transfer::purchase(UserId(7), ndn, &"c1".into(), Stars(225));
        assert_eq!(purchase.effect_on(Account::Buyer(UserId(7))), 500);
        assert_eq!(purchase.effect_on(Account::Sales), -500);
        assert_eq!(purchase.effect_on(Account::Buyer(UserId(8))), 0);
        let refund = Transfer::refund(UserId(7), ndn, &"c1".into(), Stars(225));
        assert_eq!(refund.effect_on(Account::Buyer(UserId(7))), -500);
        assert_eq!(refund.effect_on(Account::Refunds), 500);
    }

    #[test]
    fn stored_profiles_lose_nuls_and_speak_the_shops_languages() {
        let mut buyer = Buyer {
            id: UserId(1),
            first_name: "A\0da".into(),
            username: Some("\0".into()),
            language_code: Some("r\0u-RU".into()),
        };
        buyer.make_storable();
        assert_eq!(buyer.first_name, "Ada");
        assert_eq!(buyer.username.as_deref(), Some(""));
        assert_eq!(buyer.language_code.as_deref(), Some("ru"));
        buyer.language_code = Some("de".into());
        buyer.make_storable();
        assert_eq!(buyer.language_code.as_deref(), Some("en"));
    }
}
