//! Goal: spending follows SPEC sections 5 and 6 exactly: the burn-down order across several
//! records, one usage split over several records, all-or-nothing 402 with nothing charged, exact
//! credit expiry, two-phase reservations (hold, partial capture, release, expiry, settling twice),
//! voiding, and `reference` deduplication.
//!
//! Method: black box over HTTP against the real binary, fresh data directory per test. After each
//! step the credit records, the balance and the ledger are read back and compared with what the
//! SPEC says they must be; every record read is checked against the equation of section 5.
//! Timing tests use instants one to two seconds ahead and read right after them; the background
//! sweep runs every second, so a read tens of milliseconds after the instant shows whether reads
//! are exact on their own (they must be either way, so the assertions hold regardless).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/extra.rs"]
mod extra;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use extra::{
    assert_equation, assert_problem, hold, in_seconds, key, ledger_all, s, sleep_until, usage,
};

/// The allocations of a usage or a hold as creditId → credits.
fn allocations(value: &Value) -> BTreeMap<String, u64> {
    value["allocations"]
        .as_array()
        .unwrap_or_else(|| panic!("no allocations in {value}"))
        .iter()
        .map(|a| (s(a, "creditId"), a["credits"].as_u64().unwrap()))
        .collect()
}

async fn record(app: &common::TestApp, id: &str) -> Value {
    let record = app.credit(id).await;
    assert_equation(&record);
    record
}

async fn capture(app: &common::TestApp, hold_id: &str, body: &Value) -> common::Answer {
    app.post_idempotent(&format!("/v2/reservations/{hold_id}/capture"), &key(), body).await
}

async fn release(app: &common::TestApp, hold_id: &str) -> common::Answer {
    app.post_idempotent(&format!("/v2/reservations/{hold_id}/release"), &key(), &json!({})).await
}

async fn void(app: &common::TestApp, credit_id: &str) -> common::Answer {
    app.post_idempotent(&format!("/v2/credits/{credit_id}/void"), &key(), &json!({})).await
}

#[tokio::test]
async fn burn_down_order_across_records() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let id = |v: Value| s(&v, "id");
    // Created in an order that differs from the burn-down order.
    let any_high = id(app.purchase(&account, 10, json!({"service": "any", "priority": 100})).await);
    let never = id(app.purchase(&account, 10, json!({"service": "smartcheck"})).await);
    let late = id(app
        .purchase(
            &account,
            10,
            json!({"service": "smartcheck", "expiresAt": in_seconds(30 * 86_400)}),
        )
        .await);
    let high =
        id(app.purchase(&account, 10, json!({"service": "smartcheck", "priority": 5})).await);
    let early = id(app
        .purchase(
            &account,
            10,
            json!({"service": "smartcheck", "expiresAt": in_seconds(10 * 86_400)}),
        )
        .await);
    let older_never = id(app.purchase(&account, 10, json!({"service": "smartaccess"})).await);
    let any_low = id(app.purchase(&account, 10, json!({"service": "any"})).await);
    let _ = older_never;

    // Expected order for smartcheck: service-specific first (priority 5, then earliest expiry,
    // never-expiring last), then `any` (priority 100 before 0). smartaccess is never touched.
    let expected = [&high, &early, &late, &never, &any_high, &any_low];
    for (round, credit_id) in expected.iter().enumerate() {
        let used = app.use_credits(&account, "smartcheck", 10).await;
        assert_eq!(used.status, 201, "round {round}: {used:?}");
        assert_eq!(
            allocations(&used.json),
            BTreeMap::from([((*credit_id).clone(), 10)]),
            "round {round} must draw on {credit_id}: {}",
            used.json
        );
        let drained = record(&app, credit_id).await;
        assert_eq!(drained["remaining"], 0);
        assert_eq!(drained["status"], "depleted", "{drained}");
    }
    let refused = app.use_credits(&account, "smartcheck", 1).await;
    assert_problem(&refused, 402, "insufficient_credits");
    assert_eq!(
        record(&app, &older_never).await["remaining"],
        10,
        "another service's record is never drawn"
    );
}

