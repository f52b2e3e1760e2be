//! Small helpers shared by the black-box test files that need more than `common/mod.rs`:
//! RFC 3339 timestamps without a date crate, problem+json assertions, the credit-record equation,
//! fresh idempotency keys and requests with a chosen key or headers. Included with
//! `#[path = "common/extra.rs"] mod extra;` next to `mod common;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::common::{Answer, TestApp, ADMIN_KEY};

static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// A fresh idempotency key, unique within the test process.
pub fn key() -> String {
    format!("x-{}-{}", std::process::id(), NEXT_KEY.fetch_add(1, Ordering::SeqCst))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap();
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap();
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 UTC with milliseconds and `Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap();
    let secs = i64::try_from(since.as_secs()).unwrap();
    let millis = since.subsec_millis();
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Now plus (or minus) the given number of seconds, as RFC 3339.
pub fn in_seconds(seconds: i64) -> String {
    let now = SystemTime::now();
    let at = if seconds >= 0 {
        now + Duration::from_secs(seconds.unsigned_abs())
    } else {
        now - Duration::from_secs(seconds.unsigned_abs())
    };
    rfc3339(at)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac]Z` to seconds since the epoch; panics on anything else
/// (the SPEC requires UTC with `Z`).
pub fn parse_rfc3339(text: &str) -> f64 {
    assert!(text.ends_with('Z'), "timestamp {text:?} must end with Z");
    assert!(text.len() >= 20, "timestamp {text:?} too short");
    let b = text.as_bytes();
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':',
        "timestamp {text:?} is not RFC 3339"
    );
    let y: i64 = text[0..4].parse().unwrap();
    let mo: u32 = text[5..7].parse().unwrap();
    let d: u32 = text[8..10].parse().unwrap();
    let h: i64 = text[11..13].parse().unwrap();
    let mi: i64 = text[14..16].parse().unwrap();
    let s: i64 = text[17..19].parse().unwrap();
    let frac_text = &text[19..text.len() - 1];
    let frac: f64 = if frac_text.is_empty() {
        0.0
    } else {
        assert!(frac_text.starts_with('.'), "timestamp {text:?}");
        format!("0{frac_text}").parse().unwrap()
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    #[allow(clippy::cast_precision_loss)]
    let secs = secs as f64;
    secs + frac
}

/// Seconds since the epoch, now.
pub fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Sleeps until the given RFC 3339 instant plus `after_ms` milliseconds.
pub async fn sleep_until(instant: &str, after_ms: u64) {
    let target = parse_rfc3339(instant) + Duration::from_millis(after_ms).as_secs_f64();
    let wait = target - now_secs();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// Asserts an RFC 9457 problem+json answer with the given status and SPEC code.
pub fn assert_problem(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "expected {status} {code}: {answer:?}");
    assert_problem_shape(answer);
    assert_eq!(answer.code(), code, "{answer:?}");
}

/// Asserts the problem+json shape of any error answer: content type, and `type`, `title`,
/// `status` (equal to the HTTP status), `detail` and `code`.
pub fn assert_problem_shape(answer: &Answer) {
    let content_type = answer.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content-type {content_type:?} is not application/problem+json: {answer:?}"
    );
    let body = &answer.json;
    assert!(body.is_object(), "the problem body is not JSON: {answer:?}");
    for field in ["type", "title", "detail", "code"] {
        assert!(
            body[field].is_string(),
            "problem field {field} missing or not a string: {answer:?}"
        );
    }
    assert_eq!(
        body["status"].as_u64(),
        Some(u64::from(answer.status)),
        "problem status must equal the HTTP status: {answer:?}"
    );
}

/// Asserts SPEC 5's equation and non-negativity on a credit record.
pub fn assert_equation(record: &Value) {
    let field = |name: &str| {
        record[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} is not a non-negative integer in {record}"))
    };
    let sum = field("used")
        + field("reserved")
        + field("remaining")
        + field("expiredAmount")
        + field("voidedAmount");
    assert_eq!(field("amount"), sum, "amount equation broken: {record}");
}

/// A string field of a JSON value.
pub fn s(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {value}"))
        .to_string()
}

/// A GET with the given bearer key (or none) and headers.
pub async fn get_as(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    app.request(reqwest::Method::GET, path, key, headers, None).await
}

/// A POST as the admin with a fresh idempotency key.
pub async fn post_fresh(app: &TestApp, path: &str, body: &Value) -> Answer {
    app.post_idempotent(path, &key(), body).await
}

/// A POST as the admin with raw bytes as body and the given headers (no content type added
/// unless given).
pub async fn post_bytes(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut request = app.client.post(app.url(path)).bearer_auth(ADMIN_KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, headers, text, json }
}

/// Records usage with explicit extra fields and a fresh key.
pub async fn usage(app: &TestApp, account: &str, service: &str, extra: Value) -> Answer {
    let mut body = json!({"accountId": account, "service": service});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    post_fresh(app, "/v2/usage", &body).await
}

/// Places a hold with a fresh key.
pub async fn hold(
    app: &TestApp,
    account: &str,
    service: &str,
    credits: u64,
    extra: Value,
) -> Answer {
    let mut body = json!({"accountId": account, "service": service, "credits": credits});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    post_fresh(app, "/v2/reservations", &body).await
}

/// Every ledger entry of an account (JSON pages followed to the end), newest first.
pub async fn ledger_all(app: &TestApp, query: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v2/ledger?limit=100&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        entries.extend(page.json["data"].as_array().unwrap().iter().cloned());
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return entries,
        }
    }
}
