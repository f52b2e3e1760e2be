//! Goal: every endpoint of SPEC section 4 that exists answers with the exact shapes of sections 4
//! and 5: accounts, services, credits, balance, usage (single, batch, list), the ledger as JSON
//! and as CSV, `/openapi.json`, `/docs`, `/healthz` and `/readyz`.
//!
//! Method: black box. Each test starts the real binary with a fresh data directory and talks to
//! it over HTTP as the operator (admin key), asserting status codes, field names, values and
//! headers against the SPEC only, never against the implementation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/extra.rs"]
mod extra;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use extra::{
    assert_equation, assert_problem, get_as, in_seconds, key, ledger_all, parse_rfc3339, s, usage,
};

fn assert_list_shape(answer: &common::Answer) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.json["data"].is_array(), "{answer:?}");
    assert!(answer.json["hasMore"].is_boolean(), "{answer:?}");
    assert!(
        answer.json["nextCursor"].is_null() || answer.json["nextCursor"].is_string(),
        "{answer:?}"
    );
}

fn assert_timestamp(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("{value} is not a timestamp"));
    parse_rfc3339(text);
}

#[tokio::test]
async fn accounts_create_read_list_patch() {
    let app = common::spawn_app().await;

    let created = app
        .post(
            "/v2/accounts",
            &json!({"name": "Acme", "externalId": "cus_42", "lowBalanceThreshold": 100}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let account = created.json.clone();
    let id = s(&account, "id");
    assert!(id.starts_with("acct_"), "{account}");
    assert_eq!(account["name"], "Acme");
    assert_eq!(account["externalId"], "cus_42");
    assert_eq!(account["lowBalanceThreshold"], 100);
    assert_eq!(account["expiringSoonDays"], 7, "default 7: {account}");
    assert!(account["autoTopUp"].is_null(), "{account}");
    assert_timestamp(&account["createdAt"]);
    assert_timestamp(&account["updatedAt"]);

    let read = app.get(&format!("/v2/accounts/{id}")).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json, account);

    let other = app.create_account().await;
    let list = app.get("/v2/accounts").await;
    assert_list_shape(&list);
    let ids: Vec<String> =
        list.json["data"].as_array().unwrap().iter().map(|a| s(a, "id")).collect();
    assert_eq!(ids, vec![other.clone(), id.clone()], "newest first");
    assert_eq!(list.json["hasMore"], false);
    assert!(list.json["nextCursor"].is_null());

    let patched = app
        .patch(
            &format!("/v2/accounts/{id}"),
            &json!({
                "name": "Acme Corp",
                "expiringSoonDays": 14,
                "autoTopUp": {"threshold": 50, "amount": 500, "service": "any"}
            }),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.json["name"], "Acme Corp");
    assert_eq!(patched.json["externalId"], "cus_42", "untouched fields stay");
    assert_eq!(patched.json["expiringSoonDays"], 14);
    assert_eq!(
        patched.json["autoTopUp"],
        json!({"threshold": 50, "amount": 500, "service": "any"})
    );

    let cleared = app
        .patch(
            &format!("/v2/accounts/{id}"),
            &json!({"autoTopUp": null, "lowBalanceThreshold": null}),
        )
        .await;
    assert_eq!(cleared.status, 200, "{cleared:?}");
    assert!(cleared.json["autoTopUp"].is_null(), "{cleared:?}");
    assert!(cleared.json["lowBalanceThreshold"].is_null(), "{cleared:?}");
    let read = app.get(&format!("/v2/accounts/{id}")).await;
    assert_eq!(read.json, cleared.json, "a read shows the patch");

    let missing = app.get("/v2/accounts/acct_doesnotexist").await;
    assert_problem(&missing, 404, "not_found");
    let missing = app.patch("/v2/accounts/acct_doesnotexist", &json!({"name": "x"})).await;
    assert_problem(&missing, 404, "not_found");
}

#[tokio::test]
async fn services_are_seeded_and_priced() {
    let app = common::spawn_app().await;
    let list = app.get("/v2/services").await;
    assert_list_shape(&list);
    let seeded: BTreeMap<String, Value> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|svc| (s(svc, "id"), svc.clone()))
        .collect();
    for id in ["smartcheck", "smartaccess", "smartenroll", "api", "biometric"] {
        let svc = seeded.get(id).unwrap_or_else(|| panic!("{id} is not seeded: {list:?}"));
        assert_eq!(svc["unitCost"], 1, "{svc}");
        assert!(svc["name"].is_string(), "{svc}");
        assert!(svc["operations"].is_object(), "{svc}");
    }

    let created = app
        .post(
            "/v2/services",
            &json!({"id": "ocr", "name": "OCR", "unitCost": 3, "operations": {"page": 5}}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json["id"], "ocr");
    assert_eq!(created.json["unitCost"], 3);
    assert_eq!(created.json["operations"], json!({"page": 5}));

    let account = app.create_account().await;
    app.purchase(&account, 1000, json!({"service": "any"})).await;
    let plain = usage(&app, &account, "ocr", json!({"quantity": 2})).await;
    assert_eq!(plain.status, 201, "{plain:?}");
    assert_eq!(plain.json["credits"], 6, "unitCost × quantity");
    let op = usage(&app, &account, "ocr", json!({"operation": "page", "quantity": 4})).await;
    assert_eq!(op.status, 201, "{op:?}");
    assert_eq!(op.json["credits"], 20, "operation cost × quantity");
    assert_eq!(op.json["operation"], "page");

    let patched = app.patch("/v2/services/ocr", &json!({"unitCost": 7})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.json["unitCost"], 7);
    let after = usage(&app, &account, "ocr", json!({})).await;
    assert_eq!(after.status, 201, "{after:?}");
    assert_eq!(after.json["credits"], 7, "the new unit cost applies");

    let list = app.get("/v2/services").await;
    let ocr = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|svc| svc["id"] == "ocr")
        .cloned()
        .expect("the new service is listed");
    assert_eq!(ocr["unitCost"], 7);

    let missing = app.patch("/v2/services/nosuchservice", &json!({"unitCost": 2})).await;
    assert_problem(&missing, 404, "not_found");
}