#[tokio::test]
async fn oldest_first_when_everything_else_ties() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let expires = in_seconds(86_400);
    let first =
        app.purchase(&account, 5, json!({"service": "api", "expiresAt": expires.clone()})).await;
    let second = app.purchase(&account, 5, json!({"service": "api", "expiresAt": expires})).await;
    let used = app.use_credits(&account, "api", 7).await;
    assert_eq!(used.status, 201, "{used:?}");
    assert_eq!(
        allocations(&used.json),
        BTreeMap::from([(s(&first, "id"), 5), (s(&second, "id"), 2)])
    );
}

#[tokio::test]
async fn one_usage_split_over_several_records() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let a = app
        .purchase(&account, 30, json!({"service": "biometric", "expiresAt": in_seconds(3600)}))
        .await;
    let b = app.purchase(&account, 40, json!({"service": "biometric"})).await;
    let c = app.purchase(&account, 50, json!({"service": "any"})).await;

    let used = app.use_credits(&account, "biometric", 100).await;
    assert_eq!(used.status, 201, "{used:?}");
    assert_eq!(used.json["credits"], 100);
    let split = allocations(&used.json);
    assert_eq!(split, BTreeMap::from([(s(&a, "id"), 30), (s(&b, "id"), 40), (s(&c, "id"), 30)]));
    assert_eq!(split.values().sum::<u64>(), 100);
    let listed: Vec<String> =
        used.json["allocations"].as_array().unwrap().iter().map(|x| s(x, "creditId")).collect();
    assert_eq!(
        listed,
        vec![s(&a, "id"), s(&b, "id"), s(&c, "id")],
        "allocations listed in burn-down order"
    );
    assert_eq!(used.json["balanceAfter"], 20);

    assert_eq!(record(&app, &s(&a, "id")).await["used"], 30);
    assert_eq!(record(&app, &s(&b, "id")).await["used"], 40);
    let c_now = record(&app, &s(&c, "id")).await;
    assert_eq!(c_now["used"], 30);
    assert_eq!(c_now["remaining"], 20);
    assert_eq!(app.balance(&account).await["available"], 20);

    // The ledger has one usage entry per record drawn, all naming the usage.
    let entries = ledger_all(&app, &format!("accountId={account}&type=usage")).await;
    let by_record: BTreeMap<String, u64> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["usageId"], used.json["id"]);
            (s(e, "creditId"), e["credits"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(by_record, split);
}

#[tokio::test]
async fn insufficient_credits_charge_nothing() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let a = app.purchase(&account, 20, json!({"service": "smartcheck"})).await;
    let b = app.purchase(&account, 10, json!({"service": "any"})).await;
    app.purchase(&account, 500, json!({"service": "smartaccess"})).await;
    let before_a = record(&app, &s(&a, "id")).await;
    let before_b = record(&app, &s(&b, "id")).await;
    let balance_before = app.balance(&account).await;
    let ledger_before = ledger_all(&app, &format!("accountId={account}")).await;

    let refused = app.use_credits(&account, "smartcheck", 31).await;
    assert_problem(&refused, 402, "insufficient_credits");
    let explicit = usage(&app, &account, "smartcheck", json!({"credits": 31})).await;
    assert_problem(&explicit, 402, "insufficient_credits");
    let held = hold(&app, &account, "smartcheck", 31, json!({})).await;
    assert_problem(&held, 402, "insufficient_credits");

    assert_eq!(record(&app, &s(&a, "id")).await, before_a);
    assert_eq!(record(&app, &s(&b, "id")).await, before_b);
    let balance_after = app.balance(&account).await;
    assert_eq!(balance_after["available"], balance_before["available"]);
    assert_eq!(balance_after["reserved"], 0);
    assert_eq!(balance_after["byService"], balance_before["byService"]);
    let ledger_after = ledger_all(&app, &format!("accountId={account}")).await;
    assert_eq!(ledger_after, ledger_before, "no ledger entry");
    let listed = app.get(&format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.json["data"], json!([]), "no usage recorded");

    // Exactly the available amount still goes through.
    let exact = app.use_credits(&account, "smartcheck", 30).await;
    assert_eq!(exact.status, 201, "{exact:?}");
    assert_eq!(exact.json["balanceAfter"], 0);

    // An account with nothing at all.
    let empty = app.create_account().await;
    let refused = app.use_credits(&empty, "api", 1).await;
    assert_problem(&refused, 402, "insufficient_credits");
}

