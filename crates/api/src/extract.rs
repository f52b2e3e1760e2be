//! Turning requests into typed values, with every failure a problem+json: bodies (size limit,
//! malformed JSON, unknown fields, wrong types), query strings, idempotency keys, cursors and
//! timestamps.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{request::Parts, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use credits_core::{Timestamp, IDEMPOTENCY_KEY_LENGTH_MAX, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};
use credits_store::{PageRequest, Position};

use crate::error::{ApiError, ErrorCode};

/// The raw body, limited to `REQUEST_BYTES_MAX` (413 `payload_too_large` past it).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<RawBody, ApiError> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large"))
            }
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// A parsed JSON body: the generic value (for the idempotency hash and batch events) and the
/// typed request.
pub struct Parsed<T> {
    pub value: serde_json::Value,
    pub request: T,
}

/// Malformed JSON is 400 `bad_request`; well-formed JSON of the wrong shape (unknown field,
/// wrong type, missing field) is 422 `validation_failed` naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Parsed<T>, ApiError> {
    let parsed = parse_json_with_nul(bytes)?;
    check_no_nul(&parsed.value)?;
    Ok(parsed)
}

/// `parse_json` without the NUL check, for a body whose parts are checked one by one (the
/// events of a usage batch, each failing alone).
pub fn parse_json_with_nul<T: DeserializeOwned>(bytes: &[u8]) -> Result<Parsed<T>, ApiError> {
    // No body at all stands for `{}`; whitespace alone is malformed JSON, like any other.
    let bytes = if bytes.is_empty() { b"{}" } else { bytes };
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    integral_numbers(&mut value);
    let request = parse_value(&value)?;
    Ok(Parsed { value, request })
}

/// JSON has one number type: `2.0` is the integer 2 (as JSON Schema reads it too). A number
/// written with a fraction or exponent but of integral value is read as that integer, so that
/// integer fields accept it; any other number is left for the field's check to refuse.
fn integral_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            // Every f64 with no fraction strictly between -2^63 and 2^64 is exactly an i64 or a
            // u64. -2^63 itself is left out: an integer literal below i64's range (say
            // -9223372036854775809) reaches here rounded to it, and must be refused, not clamped.
            if float.fract() == 0.0
                && float > -9.223_372_036_854_776e18
                && float < 1.844_674_407_370_955_2e19
            {
                *value = if float < 0.0 {
                    serde_json::Value::from(float as i64)
                } else {
                    serde_json::Value::from(float as u64)
                };
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Text is stored as text: a NUL character (`\u0000`, JSON's only way to send one) in any string
/// or object key is refused rather than truncated or stored differently by the two backends.
/// (The OpenAPI document states it as the pattern `NO_NUL_PATTERN` on body strings.)
pub fn check_no_nul(value: &serde_json::Value) -> Result<(), ApiError> {
    fn has_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => text.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(key, value)| key.contains('\0') || has_nul(value))
            }
            _ => false,
        }
    }
    if has_nul(value) {
        return Err(ApiError::validation("strings must not hold NUL characters (\\u0000)"));
    }
    Ok(())
}

/// Text without NUL, as a JSON Schema pattern.
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

pub fn parse_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::validation("the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            ApiError::validation(inner.to_string())
        } else {
            ApiError::validation(format!("{path}: {inner}"))
        }
    })
}

/// The hash that tells a replay from a conflicting reuse of an idempotency key: the method and
/// path with the body in canonical form (parsed and written back), so whitespace does not count.
pub fn request_hash(method_and_path: &str, value: &serde_json::Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(method_and_path.as_bytes());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(value).unwrap_or_default());
    hasher.finalize().into()
}

/// Checks an idempotency key: 1 to 255 characters.
pub fn idempotency_key_valid(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.chars().count() > IDEMPOTENCY_KEY_LENGTH_MAX {
        return Err(ApiError::bad_request("Idempotency-Key must be 1 to 255 characters"));
    }
    Ok(())
}

/// The `Idempotency-Key` header; `required` makes its absence a 400.
pub fn idempotency_key(headers: &HeaderMap, required: bool) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None if required => Err(ApiError::bad_request("the Idempotency-Key header is required")),
        None => Ok(None),
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
            idempotency_key_valid(key)?;
            Ok(Some(key.to_string()))
        }
    }
}