#[tokio::test]
async fn credit_record_shape_defaults_and_reads() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let expires = in_seconds(86_400);
    let record = app
        .purchase(
            &account,
            1000,
            json!({
                "service": "smartcheck",
                "description": "SmartCheck verification credits",
                "expiresAt": expires,
                "reference": "pay_1"
            }),
        )
        .await;
    let id = s(&record, "id");
    assert!(id.starts_with("credit_"), "{record}");
    assert_eq!(record["accountId"], account.as_str());
    assert_eq!(record["amount"], 1000);
    assert_eq!(record["used"], 0);
    assert_eq!(record["remaining"], 1000);
    assert_eq!(record["reserved"], 0);
    assert_eq!(record["expiredAmount"], 0);
    assert_eq!(record["voidedAmount"], 0);
    assert_eq!(record["service"], "smartcheck");
    assert_eq!(record["description"], "SmartCheck verification credits");
    assert_eq!(record["kind"], "purchase", "purchase is the default kind");
    assert_eq!(record["priority"], 0, "priority defaults to 0");
    assert_eq!(record["reference"], "pay_1");
    assert_eq!(record["status"], "active");
    let expires_read = record["expiresAt"].as_str().unwrap();
    assert!(
        (parse_rfc3339(expires_read) - parse_rfc3339(&expires)).abs() < 0.001,
        "{expires_read} vs {expires}"
    );
    assert_timestamp(&record["createdAt"]);
    assert_timestamp(&record["updatedAt"]);
    assert_equation(&record);
    let fields: BTreeSet<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
    for field in [
        "id",
        "accountId",
        "amount",
        "used",
        "remaining",
        "reserved",
        "expiredAmount",
        "voidedAmount",
        "expiresAt",
        "service",
        "description",
        "kind",
        "priority",
        "reference",
        "status",
        "createdAt",
        "updatedAt",
    ] {
        assert!(fields.contains(field), "{field} missing from {record}");
    }

    let read = app.credit(&id).await;
    assert_eq!(read, record, "a read equals the create answer");

    let grant =
        app.purchase(&account, 50, json!({"kind": "grant", "priority": 3, "service": "any"})).await;
    assert_eq!(grant["kind"], "grant");
    assert_eq!(grant["priority"], 3);
    assert_eq!(grant["service"], "any");
    assert!(grant["expiresAt"].is_null(), "never expires: {grant}");
    assert!(grant["reference"].is_null());

    let bad_kind =
        app.post("/v2/credits", &json!({"accountId": account, "amount": 5, "kind": "gift"})).await;
    assert_problem(&bad_kind, 422, "validation_failed");

    let unknown_account =
        app.post("/v2/credits", &json!({"accountId": "acct_nope", "amount": 5})).await;
    assert_problem(&unknown_account, 404, "not_found");

    let missing = app.get("/v2/credits/credit_nope").await;
    assert_problem(&missing, 404, "not_found");
}