#[tokio::test]
async fn expiry_is_exact_at_the_instant() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let expires_at = in_seconds(2);
    let expiring = app
        .purchase(&account, 10, json!({"service": "smartcheck", "expiresAt": expires_at.clone()}))
        .await;
    let id = s(&expiring, "id");
    let used = app.use_credits(&account, "smartcheck", 3).await;
    assert_eq!(used.status, 201, "{used:?}");

    sleep_until(&expires_at, 20).await;
    // Right after the instant (tens of milliseconds, well before a one-second sweep would
    // reliably have run), every read is exact.
    let after = record(&app, &id).await;
    let balance = app.balance(&account).await;
    let refused = app.use_credits(&account, "smartcheck", 1).await;

    assert_eq!(after["remaining"], 0, "{after}");
    assert_eq!(after["expiredAmount"], 7, "what was left: {after}");
    assert_eq!(after["used"], 3);
    assert_eq!(after["status"], "expired", "{after}");
    assert_eq!(balance["available"], 0, "{balance}");
    assert!(
        balance["byService"]["smartcheck"].is_null()
            || balance["byService"]["smartcheck"]["available"] == 0,
        "{balance}"
    );
    assert!(balance["nextExpiry"].is_null(), "{balance}");
    assert_problem(&refused, 402, "insufficient_credits");

    let listed = app.get(&format!("/v2/credits?accountId={account}&status=expired")).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.json["data"][0]["id"], id.as_str(), "{listed:?}");
    assert_eq!(listed.json["data"][0]["expiredAmount"], 7);

    // The ledger records the expiry (once a sweep or a write has applied it).
    let mut expiry = Vec::new();
    for _ in 0..30 {
        expiry = ledger_all(&app, &format!("creditId={id}&type=expiry")).await;
        if !expiry.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(expiry.len(), 1, "one expiry entry within 3 s: {expiry:?}");
    assert_eq!(expiry[0]["credits"], 7);
    assert_eq!(expiry[0]["remainingAfter"], 0);
    let again = record(&app, &id).await;
    assert_eq!(again["expiredAmount"], 7, "the sweep does not change the read");
}

#[tokio::test]
async fn expiry_reads_before_and_after_the_instant() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let expires_at = in_seconds(3);
    let expiring = app
        .purchase(&account, 10, json!({"service": "api", "expiresAt": expires_at.clone()}))
        .await;
    let keeper = app.purchase(&account, 5, json!({"service": "api"})).await;
    let id = s(&expiring, "id");

    let target = extra::parse_rfc3339(&expires_at) - 0.4;
    let wait = target - extra::now_secs();
    if wait > 0.0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
    }
    let before = record(&app, &id).await;
    assert_eq!(before["remaining"], 10, "still active before: {before}");
    assert_eq!(before["status"], "active");
    assert_eq!(app.balance(&account).await["available"], 15);

    sleep_until(&expires_at, 20).await;
    let balance = app.balance(&account).await;
    assert_eq!(balance["available"], 5, "only the keeper: {balance}");
    let used = app.use_credits(&account, "api", 5).await;
    assert_eq!(used.status, 201, "{used:?}");
    assert_eq!(
        allocations(&used.json),
        BTreeMap::from([(s(&keeper, "id"), 5)]),
        "the expired record is not drawn"
    );
    let after = record(&app, &id).await;
    assert_eq!(after["remaining"], 0);
    assert_eq!(after["expiredAmount"], 10);
    assert_eq!(after["status"], "expired");
}

