//! Goal: webhooks are delivered as SPEC section 8 and the README ("Events and webhooks") say:
//! the Standard Webhooks envelope, headers and `v1` signature; retries that keep the
//! `webhook-id` and are each listed under deliveries; `410 Gone` disabling the endpoint; private
//! URLs refused unless `CREDITS_WEBHOOK_ALLOW_PRIVATE=true`; the secret shown only at creation;
//! `GET /v2/events` filters; endpoint `events` subscriptions; manual redelivery.
//!
//! Method: black box. The real binary runs with private URLs allowed and the retry schedule
//! scaled by 0.01 (5 s, 30 s, 2 min become 50 ms, 300 ms, 1.2 s); a real HTTP receiver in the test
//! (`common/receiver.rs`) records every request and answers scripted statuses. Each signature is
//! checked with an HMAC written here from the SPEC text (not the service's signing code), and a
//! captured delivery also with Python's `standardwebhooks` package when it can be had.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/extra.rs"]
mod extra;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use common::{spawn_app, spawn_app_with_env, TestApp};
use extra::{assert_problem, key, now_secs, parse_rfc3339, post_fresh, s};
use receiver::{
    assert_envelope, assert_signed, create_endpoint, deliveries, deliveries_until, events,
    expected_signature, python_standardwebhooks, python_verify, signature_valid,
    signature_valid_for, Captured,
};

const WEBHOOK_ENV: [(&str, &str); 2] =
    [("CREDITS_WEBHOOK_ALLOW_PRIVATE", "true"), ("CREDITS_WEBHOOK_RETRY_SCALE", "0.01")];

async fn app() -> TestApp {
    spawn_app_with_env(&WEBHOOK_ENV).await
}

/// The deliveries of one event, sorted by attempt.
fn by_attempt(items: &[Value], event: &str) -> Vec<Value> {
    let mut found: Vec<Value> = items.iter().filter(|d| d["eventId"] == event).cloned().collect();
    found.sort_by_key(|d| d["attempt"].as_u64().unwrap());
    found
}

