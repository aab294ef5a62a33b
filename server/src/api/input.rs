//! What a service request carries, checked field by field: a JSON object (at most 16 KB) with
//! exactly the fields an endpoint knows, each of the right type and size, and the
//! `Idempotency-Key` header. Whatever is wrong is answered with a 400 naming the field, before
//! anything is written.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::errors::ApiError;
use super::keys::ServiceKey;
use crate::state::AppState;
use crate::wallet::operations::{IdempotencyKey, MAX_AMOUNT};

/// The largest body a service request may have.
pub const BODY_LIMIT: usize = 16 * 1024;
const REASON_CHARS: usize = 200;
const REFERENCE_CHARS: usize = 128;
const METADATA_BYTES: usize = 4 * 1024;
const KEY_CHARS: usize = 255;

/// A request body: a JSON object (an empty body is an empty object).
pub struct Body(Map<String, Value>);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.into_response().status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(BODY_LIMIT)
                } else {
                    ApiError::invalid("body", "the body could not be read")
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::invalid("body", "the body must be a JSON object")),
            Err(error) => Err(ApiError::invalid(
                "body",
                format!("the body is not JSON: {error}"),
            )),
        }
    }
}

impl Body {
    /// Refuses any field but `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|name| !known.contains(&name.as_str())) {
            Some(unknown) => Err(ApiError::invalid(
                unknown,
                format!("unknown field; the fields are: {}", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|value| !value.is_null())
    }

    /// A whole number from `min` to `max`.
    pub fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.as_i64() {
            Some(number) if (min..=max).contains(&number) => Ok(Some(number)),
            _ => Err(ApiError::invalid(
                name,
                format!("must be a whole number from {min} to {max}"),
            )),
        }
    }

    pub fn required_integer(&self, name: &str, min: i64, max: i64) -> Result<i64, ApiError> {
        self.integer(name, min, max)?
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    }

    /// An amount of NDN: 1 to 10^12.
    pub fn amount(&self) -> Result<Option<i64>, ApiError> {
        self.integer("amount", 1, MAX_AMOUNT)
    }

    pub fn required_amount(&self) -> Result<i64, ApiError> {
        self.amount()?
            .ok_or_else(|| ApiError::invalid("amount", "is required"))
    }

    /// A Telegram user id.
    pub fn user_id(&self) -> Result<i64, ApiError> {
        self.required_integer("user_id", 1, i64::MAX)
    }

    /// Text of 1 to `max` characters (not only spaces).
    pub fn text(&self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.as_str() {
            Some(text) if text.trim().is_empty() => Err(ApiError::invalid(name, "is empty")),
            Some(text) if text.chars().count() > max => Err(ApiError::invalid(
                name,
                format!("is longer than {max} characters"),
            )),
            Some(text) if text.contains('\0') => {
                Err(ApiError::invalid(name, "holds a NUL character"))
            }
            Some(text) => Ok(Some(text.to_owned())),
            None => Err(ApiError::invalid(name, "must be a string")),
        }
    }

    /// Why: 1 to 200 characters.
    pub fn reason(&self, required: bool) -> Result<Option<String>, ApiError> {
        match self.text("reason", REASON_CHARS)? {
            None if required => Err(ApiError::invalid("reason", "is required")),
            reason => Ok(reason),
        }
    }

    /// The client's own reference: at most 128 characters.
    pub fn reference(&self) -> Result<Option<String>, ApiError> {
        self.text("reference", REFERENCE_CHARS)
    }

    /// A JSON object of at most 4 KB, kept as the client sent it.
    pub fn metadata(&self) -> Result<Option<String>, ApiError> {
        match self.get("metadata") {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let text = serde_json::to_string(map)
                    .map_err(|_| ApiError::invalid("metadata", "could not be read"))?;
                if text.len() > METADATA_BYTES || text.contains("\\u0000") {
                    return Err(ApiError::invalid(
                        "metadata",
                        format!("must be at most {METADATA_BYTES} bytes, without NUL"),
                    ));
                }
                Ok(Some(text))
            }
            Some(_) => Err(ApiError::invalid("metadata", "must be a JSON object")),
        }
    }

    /// The body with its keys sorted at every depth: the same request, written in any key
    /// order, gives the same text.
    fn canonical(&self) -> String {
        let mut text = String::new();
        write_sorted(&Value::Object(self.0.clone()), &mut text);
        text
    }
}