#[tokio::test]
async fn reservation_hold_and_partial_capture() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let credit = app.purchase(&account, 100, json!({"service": "smartenroll"})).await;
    let credit_id = s(&credit, "id");

    let held = hold(&app, &account, "smartenroll", 50, json!({})).await;
    assert_eq!(held.status, 201, "{held:?}");
    let reservation = held.json.clone();
    let hold_id = s(&reservation, "id");
    assert!(hold_id.starts_with("res_"), "{reservation}");
    assert_eq!(reservation["accountId"], account.as_str());
    assert_eq!(reservation["service"], "smartenroll");
    assert_eq!(reservation["credits"], 50);
    assert_eq!(reservation["captured"], 0);
    assert_eq!(reservation["status"], "held");
    assert_eq!(allocations(&reservation), BTreeMap::from([(credit_id.clone(), 50)]));
    assert!(reservation["actor"].is_object());
    let ttl = extra::parse_rfc3339(reservation["expiresAt"].as_str().unwrap())
        - extra::parse_rfc3339(reservation["createdAt"].as_str().unwrap());
    assert!((ttl - 300.0).abs() < 1.0, "ttlSeconds defaults to 300: {ttl}");

    let during = record(&app, &credit_id).await;
    assert_eq!(during["reserved"], 50);
    assert_eq!(during["remaining"], 50);
    let balance = app.balance(&account).await;
    assert_eq!(balance["available"], 50);
    assert_eq!(balance["reserved"], 50);
    let read = app.get(&format!("/v2/reservations/{hold_id}")).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json["status"], "held");

    let captured = capture(&app, &hold_id, &json!({"credits": 30})).await;
    assert_eq!(captured.status, 200, "{captured:?}");
    assert_eq!(captured.json["status"], "captured");
    assert_eq!(captured.json["captured"], 30);

    let after = record(&app, &credit_id).await;
    assert_eq!(after["used"], 30, "{after}");
    assert_eq!(after["reserved"], 0, "the rest returned: {after}");
    assert_eq!(after["remaining"], 70, "{after}");
    let balance = app.balance(&account).await;
    assert_eq!(balance["available"], 70);
    assert_eq!(balance["reserved"], 0);

    // The capture created a usage of 30.
    let listed = app.get(&format!("/v2/usage?accountId={account}")).await;
    let usages = listed.json["data"].as_array().unwrap();
    assert_eq!(usages.len(), 1, "{listed:?}");
    assert_eq!(usages[0]["credits"], 30);
    assert_eq!(usages[0]["service"], "smartenroll");
    assert_eq!(allocations(&usages[0]), BTreeMap::from([(credit_id.clone(), 30)]));

    let twice = capture(&app, &hold_id, &json!({"credits": 10})).await;
    assert_problem(&twice, 409, "invalid_state");
    let release_after = release(&app, &hold_id).await;
    assert_problem(&release_after, 409, "invalid_state");
    assert_eq!(record(&app, &credit_id).await, after, "nothing changed");

    // Capture without a body takes everything held.
    let all = hold(&app, &account, "smartenroll", 20, json!({})).await;
    assert_eq!(all.status, 201, "{all:?}");
    let whole = capture(&app, &s(&all.json, "id"), &json!({})).await;
    assert_eq!(whole.status, 200, "{whole:?}");
    assert_eq!(whole.json["captured"], 20);
    let end = record(&app, &credit_id).await;
    assert_eq!(end["used"], 50);
    assert_eq!(end["remaining"], 50);

    let unknown = capture(&app, "res_nope", &json!({})).await;
    assert_problem(&unknown, 404, "not_found");
    let unknown = app.get("/v2/reservations/res_nope").await;
    assert_problem(&unknown, 404, "not_found");
}

