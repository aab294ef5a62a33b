//! Validation of the Mini App's `initData` (telegram.md §5): the only way a buyer is known.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::telemetry::untrusted::Untrusted;
use crate::wallet::ids::UserId;

type HmacSha256 = Hmac<Sha256>;

/// How far in the future `auth_date` may be before it is refused (clock skew).
const ALLOWED_SKEW_SECS: i64 = 60;

/// The user as Telegram signed them into initData.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebAppUser {
    pub id: UserId,
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
}

/// initData whose signature and freshness were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitData {
    pub user: WebAppUser,
    pub auth_date: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitDataError {
    #[error("initData is malformed: {0}")]
    Malformed(&'static str),
    #[error("initData repeats the key `{0}`")]
    DuplicateKey(String),
    #[error("initData signature does not match")]
    BadSignature,
    #[error("initData is older than the allowed maximum; reopen the app")]
    Expired,
    #[error("initData is dated in the future")]
    FromTheFuture,
}

/// Checks initData against one bot token.
#[derive(Clone)]
pub struct InitDataValidator {
    secret_key: [u8; 32],
    max_age: Duration,
}

impl InitDataValidator {
    pub fn new(bot_token: &str, max_age: Duration) -> Self {
        let mut mac = HmacSha256::new_from_slice(b"WebAppData").expect("HMAC takes any key size");
        mac.update(bot_token.as_bytes());
        Self {
            secret_key: mac.finalize().into_bytes().into(),
            max_age,
        }
    }

    /// Validates raw initData as it arrived (still URL-encoded) at the time `now` (Unix seconds).
    pub fn validate(&self, raw: &str, now: i64) -> Result<InitData, InitDataError> {
        let mut fields = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let key = key.into_owned();
            if fields.contains_key(&key) {
                // Unsigned client text: it reaches the log only escaped and capped.
                return Err(InitDataError::DuplicateKey(Untrusted(&key).to_string()));
            }
            fields.insert(key, value.into_owned());
        }
        let hash = fields
            .remove("hash")
            .ok_or(InitDataError::Malformed("no hash"))?;
        let hash = hex::decode(&hash).map_err(|_| InitDataError::Malformed("hash is not hex"))?;

        let mut mac = self.mac();
        mac.update(data_check_string(&fields).as_bytes());
        mac.verify_slice(&hash)
            .map_err(|_| InitDataError::BadSignature)?;

        let auth_date: i64 = fields
            .get("auth_date")
            .and_then(|value| value.parse().ok())
            .ok_or(InitDataError::Malformed(
                "auth_date is missing or not a number",
            ))?;
        if auth_date > now + ALLOWED_SKEW_SECS {
            return Err(InitDataError::FromTheFuture);
        }
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(auth_date) > max_age {
            return Err(InitDataError::Expired);
        }
        let user = fields
            .get("user")
            .ok_or(InitDataError::Malformed("no user"))?;
        let user: WebAppUser = serde_json::from_str(user)
            .map_err(|_| InitDataError::Malformed("user is not valid"))?;
        Ok(InitData { user, auth_date })
    }

    /// Signs `fields` the way Telegram does and returns initData as a client would send it.
    /// The sandbox launches the Mini App with it; tests use it to act as a buyer.
    pub fn sign(&self, fields: &[(&str, &str)]) -> String {
        let sorted: BTreeMap<String, String> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut mac = self.mac();
        mac.update(data_check_string(&sorted).as_bytes());
        let hash = hex::encode(mac.finalize().into_bytes());
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (key, value) in fields {
            out.append_pair(key, value);
        }
        out.append_pair("hash", &hash);
        out.finish()
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret_key).expect("HMAC takes any key size")
    }
}