#[tokio::test]
async fn credits_list_filters_by_service_and_status() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let a = app.purchase(&account, 10, json!({"service": "smartcheck"})).await;
    let b = app.purchase(&account, 10, json!({"service": "any"})).await;
    let c = app.purchase(&account, 10, json!({"service": "smartcheck"})).await;
    let voided =
        app.post_idempotent(&format!("/v2/credits/{}/void", s(&c, "id")), &key(), &json!({})).await;
    assert_eq!(voided.status, 200, "{voided:?}");
    let other = app.create_account().await;
    app.purchase(&other, 10, json!({"service": "smartcheck"})).await;

    let ids = |answer: &common::Answer| -> Vec<String> {
        answer.json["data"].as_array().unwrap().iter().map(|r| s(r, "id")).collect()
    };
    let all = app.get(&format!("/v2/credits?accountId={account}")).await;
    assert_list_shape(&all);
    assert_eq!(ids(&all), vec![s(&c, "id"), s(&b, "id"), s(&a, "id")]);

    let smartcheck = app.get(&format!("/v2/credits?accountId={account}&service=smartcheck")).await;
    assert_eq!(ids(&smartcheck), vec![s(&c, "id"), s(&a, "id")]);

    let any = app.get(&format!("/v2/credits?accountId={account}&service=any")).await;
    assert_eq!(ids(&any), vec![s(&b, "id")]);

    let active = app.get(&format!("/v2/credits?accountId={account}&status=active")).await;
    assert_eq!(ids(&active), vec![s(&b, "id"), s(&a, "id")]);

    let voided = app.get(&format!("/v2/credits?accountId={account}&status=voided")).await;
    assert_eq!(ids(&voided), vec![s(&c, "id")]);
    assert_eq!(voided.json["data"][0]["status"], "voided");

    let unknown = app.get("/v2/credits?accountId=acct_nope").await;
    assert_problem(&unknown, 404, "not_found");
}

#[tokio::test]
async fn balance_totals_by_service_and_next_expiry() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;

    let empty = app.balance(&account).await;
    assert_eq!(empty["accountId"], account.as_str());
    assert_eq!(empty["available"], 0);
    assert_eq!(empty["reserved"], 0);
    assert!(empty["nextExpiry"].is_null(), "{empty}");
    assert_timestamp(&empty["asOf"]);

    let soon = in_seconds(3600);
    let later = in_seconds(7200);
    let check =
        app.purchase(&account, 100, json!({"service": "smartcheck", "expiresAt": later})).await;
    let access =
        app.purchase(&account, 30, json!({"service": "smartaccess", "expiresAt": soon})).await;
    app.purchase(&account, 50, json!({"service": "any"})).await;

    let used = app.use_credits(&account, "smartaccess", 10).await;
    assert_eq!(used.status, 201, "{used:?}");
    let held = extra::hold(&app, &account, "smartcheck", 40, json!({})).await;
    assert_eq!(held.status, 201, "{held:?}");

    let balance = app.balance(&account).await;
    assert_eq!(balance["available"], 100 - 40 + 20 + 50, "{balance}");
    assert_eq!(balance["reserved"], 40, "{balance}");
    let by_service = balance["byService"].as_object().unwrap();
    assert_eq!(
        by_service.keys().cloned().collect::<Vec<_>>(),
        vec!["any", "smartaccess", "smartcheck"],
        "one entry per record service, any its own: {balance}"
    );
    assert_eq!(balance["byService"]["smartcheck"], json!({"available": 60, "reserved": 40}));
    assert_eq!(balance["byService"]["smartaccess"], json!({"available": 20, "reserved": 0}));
    assert_eq!(balance["byService"]["any"], json!({"available": 50, "reserved": 0}));
    let next = &balance["nextExpiry"];
    assert_eq!(next["creditId"], access["id"], "{balance}");
    assert_eq!(next["remaining"], 20, "{balance}");
    assert!(
        (parse_rfc3339(next["expiresAt"].as_str().unwrap()) - parse_rfc3339(&soon)).abs() < 0.001
    );
    let _ = check;

    let unknown = app.get("/v2/balance?accountId=acct_nope").await;
    assert_problem(&unknown, 404, "not_found");
    let no_account = app.get("/v2/balance").await;
    assert!(
        (400..500).contains(&no_account.status),
        "an operator must name the account: {no_account:?}"
    );
    extra::assert_problem_shape(&no_account);
}

