//! Standard Webhooks signatures.
//!
//! Goal: let a receiver check that a delivery comes from us, is unchanged, and is recent.
//! Method: the signed content is `"{msg_id}.{timestamp}.{body}"`; the signature is
//! `v1,` + standard base64 of HMAC-SHA256 of it, keyed with the base64-decoded part of the
//! secret after `whsec_`. Verification (used by tests, and by anyone embedding this crate as a
//! receiver) accepts a space-separated list of signatures and compares in constant time.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::SECRET_PREFIX;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC key of a secret: the base64-decoded part after `whsec_` (the prefix is optional).
/// A secret that is not base64 (none made by [`crate::generate_secret`]) keys with its bytes.
fn signing_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec())
}

fn mac(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = match HmacSha256::new_from_slice(&signing_key(secret)) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, msg_id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
}

/// Whether any `v1` signature in `header` (space-separated `version,signature` pairs) is a valid
/// signature of this message. Compares in constant time; does not check the timestamp's age.
pub fn verify(secret: &str, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        mac(secret, msg_id, timestamp, body).verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks reference libraries ("sign function works").
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        assert_eq!(sign(SECRET, MSG_ID, TIMESTAMP, BODY), EXPECTED);
        // The prefix is optional.
        assert_eq!(
            sign(SECRET.strip_prefix(SECRET_PREFIX).unwrap(), MSG_ID, TIMESTAMP, BODY),
            EXPECTED
        );
    }

    #[test]
    fn matches_an_independent_hmac_of_the_spec_content() {
        let secret = crate::generate_secret();
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(b"evt_1.1700000000.{\"a\":1}");
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(sign(&secret, "evt_1", 1_700_000_000, br#"{"a":1}"#), expected);
    }

    #[test]
    fn verify_accepts_good_and_refuses_bad_signatures() {
        assert!(verify(SECRET, MSG_ID, TIMESTAMP, BODY, EXPECTED));
        let several = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,xyz {EXPECTED}");
        assert!(verify(SECRET, MSG_ID, TIMESTAMP, BODY, &several));

        let cases: &[(&str, &str, i64, &[u8], &str)] = &[
            ("other body", MSG_ID, TIMESTAMP, b"{\"test\": 1}", EXPECTED),
            ("other id", "msg_other", TIMESTAMP, BODY, EXPECTED),
            ("other timestamp", MSG_ID, TIMESTAMP + 1, BODY, EXPECTED),
            ("partial", MSG_ID, TIMESTAMP, BODY, &EXPECTED[..8]),
            ("empty v1", MSG_ID, TIMESTAMP, BODY, "v1,"),
            ("not base64", MSG_ID, TIMESTAMP, BODY, "v1,dawfeoifkpqwoekfpqoekf"),
            ("other version", MSG_ID, TIMESTAMP, BODY, &EXPECTED.replacen("v1", "v2", 1)),
            ("empty", MSG_ID, TIMESTAMP, BODY, ""),
        ];
        for (name, id, timestamp, body, header) in cases {
            assert!(!verify(SECRET, id, *timestamp, body, header), "{name}");
        }
        assert!(!verify(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            MSG_ID,
            TIMESTAMP,
            BODY,
            EXPECTED
        ));
    }
}