#[tokio::test]
async fn reservation_release_and_capture_limits() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let credit = app.purchase(&account, 100, json!({"service": "any"})).await;
    let credit_id = s(&credit, "id");

    let held = hold(&app, &account, "api", 60, json!({})).await;
    assert_eq!(held.status, 201, "{held:?}");
    let hold_id = s(&held.json, "id");

    let too_much = capture(&app, &hold_id, &json!({"credits": 61})).await;
    assert_problem(&too_much, 422, "validation_failed");
    let still = app.get(&format!("/v2/reservations/{hold_id}")).await;
    assert_eq!(still.json["status"], "held", "a refused capture changes nothing");
    assert_eq!(record(&app, &credit_id).await["reserved"], 60);

    let short = hold(&app, &account, "api", 41, json!({})).await;
    assert_problem(&short, 402, "insufficient_credits");

    let released = release(&app, &hold_id).await;
    assert_eq!(released.status, 200, "{released:?}");
    assert_eq!(released.json["status"], "released");
    assert_eq!(released.json["captured"], 0);
    let after = record(&app, &credit_id).await;
    assert_eq!(after["reserved"], 0);
    assert_eq!(after["remaining"], 100);
    assert_eq!(after["used"], 0);
    assert_eq!(app.balance(&account).await["available"], 100);

    let twice = release(&app, &hold_id).await;
    assert_problem(&twice, 409, "invalid_state");
    let capture_after = capture(&app, &hold_id, &json!({})).await;
    assert_problem(&capture_after, 409, "invalid_state");
    let listed = app.get(&format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.json["data"], json!([]), "a release creates no usage");

    let entries = ledger_all(&app, &format!("creditId={credit_id}")).await;
    let types: Vec<String> = entries.iter().map(|e| s(e, "type")).collect();
    assert_eq!(types, vec!["release", "hold", "purchase"], "{entries:?}");
    assert_eq!(entries[0]["credits"], 60);
    assert_eq!(entries[0]["remainingAfter"], 100);
    assert_eq!(entries[0]["reservationId"], hold_id.as_str());
}

#[tokio::test]
async fn reservation_expires_at_its_instant() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let credit = app.purchase(&account, 10, json!({"service": "smartcheck"})).await;
    let credit_id = s(&credit, "id");

    let held = hold(&app, &account, "smartcheck", 8, json!({"ttlSeconds": 1})).await;
    assert_eq!(held.status, 201, "{held:?}");
    let hold_id = s(&held.json, "id");
    let expires_at = s(&held.json, "expiresAt");
    let ttl = extra::parse_rfc3339(&expires_at) - extra::parse_rfc3339(&s(&held.json, "createdAt"));
    assert!((ttl - 1.0).abs() < 0.5, "ttlSeconds 1: {ttl}");
    assert_eq!(app.balance(&account).await["available"], 2);

    sleep_until(&expires_at, 20).await;
    let read = app.get(&format!("/v2/reservations/{hold_id}")).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json["status"], "expired", "{read:?}");
    let balance = app.balance(&account).await;
    assert_eq!(balance["available"], 10, "credits available again: {balance}");
    assert_eq!(balance["reserved"], 0, "{balance}");
    let after = record(&app, &credit_id).await;
    assert_eq!(after["reserved"], 0, "{after}");
    assert_eq!(after["remaining"], 10, "{after}");
    assert_eq!(after["status"], "active");

    let late = capture(&app, &hold_id, &json!({})).await;
    assert_problem(&late, 409, "invalid_state");
    let used = app.use_credits(&account, "smartcheck", 10).await;
    assert_eq!(used.status, 201, "the returned credits are spendable: {used:?}");
}

#[tokio::test]
async fn reservation_ttl_limits_and_idempotency_key() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    app.purchase(&account, 10, json!({})).await;
    for ttl in [0, 86_401] {
        let refused = hold(&app, &account, "api", 1, json!({"ttlSeconds": ttl})).await;
        assert_problem(&refused, 422, "validation_failed");
    }
    let max = hold(&app, &account, "api", 1, json!({"ttlSeconds": 86_400})).await;
    assert_eq!(max.status, 201, "{max:?}");

    let no_key = app
        .post("/v2/reservations", &json!({"accountId": account, "service": "api", "credits": 1}))
        .await;
    assert_problem(&no_key, 400, "bad_request");

    let k = key();
    let body = json!({"accountId": account, "service": "api", "credits": 2});
    let first = app.post_idempotent("/v2/reservations", &k, &body).await;
    assert_eq!(first.status, 201, "{first:?}");
    let replay = app.post_idempotent("/v2/reservations", &k, &body).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.json["id"], first.json["id"]);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.balance(&account).await["reserved"], 3, "held once, not twice");
}