/// On PostgreSQL a batch's last write travels as the text of a query (an `EXECUTE` with literal
/// arguments, sent with its `COMMIT`): whatever a client puts in metadata or a key must come back
/// as it was sent, and must not end the statement.
#[tokio::test]
async fn metadata_and_keys_with_quotes_and_backslashes_are_kept_as_sent() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let metadata = json!({
        "quote": "it's '' done",
        "backslash": "C:\\temp\\ and \\x41 and E'\\''",
        "dollar": "$$; COMMIT; $x$",
        "double": "say \"hi\"",
        "unicode": "żółć 🚀 \u{7f}",
    });
    let k = format!("o'k\\{}", key());
    let body = json!({"accountId": account, "service": "smartcheck", "metadata": metadata});
    let first = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.json["metadata"], metadata);
    let replay = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_eq!(replay.status, 201, "{replay:?}");
    assert_eq!(replay.text, first.text, "the key's stored answer, as sent");
    let listed = app.get(&format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.json["data"][0]["id"], first.json["id"], "{listed:?}");
    assert_eq!(listed.json["data"][0]["metadata"], metadata);
    assert_eq!(listed.json["data"].as_array().map(Vec::len), Some(1), "charged once");
}

#[tokio::test]
async fn usage_record_shape_replay_and_conflict() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let check = app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let any = app.purchase(&account, 50, json!({"service": "any"})).await;
    app.purchase(&account, 1000, json!({"service": "smartaccess"})).await;

    let body = json!({
        "accountId": account,
        "service": "smartcheck",
        "quantity": 3,
        "metadata": {"requestId": "r-1", "path": "/verify"}
    });
    let k = key();
    let first = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_eq!(first.status, 201, "{first:?}");
    let usage_record = first.json.clone();
    assert!(s(&usage_record, "id").starts_with("use_"), "{usage_record}");
    assert_eq!(usage_record["accountId"], account.as_str());
    assert_eq!(usage_record["service"], "smartcheck");
    assert!(usage_record["operation"].is_null());
    assert_eq!(usage_record["quantity"], 3);
    assert_eq!(usage_record["credits"], 3);
    assert_eq!(usage_record["allocations"], json!([{"creditId": check["id"], "credits": 3}]));
    let actor = usage_record["actor"].as_object().expect("actor object");
    assert!(actor.contains_key("memberId") && actor.contains_key("apiKeyId"));
    assert!(actor["memberId"].is_null());
    assert_eq!(usage_record["metadata"], json!({"requestId": "r-1", "path": "/verify"}));
    assert_eq!(usage_record["balanceAfter"], 97 + 50, "own records plus any, not smartaccess");
    assert_timestamp(&usage_record["createdAt"]);
    assert!(first.header("idempotent-replayed").is_none());

    let replay = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_eq!(replay.status, 201, "{replay:?}");
    assert_eq!(replay.text, first.text, "the replay is the first answer");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.credit(&s(&check, "id")).await["used"], 3, "charged once");

    let conflict = app
        .post_idempotent(
            "/v2/usage",
            &k,
            &json!({"accountId": account, "service": "smartcheck", "quantity": 4}),
        )
        .await;
    assert_problem(&conflict, 409, "idempotency_conflict");
    assert_eq!(app.credit(&s(&check, "id")).await["used"], 3);

    // Operators may set the cost and attribute the usage to a member of the account; a member
    // that is not the account's is not found.
    let member = app
        .post(
            "/v2/members",
            &json!({"accountId": account, "email": "ops@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(member.status, 201, "{member:?}");
    let member_id = s(&member.json, "id");
    let stranger = usage(&app, &account, "smartcheck", json!({"memberId": "mem_someone"})).await;
    assert_problem(&stranger, 404, "not_found");
    let explicit =
        usage(&app, &account, "smartcheck", json!({"credits": 120, "memberId": member_id})).await;
    assert_eq!(explicit.status, 201, "{explicit:?}");
    assert_eq!(explicit.json["credits"], 120);
    assert_eq!(explicit.json["actor"]["memberId"], member_id.as_str());
    let allocations: BTreeMap<String, u64> = explicit.json["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(a, "creditId"), a["credits"].as_u64().unwrap()))
        .collect();
    assert_eq!(allocations, BTreeMap::from([(s(&check, "id"), 97), (s(&any, "id"), 23)]));
    assert_eq!(explicit.json["balanceAfter"], 27);

    // The list: newest first, filterable by service and time.
    let other = usage(&app, &account, "smartaccess", json!({})).await;
    assert_eq!(other.status, 201, "{other:?}");
    let list = app.get(&format!("/v2/usage?accountId={account}")).await;
    assert_list_shape(&list);
    let ids: Vec<String> =
        list.json["data"].as_array().unwrap().iter().map(|u| s(u, "id")).collect();
    assert_eq!(ids, vec![s(&other.json, "id"), s(&explicit.json, "id"), s(&usage_record, "id")]);
    assert_eq!(list.json["data"][2], usage_record, "listed as created");

    let filtered = app.get(&format!("/v2/usage?accountId={account}&service=smartcheck")).await;
    assert_eq!(filtered.json["data"].as_array().unwrap().len(), 2);

    let from = s(&explicit.json, "createdAt");
    let to = s(&other.json, "createdAt");
    if from != to {
        let window = app.get(&format!("/v2/usage?accountId={account}&from={from}&to={to}")).await;
        assert_eq!(window.status, 200, "{window:?}");
        let ids: Vec<String> =
            window.json["data"].as_array().unwrap().iter().map(|u| s(u, "id")).collect();
        assert_eq!(ids, vec![s(&explicit.json, "id")], "from inclusive, to exclusive");
    }
    let bad_time = app.get(&format!("/v2/usage?accountId={account}&from=yesterday")).await;
    assert_problem(&bad_time, 400, "bad_request");
}

#[tokio::test]
async fn usage_batch_gives_each_event_its_own_result() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 10, json!({"service": "smartcheck"})).await;

    let single_key = key();
    let single_body = json!({"accountId": account, "service": "smartcheck", "quantity": 2});
    let single = app.post_idempotent("/v2/usage", &single_key, &single_body).await;
    assert_eq!(single.status, 201, "{single:?}");

    let (k1, k2, k3) = (key(), key(), key());
    let batch = json!({"events": [
        {"idempotencyKey": k1, "accountId": account, "service": "smartcheck", "quantity": 3},
        {"idempotencyKey": k2, "accountId": account, "service": "smartcheck", "quantity": 100},
        {"idempotencyKey": k3, "accountId": account, "service": "smartcheck", "bogus": 1},
        {"accountId": account, "service": "smartcheck"},
        {"idempotencyKey": single_key, "accountId": account, "service": "smartcheck", "quantity": 2},
        {"idempotencyKey": key(), "accountId": account, "service": "smartcheck", "quantity": 0}
    ]});
    let answer = app.post("/v2/usage/batch", &batch).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let results = answer.json["data"].as_array().expect("data array").clone();
    assert_eq!(results.len(), 6, "{answer:?}");

    assert_eq!(results[0]["idempotencyKey"], k1.as_str());
    assert_eq!(results[0]["status"], 201, "{}", results[0]);
    assert_eq!(results[0]["usage"]["credits"], 3);
    assert!(s(&results[0]["usage"], "id").starts_with("use_"));

    assert_eq!(results[1]["status"], 402, "{}", results[1]);
    assert_eq!(results[1]["error"]["code"], "insufficient_credits");
    assert!(results[1]["usage"].is_null());

    assert_eq!(results[2]["status"], 422, "{}", results[2]);
    assert_eq!(results[2]["error"]["code"], "validation_failed");
    assert!(
        results[2]["error"]["detail"].as_str().unwrap_or("").contains("bogus"),
        "names the field: {}",
        results[2]
    );

    assert_eq!(
        results[3]["status"], 400,
        "a missing idempotencyKey is the missing header of POST /v2/usage: {}",
        results[3]
    );
    assert_eq!(results[3]["error"]["code"], "bad_request");

    assert_eq!(results[4]["status"], 201, "{}", results[4]);
    assert_eq!(
        results[4]["usage"], single.json,
        "a key already used on POST /v2/usage replays its answer"
    );

    assert_eq!(results[5]["status"], 422, "{}", results[5]);
    assert_eq!(results[5]["error"]["code"], "validation_failed");

    let record_now = app.credit(&s(&record, "id")).await;
    assert_eq!(record_now["used"], 5, "2 + 3, nothing else: {record_now}");

    // The same batch again replays every event and charges nothing more.
    let again = app.post("/v2/usage/batch", &batch).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json["data"][0]["usage"], results[0]["usage"]);
    assert_eq!(again.json["data"][0]["status"], 201);
    assert_eq!(app.credit(&s(&record, "id")).await["used"], 5);

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"idempotencyKey": format!("many-{i}"), "accountId": account, "service": "smartcheck"}))
        .collect();
    let refused = app.post("/v2/usage/batch", &json!({"events": too_many})).await;
    assert!((400..500).contains(&refused.status), "more than 1000 events is refused: {refused:?}");
    extra::assert_problem_shape(&refused);
    assert_eq!(app.credit(&s(&record, "id")).await["used"], 5);
}