/// JSON with object keys in sorted order, whatever the map keeps them in.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The request's `Idempotency-Key` under the caller's API key, with the fingerprint of what
/// `endpoint` was asked (so that the key's reuse for another request can be told).
pub fn idempotency(
    headers: &HeaderMap,
    caller: &ServiceKey,
    endpoint: &str,
    body: &Body,
    required: bool,
) -> Result<Option<IdempotencyKey>, ApiError> {
    const HEADER: &str = "Idempotency-Key";
    let Some(value) = headers.get(HEADER) else {
        return if required {
            Err(ApiError::invalid(
                HEADER,
                "is required: a unique key per operation, e.g. a UUID, sent again on retries",
            ))
        } else {
            Ok(None)
        };
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty() && key.len() <= KEY_CHARS && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                HEADER,
                format!("must be 1-{KEY_CHARS} printable characters without spaces"),
            )
        })?;
    let fingerprint = hex::encode(Sha256::digest(
        format!("{endpoint}\n{}", body.canonical()).as_bytes(),
    ));
    Ok(Some(IdempotencyKey {
        api_key_id: caller.id,
        key: key.to_owned(),
        fingerprint,
    }))
}

/// A new id: `prefix` and 128 random bits.
pub fn new_id(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        tracing::error!(%error, "no randomness for an id");
        ApiError::from(crate::store::StoreError::Corrupt("no randomness".into()))
    })?;
    Ok(format!("{prefix}_{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Body {
        match serde_json::from_str(json).unwrap() {
            Value::Object(map) => Body(map),
            _ => panic!("not an object"),
        }
    }

    fn field_of(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        result.unwrap_err().body.field.unwrap()
    }

    #[test]
    fn amounts_are_whole_positive_and_sane() {
        assert_eq!(body(r#"{"amount": 5}"#).required_amount().unwrap(), 5);
        for bad in [
            r#"{"amount": 0}"#,
            r#"{"amount": -3}"#,
            r#"{"amount": 1.5}"#,
            r#"{"amount": "5"}"#,
            r#"{"amount": 1000000000001}"#,
            r#"{}"#,
        ] {
            assert_eq!(field_of(body(bad).required_amount()), "amount", "{bad}");
        }
    }

    #[test]
    fn texts_metadata_and_unknown_fields_are_checked() {
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(201));
        assert_eq!(field_of(body(&long).reason(true)), "reason");
        assert_eq!(field_of(body(r#"{"reason": "  "}"#).reason(true)), "reason");
        assert_eq!(field_of(body(r#"{}"#).reason(true)), "reason");
        let reference = format!(r#"{{"reference": "{}"}}"#, "r".repeat(129));
        assert_eq!(field_of(body(&reference).reference()), "reference");
        assert_eq!(
            field_of(body(r#"{"metadata": [1]}"#).metadata()),
            "metadata"
        );
        let big = format!(r#"{{"metadata": {{"a": "{}"}}}}"#, "m".repeat(4_100));
        assert_eq!(field_of(body(&big).metadata()), "metadata");
        assert_eq!(
            field_of(body(r#"{"amount": 1, "colour": "red"}"#).only(&["amount"])),
            "colour"
        );
    }

    #[test]
    fn the_same_request_in_any_key_order_has_one_fingerprint_text() {
        let a =
            body(r#"{"user_id": 1, "amount": 5, "metadata": {"b": 1, "a": [{"y": 2, "x": 1}]}}"#);
        let b =
            body(r#"{"metadata": {"a": [{"x": 1, "y": 2}], "b": 1}, "amount": 5, "user_id": 1}"#);
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(
            a.canonical(),
            body(r#"{"user_id": 1, "amount": 6}"#).canonical()
        );
    }
}
