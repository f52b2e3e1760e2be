//! Goal: budgets behave as SPEC section 7 says. A blocking budget refuses the usage or hold that
//! would take `spent` past `limit` with 402 `budget_exceeded` and charges nothing, exactly at the
//! limit even under 200 concurrent requests; a notifying budget never blocks; holds count as
//! spent and stop counting once released (by hand or by expiry); a budget created after usage
//! counts the usage of its current period; account, member, apiKey and service scopes each count
//! and block only what is in them; reads show `spent` and the current period's bounds; usage
//! records carry `actor {memberId, apiKeyId}` and the usage list filters by both.
//!
//! Method: black box over HTTP against the real binary, fresh data directory per test. Members
//! and member-bound keys are made with the operator key; usage and holds are sent with those keys.
//! Around every refused request the balance, the credit record, the ledger (count and newest
//! entry) and the usage list are read and compared; the budget is read back for `spent`. The race
//! sends 200 one-credit usages released by one barrier, all in flight at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/extra.rs"]
mod extra;
#[path = "support/team.rs"]
mod team;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use common::{Answer, TestApp, ADMIN_KEY};
use extra::{assert_problem, key, now_secs, parse_rfc3339, rfc3339, s};
use team::{
    account_key, budget, budget_read, get, ledger_snapshot, list_all_as, member, member_key, post,
    spent, Key, LedgerSnapshot,
};

/// Everything a refused charge must leave as it was.
#[derive(Debug, PartialEq)]
struct Charges {
    available: Value,
    reserved: Value,
    credit: Value,
    ledger: LedgerSnapshot,
    usage_count: usize,
}

async fn charges(app: &TestApp, account: &str, credit: &str) -> Charges {
    let balance = app.balance(account).await;
    let usage = list_all_as(app, &format!("/v2/usage?accountId={account}"), ADMIN_KEY).await;
    Charges {
        available: balance["available"].clone(),
        reserved: balance["reserved"].clone(),
        credit: app.credit(credit).await,
        ledger: ledger_snapshot(app, account).await,
        usage_count: usage.len(),
    }
}

async fn spend(app: &TestApp, bearer: &str, service: &str, quantity: u64) -> Answer {
    post(app, "/v2/usage", bearer, &json!({"service": service, "quantity": quantity})).await
}

async fn hold(app: &TestApp, bearer: &str, credits: u64, ttl_seconds: u64) -> Answer {
    post(
        app,
        "/v2/reservations",
        bearer,
        &json!({"service": "smartcheck", "credits": credits, "ttlSeconds": ttl_seconds}),
    )
    .await
}

/// An account with 1000 credits for any service; returns (account, credit id).
async fn funded(app: &TestApp) -> (String, String) {
    let account = app.create_account().await;
    let credit = s(&app.purchase(&account, 1000, json!({})).await, "id");
    (account, credit)
}

/// A member of role `member` and a key bound to it.
async fn spender(app: &TestApp, account: &str) -> (String, Key) {
    let id = member(app, account, "member").await;
    let key = member_key(app, account, &id).await;
    (id, key)
}