#[tokio::test]
async fn ledger_lists_every_change_and_filters() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let purchase = app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let grant = app.purchase(&account, 20, json!({"service": "any", "kind": "grant"})).await;
    let used = app.use_credits(&account, "smartcheck", 30).await;
    assert_eq!(used.status, 201, "{used:?}");
    let held = extra::hold(&app, &account, "smartcheck", 40, json!({})).await;
    assert_eq!(held.status, 201, "{held:?}");
    let hold_id = s(&held.json, "id");
    let captured = app
        .post_idempotent(
            &format!("/v2/reservations/{hold_id}/capture"),
            &key(),
            &json!({"credits": 25}),
        )
        .await;
    assert_eq!(captured.status, 200, "{captured:?}");
    let voided = app
        .post_idempotent(&format!("/v2/credits/{}/void", s(&grant, "id")), &key(), &json!({}))
        .await;
    assert_eq!(voided.status, 200, "{voided:?}");

    let entries = ledger_all(&app, &format!("accountId={account}")).await;
    let types: BTreeSet<String> = entries.iter().map(|e| s(e, "type")).collect();
    for t in ["purchase", "grant", "usage", "hold", "capture", "void"] {
        assert!(types.contains(t), "{t} missing from {entries:?}");
    }
    for entry in &entries {
        assert!(entry["id"].is_string(), "{entry}");
        assert_eq!(entry["accountId"], account.as_str());
        assert!(entry["credits"].as_u64().unwrap() > 0, "positive: {entry}");
        assert!(entry["remainingAfter"].is_u64(), "{entry}");
        let actor = entry["actor"].as_object().expect("actor");
        assert!(actor.contains_key("memberId") && actor.contains_key("apiKeyId"));
        assert!(entry.as_object().unwrap().contains_key("usageId"));
        assert!(entry.as_object().unwrap().contains_key("reservationId"));
        assert_timestamp(&entry["createdAt"]);
    }
    let times: Vec<f64> =
        entries.iter().map(|e| parse_rfc3339(e["createdAt"].as_str().unwrap())).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {entries:?}");
    let purchase_entry = entries.iter().find(|e| e["type"] == "purchase").unwrap();
    assert_eq!(purchase_entry["creditId"], purchase["id"]);
    assert_eq!(purchase_entry["credits"], 100);
    assert_eq!(purchase_entry["remainingAfter"], 100);
    let usage_entry = entries.iter().find(|e| e["type"] == "usage").unwrap();
    assert_eq!(usage_entry["usageId"], used.json["id"]);
    assert_eq!(usage_entry["credits"], 30);
    assert_eq!(usage_entry["remainingAfter"], 70);
    let hold_entry = entries.iter().find(|e| e["type"] == "hold").unwrap();
    assert_eq!(hold_entry["reservationId"], hold_id.as_str());
    assert_eq!(hold_entry["credits"], 40);
    assert_eq!(hold_entry["remainingAfter"], 30);
    let capture_entry = entries.iter().find(|e| e["type"] == "capture").unwrap();
    assert_eq!(capture_entry["reservationId"], hold_id.as_str());
    let void_entry = entries.iter().find(|e| e["type"] == "void").unwrap();
    assert_eq!(void_entry["creditId"], grant["id"]);
    assert_eq!(void_entry["credits"], 20);
    assert_eq!(void_entry["remainingAfter"], 0);

    // The newest entry of each record states its current remaining.
    for record in [&purchase, &grant] {
        let id = s(record, "id");
        let now = app.credit(&id).await;
        let newest = entries.iter().find(|e| e["creditId"] == id.as_str()).unwrap();
        assert_eq!(newest["remainingAfter"], now["remaining"], "{newest} vs {now}");
    }

    // Filters.
    let by_credit = ledger_all(&app, &format!("creditId={}", s(&grant, "id"))).await;
    assert_eq!(by_credit.iter().map(|e| s(e, "type")).collect::<Vec<_>>(), vec!["void", "grant"]);
    let by_type = ledger_all(&app, &format!("accountId={account}&type=usage")).await;
    assert!(!by_type.is_empty());
    assert!(by_type.iter().all(|e| e["type"] == "usage"), "{by_type:?}");
    let other = app.create_account().await;
    app.purchase(&other, 5, json!({})).await;
    let mine = ledger_all(&app, &format!("accountId={account}")).await;
    assert_eq!(mine.len(), entries.len(), "another account's entries stay out");

    // from inclusive, to exclusive.
    let pivot = s(usage_entry, "createdAt");
    let from = ledger_all(&app, &format!("accountId={account}&from={pivot}")).await;
    assert!(from.iter().any(|e| e["id"] == usage_entry["id"]), "from is inclusive");
    let to = ledger_all(&app, &format!("accountId={account}&to={pivot}")).await;
    assert!(!to.iter().any(|e| e["id"] == usage_entry["id"]), "to is exclusive");
    assert!(to
        .iter()
        .all(|e| parse_rfc3339(e["createdAt"].as_str().unwrap()) < parse_rfc3339(&pivot)));

    let bad_type = app.get(&format!("/v2/ledger?accountId={account}&type=nonsense")).await;
    assert!((400..500).contains(&bad_type.status), "an unknown type is refused: {bad_type:?}");
    extra::assert_problem_shape(&bad_type);
}

