//! Dashboard sessions over real HTTP: `POST /session` trades a key for an HttpOnly,
//! SameSite=Strict cookie; the cookie alone authenticates reads, every unsafe request also needs
//! the CSRF token; a sign-in from another origin is refused; revoking the key ends the session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::Method;
use serde_json::json;

use common::ADMIN_KEY;

#[tokio::test]
async fn a_session_cookie_needs_its_csrf_token_and_dies_with_its_key() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let key = app.post("/v2/api-keys", &json!({"accountId": account, "name": "staff"})).await;
    assert_eq!(key.status, 201, "{key:?}");
    let secret = key.json["secret"].as_str().unwrap().to_string();
    let key_id = key.json["id"].as_str().unwrap().to_string();

    let foreign = app
        .request(
            Method::POST,
            "/session",
            None,
            &[("origin", "https://evil.example")],
            Some(json!({"key": secret}).to_string()),
        )
        .await;
    assert_eq!(foreign.status, 403, "{foreign:?}");
    assert!(foreign.header("set-cookie").is_none());

    let signed_in = app
        .request(Method::POST, "/session", None, &[], Some(json!({"key": secret}).to_string()))
        .await;
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let set_cookie = signed_in.header("set-cookie").unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!signed_in.text.contains(&secret), "the key is never echoed back");
    assert_eq!(signed_in.json["principal"]["accountId"], account.as_str());
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = signed_in.json["csrfToken"].as_str().unwrap().to_string();

    let read = app
        .request(
            Method::GET,
            &format!("/v2/balance?accountId={account}"),
            None,
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    let body = json!({"service": "api"}).to_string();
    let without_token = app
        .request(
            Method::POST,
            "/v2/usage",
            None,
            &[("cookie", &cookie), ("idempotency-key", "s1")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(without_token.status, 403, "{without_token:?}");
    assert_eq!(without_token.code(), "forbidden");
    let wrong_token = app
        .request(
            Method::POST,
            "/v2/usage",
            None,
            &[("cookie", &cookie), ("idempotency-key", "s1"), ("x-csrf-token", "nope")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(wrong_token.status, 403, "{wrong_token:?}");
    let with_token = app
        .request(
            Method::POST,
            "/v2/usage",
            None,
            &[("cookie", &cookie), ("idempotency-key", "s1"), ("x-csrf-token", &csrf)],
            Some(body),
        )
        .await;
    assert_eq!(with_token.status, 402, "authenticated (no credits yet): {with_token:?}");
    assert_eq!(with_token.code(), "insufficient_credits");

    let revoked = app
        .request(Method::DELETE, &format!("/v2/api-keys/{key_id}"), Some(ADMIN_KEY), &[], None)
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let after = app
        .request(
            Method::GET,
            &format!("/v2/balance?accountId={account}"),
            None,
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(after.status, 401, "{after:?}");

    let bogus = app
        .request(Method::GET, "/v2/accounts", None, &[("cookie", "credits_session=forged")], None)
        .await;
    assert_eq!(bogus.status, 401, "{bogus:?}");
}

/// Sessions are stored (by the hash of their id): a restarted service still knows them.
#[tokio::test]
async fn a_session_survives_a_restart() {
    let mut app = common::spawn_app().await;
    let account = app.create_account().await;
    let key = app.post("/v2/api-keys", &json!({"accountId": account, "name": "staff"})).await;
    let secret = key.json["secret"].as_str().unwrap().to_string();
    let signed_in = app
        .request(Method::POST, "/session", None, &[], Some(json!({"key": secret}).to_string()))
        .await;
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let cookie = signed_in.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(app.terminate(), "SIGTERM: a clean exit");

    let restarted = common::spawn_app_in(&app.data_dir).await;
    let current =
        restarted.request(Method::GET, "/session", None, &[("cookie", &cookie)], None).await;
    assert_eq!(current.status, 200, "{current:?}");
    assert_eq!(current.json["principal"]["accountId"], account.as_str());
    let path = format!("/v2/balance?accountId={account}");
    let read = restarted.request(Method::GET, &path, None, &[("cookie", &cookie)], None).await;
    assert_eq!(read.status, 200, "{read:?}");
}