#[tokio::test]
async fn a_members_daily_block_budget_refuses_past_its_limit_while_another_member_goes_on() {
    let app = common::spawn_app().await;
    let (account, credit) = funded(&app).await;
    let (first, first_key) = spender(&app, &account).await;
    let (_second, second_key) = spender(&app, &account).await;
    let limited = budget(
        &app,
        &account,
        json!({"scope": {"type": "member", "id": first}, "period": "day", "limit": 10,
            "enforcement": "block"}),
    )
    .await;
    let id = s(&limited, "id");
    assert_eq!(limited["spent"], 0);

    for quantity in [4, 5] {
        let answer = spend(&app, &first_key.secret, "smartcheck", quantity).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    assert_eq!(spent(&app, &id).await, 9);

    // 9 + 2 passes 10: refused, nothing charged.
    let before = charges(&app, &account, &credit).await;
    let refused = spend(&app, &first_key.secret, "smartcheck", 2).await;
    assert_problem(&refused, 402, "budget_exceeded");
    // The same through a batch: the event carries the refusal.
    let batch = post(
        &app,
        "/v2/usage/batch",
        &first_key.secret,
        &json!({"events": [{"idempotencyKey": key(), "service": "smartcheck", "quantity": 2}]}),
    )
    .await;
    assert_eq!(batch.status, 200, "{batch:?}");
    assert_eq!(batch.json["data"][0]["status"], 402, "{batch:?}");
    assert_eq!(batch.json["data"][0]["error"]["code"], "budget_exceeded", "{batch:?}");
    assert_eq!(charges(&app, &account, &credit).await, before);
    assert_eq!(spent(&app, &id).await, 9);

    // Exactly to the limit is allowed; one more is not.
    let last = spend(&app, &first_key.secret, "smartcheck", 1).await;
    assert_eq!(last.status, 201, "{last:?}");
    assert_eq!(spent(&app, &id).await, 10);
    let before = charges(&app, &account, &credit).await;
    let over = spend(&app, &first_key.secret, "api", 1).await;
    assert_problem(&over, 402, "budget_exceeded");
    assert_eq!(charges(&app, &account, &credit).await, before);

    // The other member of the same account goes on, past 10.
    for _ in 0..3 {
        let answer = spend(&app, &second_key.secret, "smartcheck", 7).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    assert_eq!(spent(&app, &id).await, 10);
    assert_eq!(app.balance(&account).await["available"], 1000 - 10 - 21);
}

#[tokio::test]
async fn a_notify_budget_never_blocks() {
    let app = common::spawn_app().await;
    let (account, _) = funded(&app).await;
    let (member_id, member_key) = spender(&app, &account).await;
    let notify = budget(
        &app,
        &account,
        json!({"scope": {"type": "member", "id": member_id}, "limit": 5,
            "enforcement": "notify"}),
    )
    .await;
    let id = s(&notify, "id");
    for quantity in [3, 3, 10] {
        let answer = spend(&app, &member_key.secret, "smartcheck", quantity).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let held = hold(&app, &member_key.secret, 4, 300).await;
    assert_eq!(held.status, 201, "{held:?}");
    let read = budget_read(&app, &id).await;
    assert_eq!(read["spent"], 20, "spent goes past the limit: {read}");
    assert_eq!(read["limit"], 5);
    assert_eq!(read["enforcement"], "notify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_usages_against_a_limit_of_50_give_exactly_50() {
    let app = common::spawn_app().await;
    let (account, credit) = funded(&app).await;
    let (member_id, member_key) = spender(&app, &account).await;
    let limited = budget(
        &app,
        &account,
        json!({"scope": {"type": "member", "id": member_id}, "limit": 50,
            "enforcement": "block"}),
    )
    .await;
    let id = s(&limited, "id");

    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let barrier = Arc::new(Barrier::new(200));
    let url = app.url("/v2/usage");
    let tasks = (0..200).map(|i| {
        let client = client.clone();
        let barrier = barrier.clone();
        let url = url.clone();
        let secret = member_key.secret.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let response = client
                .post(url)
                .bearer_auth(secret)
                .header("idempotency-key", format!("race-{i}"))
                .header("content-type", "application/json")
                .body(json!({"service": "smartcheck"}).to_string())
                .send()
                .await
                .expect("the server answers");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        })
    });
    let answers: Vec<(u16, String)> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("the task did not panic"))
        .collect();
    let successes = answers.iter().filter(|(status, _)| *status == 201).count();
    let refusals = answers
        .iter()
        .filter(|(status, text)| {
            *status == 402
                && serde_json::from_str::<Value>(text).unwrap()["code"] == "budget_exceeded"
        })
        .count();
    let others: Vec<&(u16, String)> =
        answers.iter().filter(|(status, _)| *status != 201 && *status != 402).collect();
    assert!(others.is_empty(), "only 201 or 402 expected: {others:?}");
    assert_eq!(successes, 50, "exactly 50 one-credit usages fit a limit of 50");
    assert_eq!(refusals, 150, "the other 150 are 402 budget_exceeded");
    assert_eq!(spent(&app, &id).await, 50);
    assert_eq!(app.balance(&account).await["available"], 950);
    let record = app.credit(&credit).await;
    assert_eq!(record["used"], 50, "{record}");
    let usage = list_all_as(
        &app,
        &format!("/v2/usage?accountId={account}&memberId={member_id}"),
        ADMIN_KEY,
    )
    .await;
    assert_eq!(usage.len(), 50);
    let ledger =
        list_all_as(&app, &format!("/v2/ledger?accountId={account}&type=usage"), ADMIN_KEY).await;
    assert_eq!(ledger.len(), 50);
}

#[tokio::test]
async fn holds_count_as_spent_and_released_holds_stop_counting() {
    let app = common::spawn_app().await;
    let (account, credit) = funded(&app).await;
    let (member_id, member_key) = spender(&app, &account).await;
    let limited = budget(
        &app,
        &account,
        json!({"scope": {"type": "member", "id": member_id}, "limit": 10,
            "enforcement": "block"}),
    )
    .await;
    let id = s(&limited, "id");

    let first = hold(&app, &member_key.secret, 6, 3600).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(spent(&app, &id).await, 6, "a hold counts as spent");

    // A usage and a hold that would pass 10 with the hold counted are refused.
    let before = charges(&app, &account, &credit).await;
    let usage = spend(&app, &member_key.secret, "smartcheck", 5).await;
    assert_problem(&usage, 402, "budget_exceeded");
    let second = hold(&app, &member_key.secret, 5, 3600).await;
    assert_problem(&second, 402, "budget_exceeded");
    assert_eq!(charges(&app, &account, &credit).await, before);
    assert_eq!(spent(&app, &id).await, 6);

    // Released, the hold stops counting.
    let released = post(
        &app,
        &format!("/v2/reservations/{}/release", s(&first.json, "id")),
        &member_key.secret,
        &json!({}),
    )
    .await;
    assert_eq!(released.status, 200, "{released:?}");
    assert_eq!(spent(&app, &id).await, 0, "a released hold stops counting");
    let usage = spend(&app, &member_key.secret, "smartcheck", 5).await;
    assert_eq!(usage.status, 201, "{usage:?}");
    assert_eq!(spent(&app, &id).await, 5);

    // Partly captured, only what was captured stays counted.
    let third = hold(&app, &member_key.secret, 4, 3600).await;
    assert_eq!(third.status, 201, "{third:?}");
    assert_eq!(spent(&app, &id).await, 9);
    let captured = post(
        &app,
        &format!("/v2/reservations/{}/capture", s(&third.json, "id")),
        &member_key.secret,
        &json!({"credits": 1}),
    )
    .await;
    assert_eq!(captured.status, 200, "{captured:?}");
    assert_eq!(spent(&app, &id).await, 6);
    let fits = spend(&app, &member_key.secret, "smartcheck", 4).await;
    assert_eq!(fits.status, 201, "{fits:?}");
    assert_eq!(spent(&app, &id).await, 10);
}

/// A member with a blocking budget of 10 and an 8-credit hold of a one-second TTL, on a server
/// whose sweep is stretched to a minute, so only exact reads and writes show the expiry. Returns
/// (app, budget id, member key, hold answer), after the hold's expiry instant.
async fn expired_hold_setup() -> (TestApp, String, Key, Value) {
    let app = common::spawn_app_with_env(&[("CREDITS_SWEEP_INTERVAL_MS", "60000")]).await;
    let (account, _) = funded(&app).await;
    let (member_id, member_key) = spender(&app, &account).await;
    let limited = budget(
        &app,
        &account,
        json!({"scope": {"type": "member", "id": member_id}, "limit": 10,
            "enforcement": "block"}),
    )
    .await;
    let id = s(&limited, "id");
    let held = hold(&app, &member_key.secret, 8, 1).await;
    assert_eq!(held.status, 201, "{held:?}");
    assert_eq!(spent(&app, &id).await, 8);
    extra::sleep_until(&s(&held.json, "expiresAt"), 200).await;
    let hold_read =
        get(&app, &format!("/v2/reservations/{}", s(&held.json, "id")), ADMIN_KEY).await;
    assert_eq!(hold_read.json["status"], "expired", "{hold_read:?}");
    (app, id, member_key, held.json)
}

#[tokio::test]
async fn an_expired_hold_stops_counting_for_the_next_charge() {
    let (app, id, member_key, _) = expired_hold_setup().await;
    // 8 + 9 would pass 10 if the expired hold still counted.
    let usage = spend(&app, &member_key.secret, "smartcheck", 9).await;
    assert_eq!(usage.status, 201, "{usage:?}");
    assert_eq!(spent(&app, &id).await, 9);
}

#[tokio::test]
async fn a_budget_read_stops_counting_an_expired_hold_from_its_expiry_instant() {
    let (app, id, _, held) = expired_hold_setup().await;
    // SPEC 6: an unsettled hold is released automatically at its expiry, and from that instant
    // reads show it; SPEC 7: released holds stop counting. No write has happened since.
    let read = budget_read(&app, &id).await;
    assert_eq!(
        read["spent"], 0,
        "hold {} expired at {} and reads expired, but the budget still counts it: {read}",
        held["id"], held["expiresAt"]
    );
}

#[tokio::test]
async fn a_budget_created_after_usage_counts_the_usage_of_its_period() {
    let app = common::spawn_app().await;
    let (account, _) = funded(&app).await;
    let (member_id, member_key) = spender(&app, &account).await;
    let (_, other_key) = spender(&app, &account).await;
    let used = spend(&app, &member_key.secret, "smartcheck", 7).await;
    assert_eq!(used.status, 201, "{used:?}");
    let held = hold(&app, &member_key.secret, 2, 3600).await;
    assert_eq!(held.status, 201, "{held:?}");
    let other = spend(&app, &other_key.secret, "smartcheck", 50).await;
    assert_eq!(other.status, 201, "{other:?}");

    let limited = budget(
        &app,
        &account,
        json!({"scope": {"type": "member", "id": member_id}, "limit": 10,
            "enforcement": "block"}),
    )
    .await;
    let id = s(&limited, "id");
    assert_eq!(limited["spent"], 9, "usage and holds already made count: {limited}");
    let account_wide = budget(
        &app,
        &account,
        json!({"scope": {"type": "account"}, "limit": 1000, "enforcement": "notify"}),
    )
    .await;
    assert_eq!(account_wide["spent"], 59, "{account_wide}");
    for period in ["week", "month", "lifetime"] {
        let created = budget(
            &app,
            &account,
            json!({"scope": {"type": "member", "id": member_id}, "period": period,
                "limit": 1000, "enforcement": "notify"}),
        )
        .await;
        assert_eq!(created["spent"], 9, "{period}: {created}");
    }

    let refused = spend(&app, &member_key.secret, "smartcheck", 2).await;
    assert_problem(&refused, 402, "budget_exceeded");
    let fits = spend(&app, &member_key.secret, "smartcheck", 1).await;
    assert_eq!(fits.status, 201, "{fits:?}");
    assert_eq!(spent(&app, &id).await, 10);
    // The hold placed before the budget stops counting once released.
    let released = post(
        &app,
        &format!("/v2/reservations/{}/release", s(&held.json, "id")),
        ADMIN_KEY,
        &json!({}),
    )
    .await;
    assert_eq!(released.status, 200, "{released:?}");
    assert_eq!(spent(&app, &id).await, 8);
}

#[tokio::test]
async fn each_scope_counts_and_blocks_only_what_is_in_it() {
    let app = common::spawn_app().await;
    let (account, _) = funded(&app).await;
    let (other_account, _) = funded(&app).await;
    let (first, first_key) = spender(&app, &account).await;
    let (_second, second_key) = spender(&app, &account).await;
    let unbound = account_key(&app, &account).await;
    let stranger = account_key(&app, &other_account).await;

    // Account scope: every actor of the account counts, another account's usage does not.
    let account_budget = s(
        &budget(
            &app,
            &account,
            json!({"scope": {"type": "account"}, "limit": 6, "enforcement": "block"}),
        )
        .await,
        "id",
    );
    for bearer in [&first_key.secret, &second_key.secret, &unbound.secret] {
        let answer = spend(&app, bearer, "smartcheck", 2).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let elsewhere = spend(&app, &stranger.secret, "smartcheck", 20).await;
    assert_eq!(elsewhere.status, 201, "{elsewhere:?}");
    assert_eq!(spent(&app, &account_budget).await, 6);
    for bearer in [&first_key.secret, &second_key.secret, &unbound.secret] {
        let answer = spend(&app, bearer, "api", 1).await;
        assert_problem(&answer, 402, "budget_exceeded");
    }
    let elsewhere = spend(&app, &stranger.secret, "smartcheck", 1).await;
    assert_eq!(elsewhere.status, 201, "another account is not in scope");
    let deleted = team::delete(&app, &format!("/v2/budgets/{account_budget}"), ADMIN_KEY).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");

    // apiKey scope: only the key's own usage counts.
    let key_budget = s(
        &budget(
            &app,
            &account,
            json!({"scope": {"type": "apiKey", "id": unbound.id}, "limit": 5,
                "enforcement": "block"}),
        )
        .await,
        "id",
    );
    assert_eq!(spent(&app, &key_budget).await, 2, "the key's earlier usage");
    assert_eq!(spend(&app, &unbound.secret, "smartcheck", 3).await.status, 201);
    let over = spend(&app, &unbound.secret, "smartcheck", 1).await;
    assert_problem(&over, 402, "budget_exceeded");
    for bearer in [&first_key.secret, &second_key.secret] {
        let answer = spend(&app, bearer, "smartcheck", 4).await;
        assert_eq!(answer.status, 201, "other keys are not in scope: {answer:?}");
    }
    assert_eq!(spent(&app, &key_budget).await, 5);

    // Member scope: the member's key and operator usage attributed to the member count.
    let member_budget = s(
        &budget(
            &app,
            &account,
            json!({"scope": {"type": "member", "id": first}, "limit": 10,
                "enforcement": "block"}),
        )
        .await,
        "id",
    );
    assert_eq!(spent(&app, &member_budget).await, 6, "2 + 4 so far");
    let attributed = post(
        &app,
        "/v2/usage",
        ADMIN_KEY,
        &json!({"accountId": account, "service": "smartcheck", "quantity": 3,
            "memberId": first}),
    )
    .await;
    assert_eq!(attributed.status, 201, "{attributed:?}");
    assert_eq!(spent(&app, &member_budget).await, 9);
    let over = spend(&app, &first_key.secret, "smartcheck", 2).await;
    assert_problem(&over, 402, "budget_exceeded");
    let operator_over = post(
        &app,
        "/v2/usage",
        ADMIN_KEY,
        &json!({"accountId": account, "service": "smartcheck", "quantity": 2,
            "memberId": first}),
    )
    .await;
    assert_problem(&operator_over, 402, "budget_exceeded");
    let second_goes_on = spend(&app, &second_key.secret, "smartcheck", 2).await;
    assert_eq!(second_goes_on.status, 201, "{second_goes_on:?}");
    let unattributed = post(
        &app,
        "/v2/usage",
        ADMIN_KEY,
        &json!({"accountId": account, "service": "smartcheck", "quantity": 2}),
    )
    .await;
    assert_eq!(unattributed.status, 201, "{unattributed:?}");
    assert_eq!(spent(&app, &member_budget).await, 9);

    // Service scope: only that service's usage counts, whoever makes it, from before the
    // budget too.
    let earlier = spend(&app, &second_key.secret, "smartaccess", 1).await;
    assert_eq!(earlier.status, 201, "{earlier:?}");
    let service_budget = s(
        &budget(
            &app,
            &account,
            json!({"scope": {"type": "service", "id": "smartaccess"}, "limit": 4,
                "enforcement": "block"}),
        )
        .await,
        "id",
    );
    assert_eq!(spent(&app, &service_budget).await, 1, "the usage made before");
    assert_eq!(spend(&app, &second_key.secret, "smartaccess", 2).await.status, 201);
    let over = spend(&app, &second_key.secret, "smartaccess", 2).await;
    assert_problem(&over, 402, "budget_exceeded");
    let operator_over = post(
        &app,
        "/v2/usage",
        ADMIN_KEY,
        &json!({"accountId": account, "service": "smartaccess", "quantity": 2}),
    )
    .await;
    assert_problem(&operator_over, 402, "budget_exceeded");
    let other_service = spend(&app, &second_key.secret, "smartenroll", 5).await;
    assert_eq!(other_service.status, 201, "{other_service:?}");
    assert_eq!(spent(&app, &service_budget).await, 3);
    // The earlier budgets did not count what was outside them.
    assert_eq!(spent(&app, &key_budget).await, 5);
    assert_eq!(spent(&app, &member_budget).await, 9);
}

/// Seconds since the epoch of today's 00:00Z.
fn today_start(now: f64) -> f64 {
    (now / 86_400.0).floor() * 86_400.0
}

#[tokio::test]
async fn reads_show_spent_and_the_current_periods_bounds() {
    let app = common::spawn_app().await;
    let (account, _) = funded(&app).await;
    let (member_id, member_key) = spender(&app, &account).await;
    let mut ids = Vec::new();
    for period in ["day", "week", "month", "lifetime"] {
        let created = budget(
            &app,
            &account,
            json!({"scope": {"type": "member", "id": member_id}, "period": period,
                "limit": 100, "enforcement": "block"}),
        )
        .await;
        ids.push((period, s(&created, "id")));
    }
    let used = spend(&app, &member_key.secret, "smartcheck", 3).await;
    assert_eq!(used.status, 201, "{used:?}");

    let before = now_secs();
    let listed = list_all_as(&app, &format!("/v2/budgets?accountId={account}"), ADMIN_KEY).await;
    let after = now_secs();
    assert_eq!(listed.len(), 4);
    for (period, id) in &ids {
        let read = budget_read(&app, id).await;
        let item = listed.iter().find(|b| b["id"] == id.as_str()).unwrap();
        for shown in [&read, item] {
            assert_eq!(shown["spent"], 3, "{period}: {shown}");
            assert_eq!(shown["period"], *period);
            assert_eq!(shown["limit"], 100);
            assert_eq!(shown["scope"]["type"], "member");
            assert_eq!(shown["scope"]["id"], member_id.as_str());
        }
        if *period == "lifetime" {
            continue;
        }
        let start = parse_rfc3339(read["periodStart"].as_str().unwrap());
        let end = parse_rfc3339(read["periodEnd"].as_str().unwrap());
        assert!(start <= before && after < end, "{period}: now is in {read}");
        assert_eq!(start % 86_400.0, 0.0, "{period} starts at 00:00Z: {read}");
        assert_eq!(end % 86_400.0, 0.0, "{period} ends at 00:00Z: {read}");
        match *period {
            "day" => {
                let today = today_start(before);
                let today_after = today_start(after);
                assert!(start == today || start == today_after, "day starts today 00:00Z: {read}");
                assert_eq!(end - start, 86_400.0, "day ends tomorrow 00:00Z: {read}");
            }
            "week" => {
                // 1970-01-01 was a Thursday: Mondays are 4 days after a multiple of 7 days.
                let days = start / 86_400.0;
                assert_eq!((days - 4.0).rem_euclid(7.0), 0.0, "weeks start on Monday: {read}");
                assert_eq!(end - start, 7.0 * 86_400.0, "{read}");
            }
            _ => {
                let start_text = rfc3339(std::time::UNIX_EPOCH + Duration::from_secs_f64(start));
                let end_text = rfc3339(std::time::UNIX_EPOCH + Duration::from_secs_f64(end));
                assert_eq!(&start_text[8..10], "01", "a month starts on the 1st: {read}");
                assert_eq!(&end_text[8..10], "01", "a month ends on the next 1st: {read}");
                let length_days = (end - start) / 86_400.0;
                assert!((28.0..=31.0).contains(&length_days), "{read}");
            }
        }
    }
}

#[tokio::test]
async fn usage_records_carry_their_actor_and_the_list_filters_by_member_and_key() {
    let app = common::spawn_app().await;
    let (account, _) = funded(&app).await;
    let (first, first_key) = spender(&app, &account).await;
    let (second, second_key) = spender(&app, &account).await;
    let unbound = account_key(&app, &account).await;

    let by_first = spend(&app, &first_key.secret, "smartcheck", 1).await;
    let by_second = spend(&app, &second_key.secret, "smartcheck", 1).await;
    let by_unbound = spend(&app, &unbound.secret, "smartcheck", 1).await;
    let by_operator_for_first = post(
        &app,
        "/v2/usage",
        ADMIN_KEY,
        &json!({"accountId": account, "service": "smartcheck", "memberId": first}),
    )
    .await;
    for answer in [&by_first, &by_second, &by_unbound, &by_operator_for_first] {
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    assert_eq!(by_first.json["actor"], json!({"memberId": first, "apiKeyId": first_key.id}));
    assert_eq!(by_second.json["actor"], json!({"memberId": second, "apiKeyId": second_key.id}));
    assert_eq!(by_unbound.json["actor"], json!({"memberId": null, "apiKeyId": unbound.id}));
    assert_eq!(by_operator_for_first.json["actor"]["memberId"], first.as_str());

    let ids = |items: &[Value]| -> Vec<String> { items.iter().map(|u| s(u, "id")).collect() };
    let of_first =
        list_all_as(&app, &format!("/v2/usage?accountId={account}&memberId={first}"), ADMIN_KEY)
            .await;
    assert_eq!(
        ids(&of_first),
        vec![s(&by_operator_for_first.json, "id"), s(&by_first.json, "id")],
        "newest first, only the first member's usage"
    );
    let of_first_key = list_all_as(
        &app,
        &format!("/v2/usage?accountId={account}&apiKeyId={}", first_key.id),
        ADMIN_KEY,
    )
    .await;
    assert_eq!(ids(&of_first_key), vec![s(&by_first.json, "id")]);
    let of_unbound =
        list_all_as(&app, &format!("/v2/usage?apiKeyId={}", unbound.id), &unbound.secret).await;
    assert_eq!(ids(&of_unbound), vec![s(&by_unbound.json, "id")]);
    let both = list_all_as(
        &app,
        &format!("/v2/usage?memberId={second}&apiKeyId={}", second_key.id),
        &first_key.secret,
    )
    .await;
    assert_eq!(ids(&both), vec![s(&by_second.json, "id")]);
    let none = list_all_as(
        &app,
        &format!("/v2/usage?memberId={second}&apiKeyId={}", first_key.id),
        ADMIN_KEY,
    )
    .await;
    assert!(none.is_empty(), "{none:?}");
    // The list shows the same actor as the create answer.
    for item in &of_first_key {
        assert_eq!(item["actor"], by_first.json["actor"]);
    }
    let all = list_all_as(&app, &format!("/v2/usage?accountId={account}"), ADMIN_KEY).await;
    assert_eq!(all.len(), 4);
}