#[tokio::test]
async fn hold_survives_record_expiry_and_release_goes_to_expired() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let expires_at = in_seconds(2);
    let credit = app
        .purchase(&account, 10, json!({"service": "api", "expiresAt": expires_at.clone()}))
        .await;
    let credit_id = s(&credit, "id");
    let held = hold(&app, &account, "api", 6, json!({"ttlSeconds": 60})).await;
    assert_eq!(held.status, 201, "{held:?}");
    let hold_id = s(&held.json, "id");

    sleep_until(&expires_at, 50).await;
    let mid = record(&app, &credit_id).await;
    assert_eq!(mid["remaining"], 0, "{mid}");
    assert_eq!(mid["reserved"], 6, "the hold stays: {mid}");
    assert_eq!(mid["expiredAmount"], 4, "{mid}");

    let captured = capture(&app, &hold_id, &json!({"credits": 4})).await;
    assert_eq!(
        captured.status, 200,
        "a hold stays capturable after its record expires: {captured:?}"
    );
    let end = record(&app, &credit_id).await;
    assert_eq!(end["used"], 4, "{end}");
    assert_eq!(end["reserved"], 0, "{end}");
    assert_eq!(end["remaining"], 0, "{end}");
    assert_eq!(
        end["expiredAmount"], 6,
        "what is released after expiry goes to expiredAmount: {end}"
    );
    assert_eq!(end["status"], "expired");
    assert_eq!(app.balance(&account).await["available"], 0);
}

#[tokio::test]
async fn void_moves_what_is_left_to_voided() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let credit = app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let credit_id = s(&credit, "id");
    let other = app.purchase(&account, 5, json!({"service": "any"})).await;
    let used = app.use_credits(&account, "smartcheck", 30).await;
    assert_eq!(used.status, 201, "{used:?}");

    let voided = void(&app, &credit_id).await;
    assert_eq!(voided.status, 200, "{voided:?}");
    assert_equation(&voided.json);
    assert_eq!(voided.json["voidedAmount"], 70);
    assert_eq!(voided.json["remaining"], 0);
    assert_eq!(voided.json["used"], 30);
    assert_eq!(voided.json["status"], "voided");
    assert_eq!(record(&app, &credit_id).await, voided.json);
    let balance = app.balance(&account).await;
    assert_eq!(balance["available"], 5, "{balance}");

    let twice = void(&app, &credit_id).await;
    assert_problem(&twice, 409, "invalid_state");
    let unknown = void(&app, "credit_nope").await;
    assert_problem(&unknown, 404, "not_found");

    let entries = ledger_all(&app, &format!("creditId={credit_id}&type=void")).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["credits"], 70);
    assert_eq!(entries[0]["remainingAfter"], 0);

    let next = app.use_credits(&account, "smartcheck", 5).await;
    assert_eq!(next.status, 201, "{next:?}");
    assert_eq!(
        allocations(&next.json),
        BTreeMap::from([(s(&other, "id"), 5)]),
        "the voided record is never drawn"
    );
}