/// Whether a URI part holds a percent-encoded NUL.
fn has_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// A path parameter, with a malformed one (say, not UTF-8) answered 400 problem+json.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiPath<T>, ApiError> {
        // No id holds a NUL character (PostgreSQL cannot even store one): nothing is there.
        if has_nul(parts.uri.path()) {
            return Err(ApiError::not_found("no such resource"));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A query string, with a malformed one answered 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiQuery<T>, ApiError> {
        if parts.uri.query().is_some_and(has_nul) {
            return Err(ApiError::bad_request("the query string holds a NUL character"));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// How a list is ordered, newest first, and so what its cursor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By insertion (`seq`): the cursor is the last item's `seq`.
    Seq,
    /// By time, then insertion: the cursor is the last item's `created_at` and `seq`.
    Time,
}

/// The lists in time order (`Order::Time`); the others are in `Order::Seq`.
pub const LISTS_IN_TIME_ORDER: [&str; 2] = ["/v2/usage", "/v2/ledger"];

/// Checks `limit` (1 to 100, default 20) and decodes `cursor`.
pub fn page_request(
    limit: Option<usize>,
    cursor: Option<&str>,
    order: Order,
) -> Result<PageRequest, ApiError> {
    let limit = limit.unwrap_or(PAGE_SIZE_DEFAULT);
    if !(1..=PAGE_SIZE_MAX).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 100"));
    }
    let before = cursor.map(|cursor| cursor_decode(cursor, order)).transpose()?;
    Ok(PageRequest { limit, before })
}

/// A cursor is the position of the last item of a page in decimal (`seq`, or `created_at.seq`
/// for lists in time order): opaque to clients, and every string of its documented shape
/// (`cursor_pattern`) is a valid position.
pub fn cursor_encode(position: Position) -> String {
    match position.created_at {
        Some(at) => format!("{at}.{}", position.seq),
        None => position.seq.to_string(),
    }
}

fn cursor_decode(cursor: &str, order: Order) -> Result<Position, ApiError> {
    let invalid = || ApiError::bad_request("cursor is not a cursor this service gave");
    let number = |digits: &str| -> Result<i64, ApiError> {
        if digits.is_empty()
            || digits.len() > CURSOR_DIGITS_MAX
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        digits.parse().map_err(|_| invalid())
    };
    match order {
        Order::Seq => Ok(Position { created_at: None, seq: number(cursor)? }),
        Order::Time => {
            let (at, seq) = cursor.split_once('.').ok_or_else(invalid)?;
            Ok(Position { created_at: Some(number(at)?), seq: number(seq)? })
        }
    }
}

/// What `cursor_decode` accepts, as a pattern for the OpenAPI document.
pub fn cursor_pattern(order: Order) -> String {
    let digits = format!("[0-9]{{1,{CURSOR_DIGITS_MAX}}}");
    match order {
        Order::Seq => format!("^{digits}$"),
        Order::Time => format!("^{digits}\\.{digits}$"),
    }
}

/// 18 digits always fit an `i64`.
pub const CURSOR_DIGITS_MAX: usize = 18;

pub fn now() -> Timestamp {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    Timestamp(i64::try_from(nanos / 1000).unwrap_or(i64::MAX))
}

/// RFC 3339 in UTC with `Z`.
pub fn format_time(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| ApiError::validation(format!("{field} must be an RFC 3339 timestamp")))?;
    let micros = parsed.unix_timestamp_nanos() / 1000;
    i64::try_from(micros)
        .map(Timestamp)
        .map_err(|_| ApiError::validation(format!("{field} is out of range")))
}

/// A time filter from a query string: malformed is 400.
pub fn parse_time_query(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|text| parse_time(field, text).map_err(|e| ApiError::bad_request(e.detail)))
        .transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Priority {
        #[allow(dead_code)]
        priority: i64,
    }

    #[test]
    fn an_integer_below_i64s_range_is_refused_not_clamped() {
        assert!(parse_json::<Priority>(br#"{"priority": -9223372036854775809}"#).is_err());
        assert!(parse_json::<Priority>(br#"{"priority": 9223372036854775808}"#).is_err());
        let lowest = parse_json::<Priority>(br#"{"priority": -9223372036854775808}"#).unwrap();
        assert_eq!(lowest.request.priority, i64::MIN);
        assert_eq!(parse_json::<Priority>(br#"{"priority": 2.0}"#).unwrap().request.priority, 2);
    }
}