#[tokio::test]
async fn ledger_csv_export_matches_json() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let used = app.use_credits(&account, "smartcheck", 7).await;
    assert_eq!(used.status, 201, "{used:?}");
    let held = extra::hold(&app, &account, "smartcheck", 5, json!({})).await;
    assert_eq!(held.status, 201, "{held:?}");

    let json_entries = ledger_all(&app, &format!("accountId={account}")).await;
    let csv = get_as(
        &app,
        &format!("/v2/ledger?accountId={account}"),
        Some(common::ADMIN_KEY),
        &[("accept", "text/csv")],
    )
    .await;
    assert_eq!(csv.status, 200, "{csv:?}");
    let content_type = csv.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("text/csv"), "content-type {content_type:?}");
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "id,accountId,creditId,type,credits,remainingAfter,usageId,reservationId,memberId,apiKeyId,createdAt"
    );
    assert_eq!(lines.len(), json_entries.len() + 1, "{}", csv.text);
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_default();
    for (line, entry) in lines[1..].iter().zip(&json_entries) {
        let expected = [
            text(&entry["id"]),
            text(&entry["accountId"]),
            text(&entry["creditId"]),
            text(&entry["type"]),
            entry["credits"].to_string(),
            entry["remainingAfter"].to_string(),
            text(&entry["usageId"]),
            text(&entry["reservationId"]),
            text(&entry["actor"]["memberId"]),
            text(&entry["actor"]["apiKeyId"]),
            text(&entry["createdAt"]),
        ]
        .join(",");
        assert_eq!(*line, expected);
    }
    let purchase_line = lines.iter().find(|l| l.contains(",purchase,")).expect("a purchase row");
    let columns: Vec<&str> = purchase_line.split(',').collect();
    assert_eq!(columns[2], s(&record, "id"));
    assert_eq!(columns[6], "", "null usageId is empty");
    assert_eq!(columns[7], "", "null reservationId is empty");

    let filtered = get_as(
        &app,
        &format!("/v2/ledger?accountId={account}&type=usage"),
        Some(common::ADMIN_KEY),
        &[("accept", "text/csv")],
    )
    .await;
    assert_eq!(filtered.status, 200);
    let rows: Vec<&str> = filtered.text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", filtered.text);
    assert!(rows[0].contains(&s(&used.json, "id")));
}

