//! Helpers for the tenancy, secrets and budgets tests: members, API keys and budgets created over
//! HTTP, requests with a chosen bearer key and a fresh idempotency key, and ledger snapshots read
//! with the operator key. Included with `#[path = "support/team.rs"] mod team;` next to
//! `mod common;` and `#[path = "common/extra.rs"] mod extra;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Answer, TestApp, ADMIN_KEY};
use crate::extra::{key, s};

/// A key as the create answer shows it: its id and its secret (shown once).
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

/// A request with the given bearer key; a POST gets a fresh `Idempotency-Key`.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<&Value>,
) -> Answer {
    let idempotency = key();
    let headers: Vec<(&str, &str)> = if method == Method::POST {
        vec![("idempotency-key", idempotency.as_str())]
    } else {
        Vec::new()
    };
    app.request(method, path, Some(bearer), &headers, body.map(Value::to_string)).await
}

pub async fn get(app: &TestApp, path: &str, bearer: &str) -> Answer {
    call(app, Method::GET, path, bearer, None).await
}

pub async fn post(app: &TestApp, path: &str, bearer: &str, body: &Value) -> Answer {
    call(app, Method::POST, path, bearer, Some(body)).await
}

pub async fn patch(app: &TestApp, path: &str, bearer: &str, body: &Value) -> Answer {
    call(app, Method::PATCH, path, bearer, Some(body)).await
}

pub async fn delete(app: &TestApp, path: &str, bearer: &str) -> Answer {
    call(app, Method::DELETE, path, bearer, None).await
}

/// Adds a member with the given role (as the operator) and returns its id.
pub async fn member(app: &TestApp, account: &str, role: &str) -> String {
    let email = format!("{}@example.com", key());
    let answer = post(
        app,
        "/v2/members",
        ADMIN_KEY,
        &json!({"accountId": account, "email": email, "role": role}),
    )
    .await;
    assert_eq!(answer.status, 201, "member create: {answer:?}");
    s(&answer.json, "id")
}

/// Creates a key with the given body as `bearer` and returns its id and secret.
pub async fn key_as(app: &TestApp, bearer: &str, body: &Value) -> Key {
    let answer = post(app, "/v2/api-keys", bearer, body).await;
    assert_eq!(answer.status, 201, "api key create {body}: {answer:?}");
    Key { id: s(&answer.json, "id"), secret: s(&answer.json, "secret") }
}

/// A key bound to `member` with its role's default scopes (created by the operator).
pub async fn member_key(app: &TestApp, account: &str, member: &str) -> Key {
    key_as(app, ADMIN_KEY, &json!({"accountId": account, "memberId": member, "name": "member key"}))
        .await
}

/// An account key bound to no member, with every account scope (created by the operator).
pub async fn account_key(app: &TestApp, account: &str) -> Key {
    key_as(app, ADMIN_KEY, &json!({"accountId": account, "name": "account key"})).await
}

/// Creates a budget (as the operator) from the given fields and returns its answer body.
pub async fn budget(app: &TestApp, account: &str, fields: Value) -> Value {
    let mut body = json!({"accountId": account, "name": "budget", "period": "day"});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let answer = post(app, "/v2/budgets", ADMIN_KEY, &body).await;
    assert_eq!(answer.status, 201, "budget create {body}: {answer:?}");
    answer.json
}

/// A budget as the operator reads it now.
pub async fn budget_read(app: &TestApp, id: &str) -> Value {
    let answer = get(app, &format!("/v2/budgets/{id}"), ADMIN_KEY).await;
    assert_eq!(answer.status, 200, "budget read: {answer:?}");
    answer.json
}

/// What a budget reads as spent now.
pub async fn spent(app: &TestApp, id: &str) -> u64 {
    let budget = budget_read(app, id).await;
    budget["spent"].as_u64().unwrap_or_else(|| panic!("spent is not an integer in {budget}"))
}

/// Every item of a list, pages followed to the end, read with `bearer`.
pub async fn list_all_as(app: &TestApp, path_and_query: &str, bearer: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let separator = if path_and_query.contains('?') { '&' } else { '?' };
    loop {
        let mut path = format!("{path_and_query}{separator}limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = get(app, &path, bearer).await;
        assert_eq!(page.status, 200, "{path}: {page:?}");
        items.extend(page.json["data"].as_array().unwrap().iter().cloned());
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
}

/// An account's ledger as the operator sees it: how many entries, and the newest one.
#[derive(Debug, PartialEq)]
pub struct LedgerSnapshot {
    pub count: usize,
    pub last: Value,
}

pub async fn ledger_snapshot(app: &TestApp, account: &str) -> LedgerSnapshot {
    let entries = list_all_as(app, &format!("/v2/ledger?accountId={account}"), ADMIN_KEY).await;
    LedgerSnapshot { count: entries.len(), last: entries.first().cloned().unwrap_or(Value::Null) }
}