/// Sorted `key=value` lines; values exactly as decoded, never re-serialised.
fn data_check_string(fields: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (index, (key, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[derive(Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        bot_token: String,
        init_data: String,
        user_id: i64,
        auth_date: i64,
    }

    fn vectors() -> Vec<Vector> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/initdata-vectors.json"
        );
        let text =
            std::fs::read_to_string(path).expect("server/tests/fixtures/initdata-vectors.json");
        serde_json::from_str::<Vectors>(&text)
            .expect("vector file parses")
            .vectors
    }

    #[test]
    fn published_vectors_validate() {
        for vector in vectors() {
            let validator = InitDataValidator::new(&vector.bot_token, DAY);
            let data = validator
                .validate(&vector.init_data, vector.auth_date + 10)
                .unwrap_or_else(|e| panic!("{}: {e}", vector.name));
            assert_eq!(data.user.id, UserId(vector.user_id), "{}", vector.name);
            assert_eq!(data.auth_date, vector.auth_date);
        }
    }

    #[test]
    fn published_vectors_are_expired_today() {
        for vector in vectors() {
            let validator = InitDataValidator::new(&vector.bot_token, DAY);
            let now = vector.auth_date + DAY.as_secs() as i64 + 1;
            assert_eq!(
                validator.validate(&vector.init_data, now),
                Err(InitDataError::Expired)
            );
        }
    }

    #[test]
    fn dropping_the_signature_field_breaks_the_hash() {
        let vector = vectors()
            .into_iter()
            .find(|v| v.init_data.contains("signature="))
            .unwrap();
        let without: Vec<&str> = vector
            .init_data
            .split('&')
            .filter(|pair| !pair.starts_with("signature="))
            .collect();
        let validator = InitDataValidator::new(&vector.bot_token, DAY);
        assert_eq!(
            validator.validate(&without.join("&"), vector.auth_date),
            Err(InitDataError::BadSignature)
        );
    }

    #[test]
    fn tampering_with_any_field_is_rejected() {
        for vector in vectors() {
            let validator = InitDataValidator::new(&vector.bot_token, DAY);
            let pairs: Vec<&str> = vector.init_data.split('&').collect();
            for (index, pair) in pairs.iter().enumerate() {
                let (key, value) = pair.split_once('=').unwrap();
                let changed_value = if key == "hash" {
                    let mut chars: Vec<char> = value.chars().collect();
                    chars[0] = if chars[0] == '0' { '1' } else { '0' };
                    chars.into_iter().collect::<String>()
                } else {
                    format!("{value}0")
                };
                let mut tampered = pairs.clone();
                let replacement = format!("{key}={changed_value}");
                tampered[index] = &replacement;
                let result = validator.validate(&tampered.join("&"), vector.auth_date);
                assert_eq!(
                    result,
                    Err(InitDataError::BadSignature),
                    "{}: {key}",
                    vector.name
                );
            }
        }
    }

    #[test]
    fn another_bots_token_is_rejected() {
        let vector = &vectors()[0];
        let validator = InitDataValidator::new("123:another-bot", DAY);
        assert_eq!(
            validator.validate(&vector.init_data, vector.auth_date),
            Err(InitDataError::BadSignature)
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let vector = &vectors()[0];
        let validator = InitDataValidator::new(&vector.bot_token, DAY);
        let doubled = format!("auth_date=1&{}", vector.init_data);
        assert_eq!(
            validator.validate(&doubled, vector.auth_date),
            Err(InitDataError::DuplicateKey("auth_date".into()))
        );
    }

    #[test]
    fn a_duplicate_key_is_reported_escaped() {
        let validator = InitDataValidator::new("1:x", DAY);
        let forged = "a%0AINFO%20payment%20credited";
        let error = validator
            .validate(&format!("{forged}=1&{forged}=2"), 0)
            .unwrap_err();
        assert_eq!(
            error,
            InitDataError::DuplicateKey("a\\nINFO payment credited".into())
        );
        assert!(!error.to_string().contains('\n'));
    }

    #[test]
    fn missing_or_garbled_hash_is_malformed() {
        let validator = InitDataValidator::new("1:x", DAY);
        assert!(matches!(
            validator.validate("", 0),
            Err(InitDataError::Malformed(_))
        ));
        assert!(matches!(
            validator.validate("user=1", 0),
            Err(InitDataError::Malformed(_))
        ));
        assert!(matches!(
            validator.validate("hash=zz", 0),
            Err(InitDataError::Malformed(_))
        ));
    }

    #[test]
    fn signed_data_round_trips_and_freshness_is_enforced() {
        let validator = InitDataValidator::new("42:sandbox", Duration::from_secs(3600));
        let user = r#"{"id":7,"first_name":"A + B \/ C","language_code":"ru"}"#;
        let raw = validator.sign(&[("user", user), ("auth_date", "1000"), ("query_id", "q")]);
        let data = validator.validate(&raw, 1000).unwrap();
        assert_eq!(data.user.id, UserId(7));
        assert_eq!(data.user.first_name, "A + B / C");
        assert_eq!(
            validator.validate(&raw, 1000 + 3600).map(|d| d.auth_date),
            Ok(1000)
        );
        assert_eq!(
            validator.validate(&raw, 1000 + 3601),
            Err(InitDataError::Expired)
        );
        assert_eq!(
            validator.validate(&raw, 1000 - 61),
            Err(InitDataError::FromTheFuture)
        );
    }
}
