//! The parts of Telegram's `Update` the product reads. Unknown fields are ignored and
//! everything Telegram may leave out is optional, so new Bot API versions never break decoding.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub pre_checkout_query: Option<PreCheckoutQuery>,
}

impl Update {
    /// A short name of what the update carries, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match (&self.message, &self.pre_checkout_query) {
            (_, Some(_)) => "pre_checkout_query",
            (Some(message), None) if message.successful_payment.is_some() => "successful_payment",
            (Some(message), None) if message.refunded_payment.is_some() => "refunded_payment",
            (Some(_), None) => "message",
            (None, None) => "other",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl Chat {
    /// A one-to-one chat with a user. Without a type (never seen from Telegram), only a
    /// positive id can be a user's private chat; groups and channels have negative ids.
    pub fn is_private(&self) -> bool {
        match self.kind.as_deref() {
            Some(kind) => kind == "private",
            None => self.id > 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default)]
    pub from: Option<User>,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub successful_payment: Option<SuccessfulPayment>,
    #[serde(default)]
    pub refunded_payment: Option<RefundedPayment>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PreCheckoutQuery {
    pub id: String,
    pub from: User,
    pub currency: String,
    pub total_amount: i64,
    pub invoice_payload: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SuccessfulPayment {
    pub currency: String,
    pub total_amount: i64,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: String,
    #[serde(default)]
    pub provider_payment_charge_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefundedPayment {
    pub currency: String,
    pub total_amount: i64,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Update {
        let path = format!(
            "{}/../../shared/fixtures/updates/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn sample_updates_decode_to_their_kinds() {
        assert_eq!(fixture("pre_checkout_query").kind(), "pre_checkout_query");
        assert_eq!(fixture("successful_payment").kind(), "successful_payment");
        assert_eq!(fixture("refunded_payment").kind(), "refunded_payment");
        assert_eq!(fixture("start_command").kind(), "message");
        assert_eq!(fixture("unhandled_my_chat_member").kind(), "other");
        let payment = fixture("successful_payment")
            .message
            .unwrap()
            .successful_payment
            .unwrap();
        assert!(payment.telegram_payment_charge_id.len() > 128);
        assert_eq!(payment.provider_payment_charge_id.as_deref(), Some(""));
    }
}