#[tokio::test]
async fn system_endpoints() {
    let app = common::spawn_app().await;

    let health = get_as(&app, "/healthz", None, &[]).await;
    assert_eq!(health.status, 200, "{health:?}");
    let ready = get_as(&app, "/readyz", None, &[]).await;
    assert_eq!(ready.status, 200, "{ready:?}");

    let openapi = get_as(&app, "/openapi.json", None, &[]).await;
    assert_eq!(openapi.status, 200, "{openapi:?}");
    assert!(openapi.header("content-type").unwrap_or("").starts_with("application/json"));
    let version = openapi.json["openapi"].as_str().unwrap_or("");
    assert!(version.starts_with("3.1"), "OpenAPI 3.1, got {version:?}");
    let paths = openapi.json["paths"].as_object().expect("paths");
    for path in [
        "/v2/accounts",
        "/v2/accounts/{id}",
        "/v2/services",
        "/v2/credits",
        "/v2/credits/{creditId}",
        "/v2/credits/{creditId}/void",
        "/v2/balance",
        "/v2/usage",
        "/v2/usage/batch",
        "/v2/reservations",
        "/v2/reservations/{id}",
        "/v2/reservations/{id}/capture",
        "/v2/reservations/{id}/release",
        "/v2/ledger",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI paths");
    }

    let docs = get_as(&app, "/docs", None, &[]).await;
    assert_eq!(docs.status, 200, "{docs:?}");
    assert!(docs.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(docs.text.to_lowercase().contains("<html"), "an HTML page");
}

#[tokio::test]
async fn balance_next_expiry_skips_spent_records() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let soon =
        app.purchase(&account, 5, json!({"service": "api", "expiresAt": in_seconds(600)})).await;
    let later =
        app.purchase(&account, 9, json!({"service": "api", "expiresAt": in_seconds(1200)})).await;
    app.purchase(&account, 100, json!({"service": "api"})).await;
    let balance = app.balance(&account).await;
    assert_eq!(balance["nextExpiry"]["creditId"], soon["id"]);
    assert_eq!(balance["nextExpiry"]["remaining"], 5);

    let used = app.use_credits(&account, "api", 7).await;
    assert_eq!(used.status, 201, "{used:?}");
    let balance = app.balance(&account).await;
    assert_eq!(
        balance["nextExpiry"]["creditId"], later["id"],
        "a record with nothing left has nothing to expire: {balance}"
    );
    assert_eq!(balance["nextExpiry"]["remaining"], 7);
    assert_eq!(balance["available"], 107);
}

