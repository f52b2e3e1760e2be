//! Goal: each derived event of SPEC section 8 and the README ("Which change fires what") reaches
//! a real receiver with its type, account and data: `balance.low` (once per crossing, re-armed
//! when a purchase lifts the balance), `credit.expired`, `credit.expiring_soon`,
//! `credit.depleted`, `budget.threshold_reached` (one event per threshold), `reservation.expired`
//! and `topup.requested`.
//!
//! Method: black box. The real binary runs with private URLs allowed and the expiry sweep every
//! 200 ms; an account-scoped endpoint subscribed to only the event under test points at a
//! receiver in the test (`common/receiver.rs`). Each test causes the change through the public
//! API, polls the receiver (up to 10 s) for the delivery, checks envelope, signature (independent
//! HMAC) and data shape, then waits a little longer to check the event was not sent again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/extra.rs"]
mod extra;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use common::{spawn_app_with_env, TestApp};
use extra::{hold, in_seconds, now_secs, parse_rfc3339, post_fresh, s};
use receiver::{assert_envelope, assert_signed, create_endpoint, events, Receiver};

/// Long enough for several sweeps (200 ms) and dispatcher polls (250 ms).
const SETTLE: Duration = Duration::from_millis(1200);

struct Setup {
    app: TestApp,
    hooks: Receiver,
    account: String,
    secret: String,
}

