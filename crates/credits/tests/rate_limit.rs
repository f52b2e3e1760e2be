//! Per-key rate limiting over real HTTP: with `CREDITS_RATE_LIMIT_PER_SECOND=5`, a burst of
//! requests from one key meets 429 `rate_limited` with `Retry-After`, while another key of the
//! same service goes on unaffected, and the first key is served again after waiting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn one_key_past_its_rate_gets_429_and_another_key_goes_on() {
    let app = common::spawn_app_with_env(&[("CREDITS_RATE_LIMIT_PER_SECOND", "5")]).await;
    let account = app.create_account().await;
    let other = app.post("/v2/api-keys", &json!({"accountId": account, "name": "other"})).await;
    assert_eq!(other.status, 201, "{other:?}");
    let other_secret = other.json["secret"].as_str().unwrap().to_string();

    let mut limited = None;
    for _ in 0..30 {
        let answer = app.get("/v2/services").await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let limited = limited.expect("30 quick requests pass a limit of 5 a second");
    assert_eq!(limited.code(), "rate_limited");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");

    let unaffected = app.request(Method::GET, "/v2/services", Some(&other_secret), &[], None).await;
    assert_eq!(unaffected.status, 200, "another key is not slowed: {unaffected:?}");

    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    assert_eq!(app.get("/v2/services").await.status, 200, "served again after waiting");
}