#[test]
fn the_independent_check_matches_the_standard_webhooks_test_vector() {
    // The published vector of the Standard Webhooks reference libraries.
    let signature = expected_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_has_the_envelope_the_headers_and_a_valid_signature() {
    let app = app().await;
    let hooks = receiver::start().await;
    let account = app.create_account().await;
    let (_, secret) =
        create_endpoint(&app, Some(&account), &hooks.url("/hook"), &["credit.created"]).await;
    let credit = app.purchase(&account, 500, json!({"service": "api"})).await;

    let request = hooks.wait_type(1, "credit.created").await.remove(0);
    assert_eq!(request.path, "/hook");
    assert!(
        request.header("content-type").starts_with("application/json"),
        "content-type {:?}",
        request.header("content-type")
    );
    let body = assert_envelope(&request, "credit.created", &account);
    assert_eq!(body["data"], credit, "data is the created credit record");
    assert_signed(&secret, &request);
    let timestamp: f64 = request.header("webhook-timestamp").parse().unwrap();
    assert!((timestamp - now_secs()).abs() < 60.0, "webhook-timestamp {timestamp} is not recent");
    assert!(
        !signature_valid_for(&secret, &request, &[&request.body[..], b" "].concat()),
        "the independent check must refuse a changed body"
    );

    // The delivered event is the listed one.
    let listed = events(&app, &format!("type=credit.created&accountId={account}")).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0], body, "GET /v2/events shows what was delivered");
    let created = parse_rfc3339(body["createdAt"].as_str().unwrap());
    assert!((created - now_secs()).abs() < 60.0, "createdAt {created}");

    // A foreign implementation: Python's standardwebhooks.
    if let Some(python) = python_standardwebhooks() {
        let payload = python_verify(python, &secret, &request, &request.body)
            .unwrap_or_else(|e| panic!("standardwebhooks refuses the delivery: {e}"));
        assert_eq!(payload, body);
        let tampered = request.body_text().replace("\"amount\":500", "\"amount\":501");
        assert_ne!(tampered.as_bytes(), &request.body[..]);
        assert!(
            python_verify(python, &secret, &request, tampered.as_bytes()).is_err(),
            "standardwebhooks must refuse a tampered body"
        );
        let other_secret =
            format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
        assert!(
            python_verify(python, &other_secret, &request, &request.body).is_err(),
            "standardwebhooks must refuse another secret"
        );
        eprintln!("Python standardwebhooks verified the delivery and refused the forgeries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt_with_the_same_id() {
    let app = app().await;
    let hooks = receiver::start().await;
    hooks.script(&[500, 500, 500]);
    let account = app.create_account().await;
    let (endpoint, secret) =
        create_endpoint(&app, Some(&account), &hooks.url("/flaky"), &["credit.created"]).await;
    app.purchase(&account, 100, json!({})).await;

    let requests = hooks.wait_for(4, Duration::from_secs(10), |_| true).await;
    let answered: Vec<u16> = requests.iter().map(|r| r.answered).collect();
    assert_eq!(answered, vec![500, 500, 500, 200]);
    let event = requests[0].webhook_id().to_string();
    for request in &requests {
        assert_eq!(request.webhook_id(), event, "retries keep the webhook-id");
        assert_envelope(request, "credit.created", &account);
        assert_signed(&secret, request);
        assert_eq!(request.body, requests[0].body, "retries send the same body");
    }
    // The schedule backs off: the third delay is 2 min × 0.01 = 1.2 s (±10 % jitter).
    let last_gap = requests[3].at.duration_since(requests[2].at);
    assert!(last_gap >= Duration::from_millis(1000), "third retry came after only {last_gap:?}");

    let listed = deliveries_until(&app, &endpoint, |items| {
        by_attempt(items, &event).iter().any(|d| d["status"] == "succeeded")
    })
    .await;
    let attempts = by_attempt(&listed, &event);
    assert_eq!(attempts.len(), 4, "one delivery item per attempt: {attempts:#?}");
    for (index, failed) in attempts[..3].iter().enumerate() {
        assert_eq!(failed["attempt"], index + 1, "{failed}");
        assert_eq!(failed["status"], "failed", "{failed}");
        assert_eq!(failed["responseCode"], 500, "{failed}");
        let next = failed["nextAttemptAt"].as_str();
        assert!(next.is_some(), "a failed attempt with a retry left has nextAttemptAt: {failed}");
        assert!(parse_rfc3339(next.unwrap()) >= parse_rfc3339(&s(failed, "createdAt")), "{failed}");
        assert!(failed["durationMs"].is_u64(), "{failed}");
    }
    let succeeded = &attempts[3];
    assert_eq!(succeeded["attempt"], 4, "{succeeded}");
    assert_eq!(succeeded["status"], "succeeded", "{succeeded}");
    assert_eq!(succeeded["responseCode"], 200, "{succeeded}");
    assert_eq!(succeeded["nextAttemptAt"], Value::Null, "{succeeded}");
    // Nothing more is sent once it succeeded.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hooks.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint() {
    let app = app().await;
    let hooks = receiver::start().await;
    hooks.set_default(410);
    let account = app.create_account().await;
    let (endpoint, _) = create_endpoint(&app, Some(&account), &hooks.url("/gone"), &["*"]).await;
    app.purchase(&account, 100, json!({})).await;

    let first = hooks.wait_for(1, Duration::from_secs(10), |_| true).await.remove(0);
    assert_eq!(first.answered, 410);
    let listed =
        deliveries_until(&app, &endpoint, |items| items.iter().any(|d| d["status"] != "pending"))
            .await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["status"], "failed", "{listed:#?}");
    assert_eq!(listed[0]["responseCode"], 410, "{listed:#?}");
    assert_eq!(listed[0]["nextAttemptAt"], Value::Null, "410 schedules no retry: {listed:#?}");

    let endpoints = app.get("/v2/webhook-endpoints?limit=100").await;
    assert_eq!(endpoints.status, 200, "{endpoints:?}");
    let shown = endpoints.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == endpoint.as_str())
        .cloned()
        .unwrap();
    assert!(shown["disabledAt"].is_string(), "410 sets disabledAt: {shown}");

    // Longer than the first three retries would take (50 ms, 300 ms, 1.2 s, plus polling), and
    // a new event for the account: nothing more reaches the receiver.
    let second = app.purchase(&account, 50, json!({})).await;
    let usage = app.use_credits(&account, "api", 1).await;
    assert_eq!(usage.status, 201, "{usage:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        hooks.requests().len(),
        1,
        "a disabled endpoint gets no more attempts (second credit {})",
        second["id"]
    );
    let listed = deliveries(&app, &endpoint).await;
    assert!(
        listed.iter().all(|d| d["status"] != "pending" && d["nextAttemptAt"].is_null()),
        "nothing is pending for a disabled endpoint: {listed:#?}"
    );
    assert!(
        !listed.iter().any(|d| d["status"] == "succeeded"),
        "nothing was delivered after the 410: {listed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_and_private_urls_are_refused_unless_private_addresses_are_allowed() {
    let strict = spawn_app().await;
    let hooks = receiver::start().await;
    let loopback = hooks.url("/hook");
    for url in [
        loopback.as_str(),
        "https://127.0.0.1/hook",
        "https://127.0.0.1:8443/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
    ] {
        let answer =
            strict.post("/v2/webhook-endpoints", &json!({"url": url, "events": ["*"]})).await;
        assert_problem(&answer, 422, "validation_failed");
        assert!(
            answer.json.get("secret").is_none(),
            "a refused create shows no secret: {answer:?}"
        );
    }
    // The refusal is about the address: a public https URL is accepted by the same service.
    let public = strict
        .post(
            "/v2/webhook-endpoints",
            &json!({"url": "https://hooks.example.com/in", "events": ["*"]}),
        )
        .await;
    assert_eq!(public.status, 201, "{public:?}");
    let listed = strict.get("/v2/webhook-endpoints?limit=100").await;
    assert_eq!(listed.json["data"].as_array().unwrap().len(), 1, "{listed:?}");

    let lenient = app().await;
    let allowed =
        lenient.post("/v2/webhook-endpoints", &json!({"url": loopback, "events": ["*"]})).await;
    assert_eq!(allowed.status, 201, "CREDITS_WEBHOOK_ALLOW_PRIVATE=true allows it: {allowed:?}");
    assert_eq!(allowed.json["url"], loopback.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_is_only_in_the_create_answer() {
    let app = app().await;
    let hooks = receiver::start().await;
    let account = app.create_account().await;
    let body = json!({"accountId": account, "url": hooks.url("/s"), "events": ["credit.created"]});
    let idempotency = key();
    let created = app.post_idempotent("/v2/webhook-endpoints", &idempotency, &body).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = s(&created.json, "id");
    assert!(id.starts_with("whe_"), "{id}");
    let secret = s(&created.json, "secret");
    let raw = receiver::secret_key(&secret);
    assert_eq!(raw.len(), 32, "whsec_ + base64 of 32 random bytes: {secret}");
    let encoded = secret.strip_prefix("whsec_").unwrap();

    let replay = app.post_idempotent("/v2/webhook-endpoints", &idempotency, &body).await;
    assert_eq!(replay.status, 201, "{replay:?}");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"), "{replay:?}");
    assert_eq!(replay.json["id"], id.as_str());
    assert!(replay.json.get("secret").is_none(), "a replay has no secret: {replay:?}");
    assert!(!replay.text.contains(encoded), "{replay:?}");

    let listed = app.get("/v2/webhook-endpoints?limit=100").await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let items = listed.json["data"].as_array().unwrap();
    let shown = items.iter().find(|e| e["id"] == id.as_str()).unwrap();
    assert!(shown.get("secret").is_none(), "the list shows no secret: {shown}");
    assert!(!listed.text.contains(encoded), "the list text holds the secret: {listed:?}");
    assert_eq!(shown["url"], hooks.url("/s").as_str());
    assert_eq!(shown["accountId"], account.as_str());
    assert_eq!(shown["events"], json!(["credit.created"]));
    let per_account = app.get(&format!("/v2/webhook-endpoints?accountId={account}")).await;
    assert_eq!(per_account.status, 200, "{per_account:?}");
    assert!(!per_account.text.contains(encoded), "{per_account:?}");

    // The stored secret still signs: a delivery verifies with the one shown at creation.
    app.purchase(&account, 10, json!({})).await;
    let request = hooks.wait_type(1, "credit.created").await.remove(0);
    assert_signed(&secret, &request);
    let attempts = deliveries(&app, &id).await;
    assert!(!serde_json::to_string(&attempts).unwrap().contains(encoded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_and_filtered_by_type_and_account() {
    let app = app().await;
    let a = app.create_account().await;
    let b = app.create_account().await;
    let credit_a = app.purchase(&a, 100, json!({})).await;
    let credit_b = app.purchase(&b, 200, json!({})).await;
    let voided =
        post_fresh(&app, &format!("/v2/credits/{}/void", s(&credit_a, "id")), &json!({})).await;
    assert_eq!(voided.status, 200, "{voided:?}");

    let all = events(&app, "").await;
    for event in &all {
        let mut keys: Vec<&str> = event.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["accountId", "createdAt", "data", "id", "type"], "{event}");
        assert!(s(event, "id").starts_with("evt_"), "{event}");
    }
    let ids: BTreeSet<String> = all.iter().map(|e| s(e, "id")).collect();
    assert_eq!(ids.len(), all.len(), "event ids are unique");

    let created = events(&app, "type=credit.created").await;
    assert!(created.iter().all(|e| e["type"] == "credit.created"), "{created:#?}");
    let created_ids: BTreeSet<String> = created.iter().map(|e| s(&e["data"], "id")).collect();
    assert_eq!(created_ids, BTreeSet::from([s(&credit_a, "id"), s(&credit_b, "id")]));

    let of_a = events(&app, &format!("accountId={a}")).await;
    assert!(of_a.iter().all(|e| e["accountId"] == a.as_str()), "{of_a:#?}");
    let types_a: BTreeSet<String> = of_a.iter().map(|e| s(e, "type")).collect();
    assert!(types_a.contains("credit.created") && types_a.contains("credit.voided"), "{types_a:?}");
    let of_b = events(&app, &format!("accountId={b}")).await;
    assert!(of_b.iter().all(|e| e["accountId"] == b.as_str()), "{of_b:#?}");
    assert_eq!(of_a.len() + of_b.len(), all.len(), "every event belongs to a or b");

    let void_a = events(&app, &format!("type=credit.voided&accountId={a}")).await;
    assert_eq!(void_a.len(), 1, "{void_a:#?}");
    assert_eq!(void_a[0]["data"]["id"], credit_a["id"]);
    assert_eq!(void_a[0]["data"]["status"], "voided");
    assert_eq!(void_a[0]["data"]["voidedAmount"], 100);
    let void_b = events(&app, &format!("type=credit.voided&accountId={b}")).await;
    assert!(void_b.is_empty(), "{void_b:#?}");
    // Newest first.
    let times: Vec<f64> = all.iter().map(|e| parse_rfc3339(&s(e, "createdAt"))).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{all:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_gets_only_the_event_types_and_account_it_subscribed_to() {
    let app = app().await;
    let hooks = receiver::start().await;
    let account = app.create_account().await;
    let other = app.create_account().await;
    let (voids, voids_secret) =
        create_endpoint(&app, Some(&account), &hooks.url("/voided"), &["credit.voided"]).await;
    let (_, _) = create_endpoint(&app, Some(&account), &hooks.url("/all"), &["*"]).await;
    let (others, _) = create_endpoint(&app, Some(&other), &hooks.url("/other"), &["*"]).await;

    let credit = app.purchase(&account, 100, json!({})).await;
    // The subscribed-to-all endpoint got the purchase; give the others time to get it too.
    hooks.wait_for(1, Duration::from_secs(10), |r| r.path == "/all").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        hooks.on_path("/voided").is_empty(),
        "an endpoint subscribed only to credit.voided got: {:#?}",
        hooks.on_path("/voided")
    );
    assert!(deliveries(&app, &voids).await.is_empty(), "no delivery for an unsubscribed type");

    let voided =
        post_fresh(&app, &format!("/v2/credits/{}/void", s(&credit, "id")), &json!({})).await;
    assert_eq!(voided.status, 200, "{voided:?}");
    let got = hooks.wait_for(1, Duration::from_secs(10), |r| r.path == "/voided").await.remove(0);
    let body = assert_envelope(&got, "credit.voided", &account);
    assert_eq!(body["data"]["id"], credit["id"]);
    assert_signed(&voids_secret, &got);
    hooks.wait_for(2, Duration::from_secs(10), |r| r.path == "/all").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let voided_path: Vec<String> =
        hooks.on_path("/voided").iter().map(Captured::event_type).collect();
    assert_eq!(voided_path, vec!["credit.voided"]);
    assert!(hooks.on_path("/other").is_empty(), "another account's endpoint got events");
    assert!(deliveries(&app, &others).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_redelivery_is_a_new_attempt_with_the_same_webhook_id() {
    let app = app().await;
    let hooks = receiver::start().await;
    let account = app.create_account().await;
    let (endpoint, secret) =
        create_endpoint(&app, Some(&account), &hooks.url("/again"), &["credit.created"]).await;
    app.purchase(&account, 100, json!({})).await;
    let first = hooks.wait_type(1, "credit.created").await.remove(0);
    let event = first.webhook_id().to_string();
    deliveries_until(&app, &endpoint, |items| items.iter().any(|d| d["status"] == "succeeded"))
        .await;

    let redeliver = format!("/v2/webhook-endpoints/{endpoint}/redeliver");
    let answer = app.post(&redeliver, &json!({"eventId": event})).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.json["eventId"], event.as_str(), "{answer:?}");
    assert_eq!(answer.json["attempt"], 2, "{answer:?}");
    assert!(s(&answer.json, "id").starts_with("dlv_"), "{answer:?}");

    let both = hooks.wait_for(2, Duration::from_secs(10), |_| true).await;
    let again = &both[1];
    assert_eq!(again.webhook_id(), event, "a redelivery keeps the webhook-id");
    assert_eq!(again.body, first.body, "a redelivery sends the same event");
    assert_signed(&secret, again);
    assert!(signature_valid(&secret, &first));

    let listed = deliveries_until(&app, &endpoint, |items| {
        by_attempt(items, &event).iter().filter(|d| d["status"] == "succeeded").count() == 2
    })
    .await;
    let attempts = by_attempt(&listed, &event);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[1]["id"], answer.json["id"], "{attempts:#?}");
    assert_eq!(attempts[1]["responseCode"], 200);

    let unknown = app.post(&redeliver, &json!({"eventId": "evt_nope"})).await;
    assert_problem(&unknown, 404, "not_found");
}
