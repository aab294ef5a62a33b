//! The parts of Telegram's `Update` the product reads, both ways: decoded from the webhook and
//! long polling (unknown fields ignored, everything Telegram may leave out optional, so new Bot
//! API versions never break decoding), and built and encoded by the sandbox, the tests and the
//! benchmark, which play Telegram — one builder for all of them.

use serde::{Deserialize, Serialize};

use crate::wallet::amounts::Stars;
use crate::wallet::checkout::STARS;
use crate::wallet::ids::{ChargeId, UserId};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

    /// An update carrying `message`.
    pub fn message(update_id: i64, message: Message) -> Self {
        Self {
            update_id,
            message: Some(message),
            pre_checkout_query: None,
        }
    }

    /// An update carrying a pre-checkout query.
    pub fn pre_checkout(update_id: i64, query: PreCheckoutQuery) -> Self {
        Self {
            update_id,
            message: None,
            pre_checkout_query: Some(query),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

impl User {
    /// A person (not a bot) as Telegram describes them.
    pub fn person(id: UserId, first_name: &str, language_code: &str) -> Self {
        Self {
            id,
            is_bot: false,
            first_name: first_name.to_owned(),
            username: None,
            language_code: Some(language_code.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
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

    /// The private chat with `user_id` (its id is the user's).
    pub fn private(user_id: UserId) -> Self {
        Self {
            id: user_id.private_chat(),
            kind: Some("private".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<User>,
    pub chat: Chat,
    /// Unix seconds.
    #[serde(default)]
    pub date: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_payment: Option<SuccessfulPayment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_payment: Option<RefundedPayment>,
}

impl Message {
    /// A message from `from` in their private chat with the bot, sent now.
    pub fn private(message_id: i64, from: User) -> Self {
        Self {
            message_id,
            chat: Chat::private(from.id),
            from: Some(from),
            date: crate::clock::now_ms() / 1000,
            text: None,
            successful_payment: None,
            refunded_payment: None,
        }
    }

    pub fn with_text(self, text: &str) -> Self {
        Self {
            text: Some(text.to_owned()),
            ..self
        }
    }

    pub fn with_payment(self, payment: SuccessfulPayment) -> Self {
        Self {
            successful_payment: Some(payment),
            ..self
        }
    }

    pub fn with_refund(self, refund: RefundedPayment) -> Self {
        Self {
            refunded_payment: Some(refund),
            ..self
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreCheckoutQuery {
    pub id: String,
    pub from: User,
    pub currency: String,
    pub total_amount: Stars,
    pub invoice_payload: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuccessfulPayment {
    pub currency: String,
    pub total_amount: Stars,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: ChargeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_payment_charge_id: Option<String>,
}

impl SuccessfulPayment {
    /// A payment in Stars as Telegram reports it (the provider's charge id empty).
    pub fn stars(payload: &str, total_amount: i64, charge_id: &str) -> Self {
        Self {
            currency: STARS.into(),
            total_amount: Stars(total_amount),
            invoice_payload: payload.to_owned(),
            telegram_payment_charge_id: charge_id.into(),
            provider_payment_charge_id: Some(String::new()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefundedPayment {
    pub currency: String,
    pub total_amount: Stars,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: ChargeId,
}

impl RefundedPayment {
    pub fn stars(payload: &str, total_amount: i64, charge_id: &str) -> Self {
        Self {
            currency: STARS.into(),
            total_amount: Stars(total_amount),
            invoice_payload: payload.to_owned(),
            telegram_payment_charge_id: charge_id.into(),
        }
    }
}

/// The bot's answer to a pre-checkout query: sent as the webhook's response body (Telegram
/// performs it), or as an `answerPreCheckoutQuery` call when polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreCheckoutAnswer {
    pub pre_checkout_query_id: String,
    pub ok: bool,
    /// Shown to the buyer; required when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl PreCheckoutAnswer {
    pub const METHOD: &'static str = "answerPreCheckoutQuery";
}

/// A Bot API call carried in a webhook response: `{"method": …, …parameters}`.
#[derive(Debug, Clone, Serialize)]
pub struct InlineCall<'a, P> {
    pub method: &'a str,
    #[serde(flatten)]
    pub parameters: P,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Update {
        let path = format!(
            "{}/tests/fixtures/updates/{name}.json",
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
        assert!(payment.telegram_payment_charge_id.as_str().len() > 128);
        assert_eq!(payment.provider_payment_charge_id.as_deref(), Some(""));
    }

    #[test]
    fn built_updates_encode_as_telegram_sends_them_and_decode_again() {
        let payer = User::person(UserId(7), "Ada", "en");
        let update = Update::message(
            3,
            Message::private(3, payer).with_payment(SuccessfulPayment::stars("o1", 225, "c1")),
        );
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(
            json["message"]["chat"],
            serde_json::json!({ "id": 7, "type": "private" })
        );
        assert_eq!(json["message"]["from"]["is_bot"], false);
        assert_eq!(json["message"]["successful_payment"]["currency"], "XTR");
        assert!(
            json["message"].get("text").is_none(),
            "absent fields are left out"
        );
        assert!(json.get("pre_checkout_query").is_none());
        let again: Update = serde_json::from_value(json).unwrap();
        assert_eq!(again.kind(), "successful_payment");
        // Every sample Telegram sent survives a round trip with its kind.
        for name in ["pre_checkout_query", "refunded_payment", "start_command"] {
            let update = fixture(name);
            let round: Update =
                serde_json::from_str(&serde_json::to_string(&update).unwrap()).unwrap();
            assert_eq!(round.kind(), update.kind(), "{name}");
        }
    }

    #[test]
    fn the_pre_checkout_answer_is_a_bot_api_call_in_the_response() {
        let refused = InlineCall {
            method: PreCheckoutAnswer::METHOD,
            parameters: PreCheckoutAnswer {
                pre_checkout_query_id: "q".into(),
                ok: false,
                error_message: Some("Sold out".into()),
            },
        };
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            serde_json::json!({ "method": "answerPreCheckoutQuery", "pre_checkout_query_id": "q",
                                "ok": false, "error_message": "Sold out" })
        );
        let accepted = PreCheckoutAnswer {
            pre_checkout_query_id: "q".into(),
            ok: true,
            error_message: None,
        };
        assert_eq!(
            serde_json::to_value(&accepted).unwrap(),
            serde_json::json!({ "pre_checkout_query_id": "q", "ok": true })
        );
    }
}
