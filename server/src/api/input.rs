//! What a service request carries, checked field by field: a JSON object (at most 16 KB) with
//! exactly the fields an endpoint knows, each of the right type and size, and the
//! `Idempotency-Key` header. Whatever is wrong is answered with a 400 naming the field, before
//! anything is written.

use std::cell::RefCell;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::errors::ApiError;
use super::keys::ServiceKey;
use crate::state::AppState;
use crate::wallet::amounts::Ndn;
use crate::wallet::ids::UserId;
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
        object(&bytes).map(Self)
    }
}

/// A JSON object, each key once at every depth.
fn object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let repeated = RefCell::new(None);
    let read = serde::de::DeserializeSeed::deserialize(
        Unrepeated(&repeated),
        &mut serde_json::Deserializer::from_slice(bytes),
    );
    if let Some(key) = repeated.into_inner() {
        return Err(ApiError::invalid(
            &key,
            "appears twice in one object; send each field once",
        ));
    }
    match read {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("body", "the body must be a JSON object")),
        Err(error) => Err(ApiError::invalid(
            "body",
            format!("the body is not JSON: {error}"),
        )),
    }
}

/// JSON read into a [`Value`] with every object's keys checked for repeats, at any depth: a
/// plain `Value` keeps the last of `{"amount":1,"amount":900}`, which a proxy or a log may have
/// read as 1. The first repeated key is left in the cell. (serde_json has no such switch.)
#[derive(Clone, Copy)]
struct Unrepeated<'a>(&'a RefCell<Option<String>>);

impl<'de> serde::de::DeserializeSeed<'de> for Unrepeated<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unrepeated<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("JSON")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                *self.0.borrow_mut() = Some(key);
                return Err(serde::de::Error::custom("a repeated key"));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
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
    pub fn amount(&self) -> Result<Option<Ndn>, ApiError> {
        Ok(self.integer("amount", 1, MAX_AMOUNT)?.and_then(Ndn::new))
    }

    pub fn required_amount(&self) -> Result<Ndn, ApiError> {
        self.amount()?
            .ok_or_else(|| ApiError::invalid("amount", "is required"))
    }

    /// A Telegram user id.
    pub fn user_id(&self) -> Result<UserId, ApiError> {
        self.required_integer("user_id", 1, i64::MAX).map(UserId)
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
/// `endpoint` was asked (so that the key's reuse for another request can be told). Every
/// money-moving request needs one: without it a retried request would move money twice.
pub fn idempotency(
    headers: &HeaderMap,
    caller: &ServiceKey,
    endpoint: &str,
    body: &Body,
) -> Result<IdempotencyKey, ApiError> {
    const HEADER: &str = "Idempotency-Key";
    let Some(value) = headers.get(HEADER) else {
        return Err(ApiError::key_required());
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
    Ok(IdempotencyKey {
        api_key_id: caller.id,
        key: key.to_owned(),
        fingerprint,
    })
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
    fn a_key_repeated_at_any_depth_is_refused_by_name() {
        assert_eq!(field_of(object(br#"{"amount":1,"amount":900}"#)), "amount");
        assert_eq!(
            field_of(object(br#"{"metadata":{"a":[{"x":1,"x":2}]}}"#)),
            "x"
        );
        let read =
            object(br#"{"a":{"x":1},"b":[{"x":2}],"c":null,"d":1.5,"e":18446744073709551615}"#);
        assert_eq!(
            Value::Object(read.unwrap()),
            serde_json::json!({"a":{"x":1},"b":[{"x":2}],"c":null,"d":1.5,"e":18446744073709551615u64})
        );
        assert_eq!(field_of(object(b"[1]")), "body");
        assert_eq!(field_of(object(b"{\"a\":")), "body");
    }

    #[test]
    fn amounts_are_whole_positive_and_sane() {
        assert_eq!(body(r#"{"amount": 5}"#).required_amount().unwrap().get(), 5);
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