/// A service with webhooks to loopback and a fast sweep, an account made with `account` as its
/// body, and an endpoint of that account subscribed to `event_type` only.
async fn setup(event_type: &str, account: Value) -> Setup {
    let app = spawn_app_with_env(&[
        ("CREDITS_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("CREDITS_WEBHOOK_RETRY_SCALE", "0.01"),
        ("CREDITS_SWEEP_INTERVAL_MS", "200"),
    ])
    .await;
    let hooks = receiver::start().await;
    let created = app.post("/v2/accounts", &account).await;
    assert_eq!(created.status, 201, "{created:?}");
    let account = s(&created.json, "id");
    let (_, secret) =
        create_endpoint(&app, Some(&account), &hooks.url("/events"), &[event_type]).await;
    Setup { app, hooks, account, secret }
}

impl Setup {
    /// Waits for `count` deliveries of `event_type`, checks each one's envelope and signature,
    /// and returns their bodies, oldest first.
    async fn delivered(&self, count: usize, event_type: &str) -> Vec<Value> {
        let requests = self.hooks.wait_type(count, event_type).await;
        requests
            .iter()
            .map(|request| {
                assert_signed(&self.secret, request);
                assert_envelope(request, event_type, &self.account)
            })
            .collect()
    }

    /// The distinct events (by webhook-id) of this type received so far, oldest first.
    fn received(&self, event_type: &str) -> Vec<Value> {
        let mut seen = BTreeSet::new();
        self.hooks
            .requests()
            .iter()
            .filter(|r| r.event_type() == event_type && seen.insert(r.webhook_id().to_string()))
            .map(receiver::Captured::json)
            .collect()
    }

    async fn spend(&self, quantity: u64) {
        let answer = self.app.use_credits(&self.account, "api", quantity).await;
        assert_eq!(answer.status, 201, "spending {quantity}: {answer:?}");
    }
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_low_fires_once_per_crossing_and_rearms_after_a_purchase() {
    let t = setup("balance.low", json!({"name": "Low", "lowBalanceThreshold": 100})).await;
    t.app.purchase(&t.account, 300, json!({})).await;
    t.spend(150).await; // 150 left: above the threshold
    tokio::time::sleep(SETTLE).await;
    assert!(t.received("balance.low").is_empty(), "150 > 100 is not low");

    t.spend(60).await; // 90 left: crosses
    let first = t.delivered(1, "balance.low").await.remove(0);
    assert_eq!(keys(&first["data"]), ["accountId", "autoTopUp", "available", "threshold"]);
    assert_eq!(first["data"]["accountId"], t.account.as_str());
    assert_eq!(first["data"]["available"], 90);
    assert_eq!(first["data"]["threshold"], 100);
    assert_eq!(first["data"]["autoTopUp"], Value::Null);

    t.spend(10).await; // 80 left: still below, no new crossing
    t.spend(80).await; // 0 left
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("balance.low").len(), 1, "once per crossing, not on every change");

    t.app.purchase(&t.account, 200, json!({})).await; // 200: above again, re-armed
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("balance.low").len(), 1, "rising above fires nothing");
    t.spend(130).await; // 70 left: crosses again
    let both = t.delivered(2, "balance.low").await;
    let second = both.iter().find(|e| e["id"] != first["id"]).unwrap();
    assert_eq!(second["data"]["available"], 70);
    assert_eq!(second["data"]["threshold"], 100);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("balance.low").len(), 2);
    let listed = events(&t.app, &format!("type=balance.low&accountId={}", t.account)).await;
    assert_eq!(listed.len(), 2, "{listed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_expired_is_delivered_after_its_instant() {
    let t = setup("credit.expired", json!({"name": "Expiring"})).await;
    let expires_at = in_seconds(2);
    let credit = t.app.purchase(&t.account, 40, json!({"expiresAt": expires_at})).await;
    t.spend(15).await;

    let event = t.delivered(1, "credit.expired").await.remove(0);
    let arrived = now_secs();
    let data = &event["data"];
    assert_eq!(data["id"], credit["id"]);
    assert_eq!(data["accountId"], t.account.as_str());
    assert_eq!(data["status"], "expired");
    assert_eq!(data["remaining"], 0);
    assert_eq!(data["used"], 15);
    assert_eq!(data["expiredAmount"], 25);
    assert_eq!(data["amount"], 40);
    let instant = parse_rfc3339(&s(&credit, "expiresAt"));
    assert!(parse_rfc3339(&s(&event, "createdAt")) >= instant - 0.001, "{event}");
    assert!(arrived - instant < 10.0, "expiry events come within seconds with a 200 ms sweep");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("credit.expired").len(), 1, "one credit.expired per record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_expiring_soon_fires_once_for_a_record_within_expiring_soon_days() {
    let t = setup("credit.expiring_soon", json!({"name": "Soon", "expiringSoonDays": 3})).await;
    let soon = t.app.purchase(&t.account, 70, json!({"expiresAt": in_seconds(2 * 86_400)})).await;
    let later = t.app.purchase(&t.account, 80, json!({"expiresAt": in_seconds(10 * 86_400)})).await;
    let never = t.app.purchase(&t.account, 90, json!({})).await;

    let event = t.delivered(1, "credit.expiring_soon").await.remove(0);
    let data = &event["data"];
    assert_eq!(data["id"], soon["id"], "{event}");
    assert_eq!(data["accountId"], t.account.as_str());
    assert_eq!(data["status"], "active");
    assert_eq!(data["remaining"], 70);
    assert_eq!(data["expiresAt"], soon["expiresAt"]);
    tokio::time::sleep(SETTLE).await;
    let received = t.received("credit.expiring_soon");
    assert_eq!(
        received.len(),
        1,
        "once per record, and not for {} (10 days) nor {} (never): {received:#?}",
        later["id"],
        never["id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_depleted_fires_when_nothing_is_left() {
    let t = setup("credit.depleted", json!({"name": "Depleting"})).await;
    let credit = t.app.purchase(&t.account, 50, json!({"service": "api"})).await;
    t.spend(30).await;
    tokio::time::sleep(SETTLE).await;
    assert!(t.received("credit.depleted").is_empty(), "20 left is not depleted");
    t.spend(20).await;

    let event = t.delivered(1, "credit.depleted").await.remove(0);
    let data = &event["data"];
    assert_eq!(data["id"], credit["id"]);
    assert_eq!(data["accountId"], t.account.as_str());
    assert_eq!(data["status"], "depleted");
    assert_eq!(data["remaining"], 0);
    assert_eq!(data["reserved"], 0);
    assert_eq!(data["used"], 50);
    assert_eq!(data["service"], "api");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("credit.depleted").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_threshold_reached_fires_once_per_threshold() {
    let t = setup("budget.threshold_reached", json!({"name": "Budgeted"})).await;
    t.app.purchase(&t.account, 1000, json!({})).await;
    let budget = post_fresh(
        &t.app,
        "/v2/budgets",
        &json!({"accountId": t.account, "name": "monthly", "scope": {"type": "account"},
                "period": "month", "limit": 100, "thresholds": [50, 100]}),
    )
    .await;
    assert_eq!(budget.status, 201, "{budget:?}");
    let budget_id = s(&budget.json, "id");

    t.spend(30).await; // 30 %
    tokio::time::sleep(SETTLE).await;
    assert!(t.received("budget.threshold_reached").is_empty(), "30 % reaches no threshold");
    t.spend(25).await; // 55 %: crosses 50
    let first = t.delivered(1, "budget.threshold_reached").await.remove(0);
    assert_eq!(first["data"]["threshold"], 50, "{first}");
    assert_eq!(first["data"]["spent"], 55, "{first}");
    assert_eq!(first["data"]["budget"]["id"], budget_id.as_str(), "{first}");
    assert_eq!(first["data"]["budget"]["limit"], 100, "{first}");
    t.spend(10).await; // 65 %: no threshold
    t.spend(35).await; // 100 %: crosses 100

    let both = t.delivered(2, "budget.threshold_reached").await;
    let second = both.iter().find(|e| e["id"] != first["id"]).unwrap();
    assert_eq!(second["data"]["threshold"], 100, "{second}");
    assert_eq!(second["data"]["spent"], 100, "{second}");
    assert_eq!(second["data"]["budget"]["id"], budget_id.as_str());
    assert_eq!(keys(&second["data"]), ["budget", "spent", "threshold"]);
    tokio::time::sleep(SETTLE).await;
    let thresholds: Vec<Value> = t
        .received("budget.threshold_reached")
        .iter()
        .map(|e| e["data"]["threshold"].clone())
        .collect();
    assert_eq!(thresholds, vec![json!(50), json!(100)], "one event per threshold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_expired_fires_when_a_hold_runs_out() {
    let t = setup("reservation.expired", json!({"name": "Holding"})).await;
    t.app.purchase(&t.account, 100, json!({})).await;
    let held = hold(&t.app, &t.account, "api", 30, json!({"ttlSeconds": 1})).await;
    assert_eq!(held.status, 201, "{held:?}");

    let event = t.delivered(1, "reservation.expired").await.remove(0);
    let data = &event["data"];
    assert_eq!(data["id"], held.json["id"]);
    assert_eq!(data["accountId"], t.account.as_str());
    assert_eq!(data["status"], "expired");
    assert_eq!(data["credits"], 30);
    assert_eq!(data["captured"], 0);
    assert_eq!(data["service"], "api");
    assert!(
        parse_rfc3339(&s(&event, "createdAt"))
            >= parse_rfc3339(&s(&held.json, "expiresAt")) - 0.001,
        "{event}"
    );
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("reservation.expired").len(), 1);
    assert_eq!(t.app.balance(&t.account).await["available"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topup_requested_fires_when_available_falls_below_the_auto_top_up_threshold() {
    let top_up = json!({"threshold": 100, "amount": 500, "service": "api"});
    let t = setup("topup.requested", json!({"name": "TopUp", "autoTopUp": top_up})).await;
    t.app.purchase(&t.account, 300, json!({})).await;
    t.spend(200).await; // 100 left: not below 100
    tokio::time::sleep(SETTLE).await;
    assert!(t.received("topup.requested").is_empty(), "100 is not below a threshold of 100");
    t.spend(50).await; // 50 left

    let event = t.delivered(1, "topup.requested").await.remove(0);
    let data = &event["data"];
    assert_eq!(keys(data), ["accountId", "autoTopUp", "available", "threshold"]);
    assert_eq!(data["accountId"], t.account.as_str());
    assert_eq!(data["available"], 50);
    assert_eq!(data["threshold"], 100);
    assert_eq!(data["autoTopUp"], top_up);
    t.spend(10).await; // still below: no new crossing
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("topup.requested").len(), 1, "once per crossing");

    // The billing system answers with a purchase carrying its payment reference.
    let paid = t
        .app
        .purchase(&t.account, 500, json!({"service": "api", "reference": "pay_topup_1"}))
        .await;
    assert_eq!(paid["reference"], "pay_topup_1");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(t.received("topup.requested").len(), 1, "rising above fires nothing");
    t.spend(450).await; // 90 left: below again, re-armed by the purchase
    let both = t.delivered(2, "topup.requested").await;
    let second = both.iter().find(|e| e["id"] != event["id"]).unwrap();
    assert_eq!(second["data"]["available"], 90, "{second}");
    assert_eq!(second["data"]["autoTopUp"], top_up);
}
