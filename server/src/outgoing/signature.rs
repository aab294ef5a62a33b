//! How events are signed, and how a receiver checks them (the sandbox's receiver and the tests
//! use [`verify`]; docs/events.md shows the same check in Rust, Node and Python).
//!
//! Every POST carries `Ndn-Event-Id`, `Ndn-Event-Type` (or, to an endpoint that takes
//! batches, `Ndn-Event-Count` and a JSON array of events) and
//! `Ndn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with the
//! endpoint's secret (the whole `whsec_…` string, as bytes). During a secret rotation the header
//! carries one `v1=` per valid secret; a receiver accepts the request when any of them matches.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const EVENT_ID_HEADER: &str = "ndn-event-id";
pub const EVENT_TYPE_HEADER: &str = "ndn-event-type";
pub const SIGNATURE_HEADER: &str = "ndn-signature";
/// On a POST to an endpoint that takes batches: how many events its JSON array holds.
pub const EVENT_COUNT_HEADER: &str = "ndn-event-count";
/// How old a signature's timestamp may be (either way) before receivers refuse it.
pub const TOLERANCE_SECS: i64 = 300;

/// A new endpoint secret: `whsec_` and 32 random bytes in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    format!("whsec_{}", hex::encode(bytes))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Ndn-Signature` value for `body` sent at `timestamp`, one `v1=` per secret.
pub fn header(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut value = format!("t={timestamp}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&hex::encode(
            mac(secret, timestamp, body).finalize().into_bytes(),
        ));
    }
    value
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("no Ndn-Signature header, or not `t=…,v1=…`")]
    Malformed,
    #[error("the timestamp is {0} s away from now (more than {TOLERANCE_SECS} s)")]
    Stale(i64),
    #[error("no signature matches (a changed body, or another secret)")]
    Mismatch,
}

/// Checks a request as a receiver should: the timestamp within [`TOLERANCE_SECS`] of `now`
/// (Unix seconds), and a `v1` signature of `t.body` with `secret`, compared in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), Invalid> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Invalid::Malformed)?;
    if signatures.is_empty() {
        return Err(Invalid::Malformed);
    }
    let skew = now.saturating_sub(timestamp);
    if skew.abs() > TOLERANCE_SECS {
        return Err(Invalid::Stale(skew));
    }
    let expected = mac(secret, timestamp, body);
    if signatures
        .iter()
        .any(|signature| expected.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(Invalid::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        br#"{"id":"evt_1","type":"payment.credited","created_at":1764590400,"data":{}}"#;

    #[test]
    fn a_signed_body_verifies() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64);
        let value = header(&[&secret], 1_764_590_400, BODY);
        assert_eq!(verify(&secret, &value, BODY, 1_764_590_430), Ok(()));
    }

    #[test]
    fn a_changed_body_an_old_timestamp_or_another_secret_fail() {
        let secret = new_secret();
        let value = header(&[&secret], 1_764_590_400, BODY);
        let changed = BODY
            .to_vec()
            .into_iter()
            .map(|b| if b == b'1' { b'2' } else { b })
            .collect::<Vec<_>>();
        assert_eq!(
            verify(&secret, &value, &changed, 1_764_590_400),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(&secret, &value, BODY, 1_764_590_400 + 301),
            Err(Invalid::Stale(301))
        );
        assert_eq!(
            verify(&new_secret(), &value, BODY, 1_764_590_400),
            Err(Invalid::Mismatch)
        );
        // A signature re-made with a fresh timestamp but over the old one's bytes fails too.
        let replayed = value.replacen("t=1764590400", "t=1764590999", 1);
        assert_eq!(
            verify(&secret, &replayed, BODY, 1_764_590_999),
            Err(Invalid::Mismatch)
        );
        assert_eq!(
            verify(&secret, "v1=00", BODY, 1_764_590_400),
            Err(Invalid::Malformed)
        );
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let (old, new) = (new_secret(), new_secret());
        let value = header(&[&new, &old], 1_764_590_400, BODY);
        assert_eq!(verify(&old, &value, BODY, 1_764_590_400), Ok(()));
        assert_eq!(verify(&new, &value, BODY, 1_764_590_400), Ok(()));
        assert!(verify(&new_secret(), &value, BODY, 1_764_590_400).is_err());
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1764590400.{}' | openssl dgst -sha256 -hmac whsec_test
        let value = header(&["whsec_test"], 1_764_590_400, b"{}");
        assert_eq!(
            value,
            "t=1764590400,v1=c248251270b252892ab044761396c4b11790704891896827b6f3ff5317081ebd"
        );
    }
}