#[tokio::test]
async fn idempotent_creates_replay() {
    let app = common::spawn_app().await;
    let k = key();
    let first = app.post_idempotent("/v2/accounts", &k, &json!({"name": "Once"})).await;
    assert_eq!(first.status, 201, "{first:?}");
    let again = app.post_idempotent("/v2/accounts", &k, &json!({"name": "Once"})).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let account = s(&first.json, "id");
    let list = app.get("/v2/accounts").await;
    assert_eq!(list.json["data"].as_array().unwrap().len(), 1, "one account");

    let k = key();
    let body = json!({"accountId": account, "amount": 40});
    let credit = app.post_idempotent("/v2/credits", &k, &body).await;
    assert_eq!(credit.status, 201, "{credit:?}");
    // Whitespace and key order do not make another body.
    let spaced = format!(r#"{{ "amount" : 40 , "accountId" : "{account}" }}"#);
    let again = app.post_raw("/v2/credits", &spaced, Some(&k)).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.text, credit.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let conflict =
        app.post_idempotent("/v2/credits", &k, &json!({"accountId": account, "amount": 41})).await;
    assert_problem(&conflict, 409, "idempotency_conflict");
    assert_eq!(app.balance(&account).await["available"], 40, "paid once");

    // A refused usage is an answer too: the same key and body replay it, charging nothing.
    let k = key();
    let body = json!({"accountId": account, "service": "api", "quantity": 50});
    let refused = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_problem(&refused, 402, "insufficient_credits");
    let replayed = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_problem(&replayed, 402, "insufficient_credits");
    assert_eq!(replayed.text, refused.text);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.balance(&account).await["available"], 40);

    let unknown = app
        .post_idempotent("/v2/usage", &key(), &json!({"accountId": "acct_nope", "service": "api"}))
        .await;
    assert_problem(&unknown, 404, "not_found");
}

#[tokio::test]
async fn acknowledged_writes_and_replays_survive_a_crash() {
    // The first server owns the directory (and its database): it is dropped last, cleaning up.
    let mut app = common::spawn_app().await;
    let dir = app.data_dir.clone();
    let account = app.create_account().await;
    let record = app.purchase(&account, 100, json!({"service": "api"})).await;
    let k = key();
    let body = json!({"accountId": account, "service": "api", "quantity": 9});
    let first = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_eq!(first.status, 201, "{first:?}");
    app.kill();

    let app = common::spawn_app_in(&dir).await;
    let read = app.credit(&s(&record, "id")).await;
    assert_eq!(read["used"], 9, "the acknowledged usage survived kill -9");
    let replay = app.post_idempotent("/v2/usage", &k, &body).await;
    assert_eq!(replay.status, 201, "{replay:?}");
    assert_eq!(replay.text, first.text, "the replay across a restart");
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.credit(&s(&record, "id")).await["used"], 9);
}

#[tokio::test]
async fn credit_timestamps_with_an_offset_read_back_in_utc() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 5, json!({"expiresAt": "2030-01-01T02:00:00+02:00"})).await;
    let read = record["expiresAt"].as_str().unwrap();
    assert!(read.ends_with('Z'), "{read}");
    assert_eq!(parse_rfc3339(read), parse_rfc3339("2030-01-01T00:00:00Z"), "{read}");
}

#[tokio::test]
async fn a_full_batch_of_1000_events() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 1000, json!({"service": "api"})).await;
    let events: Vec<Value> = (0..1000)
        .map(|_| json!({"idempotencyKey": key(), "accountId": account, "service": "api"}))
        .collect();
    let answer = app.post("/v2/usage/batch", &json!({ "events": events })).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let results = answer.json["data"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r["status"] == 201), "all recorded");
    let read = app.credit(&s(&record, "id")).await;
    assert_eq!(read["used"], 1000);
    assert_eq!(read["remaining"], 0);
    let one_more = app.use_credits(&account, "api", 1).await;
    assert_problem(&one_more, 402, "insufficient_credits");
}