#[tokio::test]
async fn reference_is_unique_per_account() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let other_account = app.create_account().await;
    let first = app.purchase(&account, 100, json!({"reference": "pi_123"})).await;
    assert_eq!(first["reference"], "pi_123");

    // The billing system retries with a new request (another idempotency key, even another
    // amount): refused, nothing paid twice.
    for body in [
        json!({"accountId": account, "amount": 100, "reference": "pi_123"}),
        json!({"accountId": account, "amount": 7, "reference": "pi_123", "kind": "grant"}),
    ] {
        let again = app.post_idempotent("/v2/credits", &key(), &body).await;
        assert_problem(&again, 409, "duplicate_reference");
        let again = app.post("/v2/credits", &body).await;
        assert_problem(&again, 409, "duplicate_reference");
    }
    let list = app.get(&format!("/v2/credits?accountId={account}")).await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1, "{list:?}");
    assert_eq!(app.balance(&account).await["available"], 100);

    let elsewhere = app.purchase(&other_account, 100, json!({"reference": "pi_123"})).await;
    assert_eq!(elsewhere["reference"], "pi_123", "unique per account only");
    let different = app.purchase(&account, 100, json!({"reference": "pi_124"})).await;
    assert_eq!(different["reference"], "pi_124");
}

#[tokio::test]
async fn concurrent_usage_never_overdraws() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let a = app.purchase(&account, 60, json!({"service": "smartcheck"})).await;
    let b = app.purchase(&account, 40, json!({"service": "any"})).await;
    let attempts = (0..60).map(|_| app.use_credits(&account, "smartcheck", 3));
    let answers = futures::future::join_all(attempts).await;
    let ok = answers.iter().filter(|a| a.status == 201).count();
    for answer in answers.iter().filter(|a| a.status != 201) {
        assert_problem(answer, 402, "insufficient_credits");
    }
    assert_eq!(ok, 33, "100 credits pay for exactly 33 usages of 3");
    let a_now = record(&app, &s(&a, "id")).await;
    let b_now = record(&app, &s(&b, "id")).await;
    assert_eq!(a_now["used"], 60);
    assert_eq!(b_now["used"], 39);
    assert_eq!(b_now["remaining"], 1);
    let credited: u64 = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.json["credits"].as_u64().unwrap())
        .sum();
    assert_eq!(credited, 99, "the sum of usage credits equals the sum of used");

    // The same key sent many times at once charges once.
    let k = key();
    let body = json!({"accountId": account, "service": "smartcheck", "quantity": 1});
    let same = (0..20).map(|_| app.post_idempotent("/v2/usage", &k, &body));
    let answers = futures::future::join_all(same).await;
    for answer in &answers {
        assert_eq!(answer.status, 201, "{answer:?}");
        assert_eq!(answer.json["id"], answers[0].json["id"]);
    }
    assert_eq!(
        answers.iter().filter(|a| a.header("idempotent-replayed").is_none()).count(),
        1,
        "one original answer, the rest replays"
    );
    assert_eq!(record(&app, &s(&b, "id")).await["remaining"], 0);
}

#[tokio::test]
async fn partial_capture_of_a_hold_over_two_records() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let specific = app.purchase(&account, 10, json!({"service": "smartcheck"})).await;
    let any = app.purchase(&account, 10, json!({"service": "any"})).await;
    let held = hold(&app, &account, "smartcheck", 15, json!({})).await;
    assert_eq!(held.status, 201, "{held:?}");
    assert_eq!(
        allocations(&held.json),
        BTreeMap::from([(s(&specific, "id"), 10), (s(&any, "id"), 5)])
    );
    let captured = capture(&app, &s(&held.json, "id"), &json!({"credits": 12})).await;
    assert_eq!(captured.status, 200, "{captured:?}");
    let usage_list = app.get(&format!("/v2/usage?accountId={account}")).await;
    let usage = &usage_list.json["data"][0];
    assert_eq!(usage["credits"], 12);
    assert_eq!(
        allocations(usage),
        BTreeMap::from([(s(&specific, "id"), 10), (s(&any, "id"), 2)]),
        "the capture draws in burn-down order: {usage}"
    );
    let specific_now = record(&app, &s(&specific, "id")).await;
    assert_eq!(specific_now["used"], 10);
    assert_eq!(specific_now["reserved"], 0);
    let any_now = record(&app, &s(&any, "id")).await;
    assert_eq!(any_now["used"], 2);
    assert_eq!(any_now["reserved"], 0);
    assert_eq!(any_now["remaining"], 8, "the rest is returned: {any_now}");
}

