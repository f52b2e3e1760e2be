//! Goal: `Idempotency-Key` works as spec section 9 says: the same key with the same body replays
//! the first answer (status and body, byte for byte, with `Idempotent-Replayed: true`), also
//! across restarts and for a 402; another body (or another endpoint) is 409
//! `idempotency_conflict`; a batch event's `idempotencyKey` shares the single usage's key space.
//!
//! Method: black box over real HTTP against the real binary: send a request, send it again
//! (same or changed), compare the raw answers, and check the credit records to see that nothing
//! was charged twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/race.rs"]
mod race;

use serde_json::{json, Value};

use common::{Answer, TestApp};
use race::{assert_equation, key, list_all};

const REPLAYED: &str = "idempotent-replayed";

fn assert_replay_of(replay: &Answer, first: &Answer) {
    assert_eq!(replay.status, first.status, "{replay:?} replays {first:?}");
    assert_eq!(replay.header(REPLAYED), Some("true"), "a replay says so: {replay:?}");
    assert_eq!(replay.text, first.text, "a replay is byte-identical");
    assert_eq!(replay.header("content-type"), first.header("content-type"), "{replay:?}");
}

fn assert_fresh(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.header(REPLAYED), None, "a first answer is not a replay: {answer:?}");
}

async fn funded_account(app: &TestApp, amount: u64) -> (String, String) {
    let account = app.create_account().await;
    let record = app.purchase(&account, amount, json!({"service": "smartcheck"})).await;
    (account, record["id"].as_str().unwrap().to_string())
}

fn usage(account: &str, quantity: u64) -> String {
    json!({"accountId": account, "service": "smartcheck", "quantity": quantity}).to_string()
}

async fn used(app: &TestApp, record: &str) -> Value {
    let record = app.credit(record).await;
    assert_equation(&record);
    record["used"].clone()
}

#[tokio::test]
async fn a_replay_returns_the_first_status_and_body_byte_for_byte() {
    let app = common::spawn_app().await;
    let (account, record) = funded_account(&app, 100).await;

    // Usage.
    let k = key("usage");
    let body = usage(&account, 3);
    let first = app.post_raw("/v2/usage", &body, Some(&k)).await;
    assert_fresh(&first, 201);
    let replay = app.post_raw("/v2/usage", &body, Some(&k)).await;
    assert_replay_of(&replay, &first);
    assert_eq!(used(&app, &record).await, 3, "charged once");

    // Reservation.
    let k = key("hold");
    let body = json!({"accountId": account, "service": "smartcheck", "credits": 5}).to_string();
    let first = app.post_raw("/v2/reservations", &body, Some(&k)).await;
    assert_fresh(&first, 201);
    let replay = app.post_raw("/v2/reservations", &body, Some(&k)).await;
    assert_replay_of(&replay, &first);
    assert_eq!(app.credit(&record).await["reserved"], 5, "held once");

    // Purchase.
    let k = key("purchase");
    let body = json!({"accountId": account, "amount": 40, "service": "any"}).to_string();
    let first = app.post_raw("/v2/credits", &body, Some(&k)).await;
    assert_fresh(&first, 201);
    let replay = app.post_raw("/v2/credits", &body, Some(&k)).await;
    assert_replay_of(&replay, &first);
    let records = list_all(&app, &format!("/v2/credits?accountId={account}")).await;
    assert_eq!(records.len(), 2, "one purchase recorded: {records:?}");

    // Account.
    let k = key("account");
    let body = json!({"name": "Replay Inc"}).to_string();
    let first = app.post_raw("/v2/accounts", &body, Some(&k)).await;
    assert_fresh(&first, 201);
    let replay = app.post_raw("/v2/accounts", &body, Some(&k)).await;
    assert_replay_of(&replay, &first);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict_and_charges_nothing() {
    let app = common::spawn_app().await;
    let (account, record) = funded_account(&app, 100).await;
    let k = key("conflict");
    let first = app.post_raw("/v2/usage", &usage(&account, 5), Some(&k)).await;
    assert_fresh(&first, 201);

    let other = app.post_raw("/v2/usage", &usage(&account, 6), Some(&k)).await;
    assert_eq!(other.status, 409, "{other:?}");
    assert_eq!(other.code(), "idempotency_conflict", "{other:?}");
    assert_eq!(other.header(REPLAYED), None, "{other:?}");
    assert_eq!(used(&app, &record).await, 5, "the conflict charged nothing");

    // The conflict did not replace the stored answer: the original body still replays.
    let replay = app.post_raw("/v2/usage", &usage(&account, 5), Some(&k)).await;
    assert_replay_of(&replay, &first);
    assert_eq!(used(&app, &record).await, 5);
}

#[tokio::test]
async fn whitespace_only_differences_in_the_json_still_replay() {
    let app = common::spawn_app().await;
    let (account, record) = funded_account(&app, 100).await;
    let k = key("space");
    let compact = format!(r#"{{"accountId":"{account}","service":"smartcheck","quantity":4}}"#);
    let spaced = format!(
        "\n  {{ \"accountId\" :\t\"{account}\",\r\n  \"service\"  : \"smartcheck\" ,\n  \"quantity\": 4 }}\n\n"
    );
    let first = app.post_raw("/v2/usage", &compact, Some(&k)).await;
    assert_fresh(&first, 201);
    let replay = app.post_raw("/v2/usage", &spaced, Some(&k)).await;
    assert_replay_of(&replay, &first);
    assert_eq!(used(&app, &record).await, 4, "charged once");
}

#[tokio::test]
async fn a_402_is_replayed_too_the_first_answer_wins() {
    let app = common::spawn_app().await;
    let (account, small) = funded_account(&app, 10).await;
    let k = key("short");
    let body = usage(&account, 50);
    let first = app.post_raw("/v2/usage", &body, Some(&k)).await;
    assert_fresh(&first, 402);
    assert_eq!(first.code(), "insufficient_credits", "{first:?}");

    // Now there would be enough, but the key already has its answer.
    let topped = app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let topped = topped["id"].as_str().unwrap();
    let replay = app.post_raw("/v2/usage", &body, Some(&k)).await;
    assert_replay_of(&replay, &first);
    assert_eq!(used(&app, &small).await, 0, "a replayed 402 charges nothing");
    assert_eq!(used(&app, topped).await, 0, "a replayed 402 charges nothing");

    // A new key is a new request, and it succeeds.
    let fresh = app.post_raw("/v2/usage", &body, Some(&key("short"))).await;
    assert_fresh(&fresh, 201);
    assert_eq!(fresh.json["credits"], 50, "{fresh:?}");
}

#[tokio::test]
async fn a_key_is_bound_to_its_endpoint_and_body() {
    let app = common::spawn_app().await;
    let (account, record) = funded_account(&app, 100).await;

    // One body that both POST /v2/usage and POST /v2/reservations accept.
    let body = json!({"accountId": account, "service": "smartcheck", "credits": 5}).to_string();
    let k = key("endpoint");
    let charged = app.post_raw("/v2/usage", &body, Some(&k)).await;
    assert_fresh(&charged, 201);
    assert!(charged.json["id"].as_str().unwrap().starts_with("use_"));

    // The same key and bytes on another endpoint are another request: not the usage's answer.
    let elsewhere = app.post_raw("/v2/reservations", &body, Some(&k)).await;
    assert_eq!(elsewhere.status, 409, "{elsewhere:?}");
    assert_eq!(elsewhere.code(), "idempotency_conflict", "{elsewhere:?}");
    let state = app.credit(&record).await;
    assert_eq!(state["reserved"], 0, "nothing held: {state}");
    assert_eq!(state["used"], 5, "charged once: {state}");

    // The path counts, not only the route: capturing two holds with one key and one body.
    let mut holds = Vec::new();
    for _ in 0..2 {
        let hold = app.post_raw("/v2/reservations", &body, Some(&key("h"))).await;
        assert_fresh(&hold, 201);
        holds.push(hold.json["id"].as_str().unwrap().to_string());
    }
    let k = key("capture");
    let first =
        app.post_raw(&format!("/v2/reservations/{}/capture", holds[0]), "{}", Some(&k)).await;
    assert_fresh(&first, 200);
    assert_eq!(first.json["status"], "captured", "{first:?}");
    let second =
        app.post_raw(&format!("/v2/reservations/{}/capture", holds[1]), "{}", Some(&k)).await;
    assert_eq!(second.status, 409, "{second:?}");
    assert_eq!(second.code(), "idempotency_conflict", "{second:?}");
    let hold = app.get(&format!("/v2/reservations/{}", holds[1])).await;
    assert_eq!(hold.json["status"], "held", "{hold:?}");
    let state = app.credit(&record).await;
    assert_eq!(state["used"], 10, "{state}");
    assert_eq!(state["reserved"], 5, "{state}");
    assert_equation(&state);
}

#[tokio::test]
async fn a_replay_survives_a_restart() {
    let mut app = common::spawn_app().await;
    let (account, record) = funded_account(&app, 100).await;
    let usage_key = key("restart");
    let usage_body = usage(&account, 8);
    let charged = app.post_raw("/v2/usage", &usage_body, Some(&usage_key)).await;
    assert_fresh(&charged, 201);
    let hold_key = key("restart-hold");
    let hold_body =
        json!({"accountId": account, "service": "smartcheck", "credits": 2}).to_string();
    let held = app.post_raw("/v2/reservations", &hold_body, Some(&hold_key)).await;
    assert_fresh(&held, 201);

    assert!(app.terminate(), "SIGTERM: the service exits successfully");
    let app = common::spawn_app_in(&app.data_dir).await;

    let replay = app.post_raw("/v2/usage", &usage_body, Some(&usage_key)).await;
    assert_replay_of(&replay, &charged);
    assert_eq!(replay.json["id"], charged.json["id"], "the original usage id");
    let replay = app.post_raw("/v2/reservations", &hold_body, Some(&hold_key)).await;
    assert_replay_of(&replay, &held);
    let state = app.credit(&record).await;
    assert_eq!(state["used"], 8, "charged once: {state}");
    assert_eq!(state["reserved"], 2, "held once: {state}");
    assert_equation(&state);
    let conflict = app.post_raw("/v2/usage", &usage(&account, 9), Some(&usage_key)).await;
    assert_eq!(conflict.code(), "idempotency_conflict", "{conflict:?}");
}

#[tokio::test]
async fn a_batch_events_key_replays_like_the_same_single_usage() {
    let app = common::spawn_app().await;
    let (account, record) = funded_account(&app, 100).await;
    let event = |k: &str, quantity: u64| {
        json!({"idempotencyKey": k, "accountId": account, "service": "smartcheck",
               "quantity": quantity})
    };

    // Single first, then the same key as a batch event: the event replays the single usage.
    let k1 = key("single-first");
    let single = app.post_raw("/v2/usage", &usage(&account, 3), Some(&k1)).await;
    assert_fresh(&single, 201);
    let k2 = key("batch-first");
    let batch_body = json!({"events": [event(&k1, 3), event(&k2, 4)]}).to_string();
    let batch = app.post_raw("/v2/usage/batch", &batch_body, None).await;
    assert_eq!(batch.status, 200, "{batch:?}");
    let results = batch.json["data"].as_array().unwrap();
    assert_eq!(results[0]["idempotencyKey"], k1.as_str());
    assert_eq!(results[0]["status"], 201, "{batch:?}");
    assert_eq!(results[0]["replayed"], true, "{batch:?}");
    assert_eq!(results[0]["usage"], single.json, "the single usage, replayed");
    assert_eq!(results[1]["status"], 201, "{batch:?}");
    assert_eq!(results[1]["replayed"], false, "{batch:?}");
    assert_eq!(results[1]["usage"]["credits"], 4, "{batch:?}");

    // Batch first, then the same key as a single usage: the single replays the event.
    let replay = app.post_raw("/v2/usage", &usage(&account, 4), Some(&k2)).await;
    assert_eq!(replay.status, 201, "{replay:?}");
    assert_eq!(replay.header(REPLAYED), Some("true"), "{replay:?}");
    assert_eq!(replay.json, results[1]["usage"], "the event's usage, replayed");

    // The whole batch again: both replay; an event with a known key and another body conflicts.
    let again = app.post_raw("/v2/usage/batch", &batch_body, None).await;
    assert_eq!(again.status, 200, "{again:?}");
    for (result, earlier) in again.json["data"].as_array().unwrap().iter().zip(results) {
        assert_eq!(result["replayed"], true, "{again:?}");
        assert_eq!(result["usage"], earlier["usage"], "{again:?}");
    }
    let changed = json!({"events": [event(&k1, 9)]}).to_string();
    let changed = app.post_raw("/v2/usage/batch", &changed, None).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let result = &changed.json["data"][0];
    assert_eq!(result["status"], 409, "{changed:?}");
    assert_eq!(result["error"]["code"], "idempotency_conflict", "{changed:?}");

    assert_eq!(used(&app, &record).await, 7, "3 + 4, each charged once");
    let listed = list_all(&app, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
}