#[tokio::test]
async fn an_expired_hold_is_released_in_the_ledger() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let credit = app.purchase(&account, 10, json!({"service": "api"})).await;
    let held = hold(&app, &account, "api", 4, json!({"ttlSeconds": 1})).await;
    assert_eq!(held.status, 201, "{held:?}");
    let hold_id = s(&held.json, "id");
    let zero_capture = capture(&app, &hold_id, &json!({"credits": 0})).await;
    assert_problem(&zero_capture, 422, "validation_failed");

    let mut released = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        released = ledger_all(&app, &format!("creditId={}&type=release", s(&credit, "id"))).await;
        if !released.is_empty() {
            break;
        }
    }
    assert_eq!(released.len(), 1, "one release entry within 4 s: {released:?}");
    assert_eq!(released[0]["credits"], 4);
    assert_eq!(released[0]["remainingAfter"], 10);
    assert_eq!(released[0]["reservationId"], hold_id.as_str());
    let read = app.get(&format!("/v2/reservations/{hold_id}")).await;
    assert_eq!(read.json["status"], "expired");
    let late = release(&app, &hold_id).await;
    assert_problem(&late, 409, "invalid_state");
}

/// With the background sweep stretched to an hour, nothing but the reads themselves can apply
/// an expiry: the record, the balance, the list filter and a usage are still exact after the
/// instant, and the ledger shows no expiry entry (proof that no sweep ran). The same holds for a
/// reservation: it reads expired and its credits are available again.
#[tokio::test]
async fn expiry_is_exact_with_no_sweep() {
    let app = common::spawn_app_with_env(&[("CREDITS_SWEEP_INTERVAL_MS", "3600000")]).await;
    let account = app.create_account().await;
    let expires_at = in_seconds(2);
    let expiring = app
        .purchase(&account, 10, json!({"service": "smartcheck", "expiresAt": expires_at.clone()}))
        .await;
    let keeper = app.purchase(&account, 4, json!({"service": "smartcheck"})).await;
    let held = hold(&app, &account, "smartcheck", 3, json!({"ttlSeconds": 1})).await;
    assert_eq!(held.status, 201, "{held:?}");
    let hold_id = s(&held.json, "id");
    let used = app.use_credits(&account, "smartcheck", 2).await;
    assert_eq!(used.status, 201, "{used:?}");

    sleep_until(&expires_at, 50).await;
    let id = s(&expiring, "id");
    let after = record(&app, &id).await;
    assert_eq!(after["status"], "expired", "{after}");
    assert_eq!(after["remaining"], 0, "{after}");
    assert_eq!(after["reserved"], 0, "the expired hold released its credits: {after}");
    assert_eq!(after["expiredAmount"], 8, "10 - 2 used, the hold's 3 came back first: {after}");
    let hold_read = app.get(&format!("/v2/reservations/{hold_id}")).await;
    assert_eq!(hold_read.json["status"], "expired", "{hold_read:?}");
    let balance = app.balance(&account).await;
    assert_eq!(balance["available"], 4, "only the never-expiring record: {balance}");
    assert_eq!(balance["reserved"], 0, "{balance}");
    let listed = app.get(&format!("/v2/credits?accountId={account}&status=expired")).await;
    assert_eq!(listed.json["data"].as_array().map(Vec::len), Some(1), "{listed:?}");
    let expiry = ledger_all(&app, &format!("creditId={id}&type=expiry")).await;
    assert!(expiry.is_empty(), "no sweep ran, so no expiry entry yet: {expiry:?}");
    // A write on the account applies the due expiry (as the sweep would) and sees it.
    let refused = app.use_credits(&account, "smartcheck", 5).await;
    assert_problem(&refused, 402, "insufficient_credits");
    let keeper = record(&app, &s(&keeper, "id")).await;
    assert_eq!(keeper["remaining"], 4, "{keeper}");
}
