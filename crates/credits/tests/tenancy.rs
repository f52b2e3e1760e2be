//! Goal: tenancy and scopes hold as SPEC section 3 says. A key of account A never reaches an
//! object of account B: by id, by `accountId` in a read or a write, or through a filter, B's
//! objects answer exactly as if they did not exist (404 `not_found` wherever the key holds the
//! endpoint's scope), and nothing of B changes. A key without an endpoint's scope gets 403
//! `forbidden`; a revoked key, or a key of a deleted member, gets 401 on its very next request; a
//! member-bound key never carries more than its member's role, now or after a demotion, and no
//! key grants a scope it lacks.
//!
//! Method: black box over HTTP against the real binary. Two accounts are built alike with the
//! operator key: credits, one member of every role with a member-bound key, an unbound account
//! key, a hold, a usage and a budget. Every key of A is then sent to every endpoint that takes an
//! id or an `accountId`, naming B's object, and the same request naming an id that does not exist;
//! the two answers must match each other and the expected status. B's ledger (entry count and
//! newest entry) and B's objects are read with the operator key before and after and must be
//! equal. Endpoints an account key can never reach (void, account update: operator-only scopes)
//! answer 403 for B's object and for a missing one alike, which is "as if it did not exist".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/extra.rs"]
mod extra;
#[path = "support/team.rs"]
mod team;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use common::{Answer, TestApp, ADMIN_KEY};
use extra::{assert_problem, key, s};
use team::{
    account_key, call, delete, get, ledger_snapshot, list_all_as, member, member_key, post, Key,
};

const ACCOUNT_SCOPES: [&str; 6] = [
    "budgets:manage",
    "credits:read",
    "team:manage",
    "usage:read",
    "usage:write",
    "webhooks:manage",
];

/// The scopes a key of each kind carries by default (SPEC 3, roles of crates/core/src/access.rs).
fn default_scopes(kind: &str) -> BTreeSet<&'static str> {
    match kind {
        "owner" | "admin" | "account" => ACCOUNT_SCOPES.into_iter().collect(),
        "member" => ["credits:read", "usage:read", "usage:write"].into_iter().collect(),
        "viewer" => ["credits:read", "usage:read"].into_iter().collect(),
        other => panic!("unknown key kind {other}"),
    }
}

const ROLES: [&str; 4] = ["owner", "admin", "member", "viewer"];
const KEY_KINDS: [&str; 5] = ["owner", "admin", "member", "viewer", "account"];

/// One account with one object of every kind, built with the operator key.
struct Tenant {
    account: String,
    credit: String,
    members: BTreeMap<&'static str, String>,
    /// Keys by kind: a member-bound key per role, and `account`, bound to no member.
    keys: BTreeMap<&'static str, Key>,
    reservation: String,
    usage: String,
    budget: String,
}

fn scopes_of(answer: &Value) -> BTreeSet<String> {
    answer["scopes"]
        .as_array()
        .unwrap_or_else(|| panic!("no scopes in {answer}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

async fn tenant(app: &TestApp) -> Tenant {
    let account = app.create_account().await;
    let credit = s(&app.purchase(&account, 1000, json!({})).await, "id");
    let mut members = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for role in ROLES {
        let id = member(app, &account, role).await;
        keys.insert(role, member_key(app, &account, &id).await);
        members.insert(role, id);
    }
    keys.insert("account", account_key(app, &account).await);
    // Every key carries its kind's default scopes: the matrix below depends on it.
    let listed = list_all_as(app, &format!("/v2/api-keys?accountId={account}"), ADMIN_KEY).await;
    for kind in KEY_KINDS {
        let key = &keys[kind];
        let item = listed
            .iter()
            .find(|k| k["id"] == key.id.as_str())
            .unwrap_or_else(|| panic!("key {} not listed", key.id));
        let expected: BTreeSet<String> =
            default_scopes(kind).into_iter().map(String::from).collect();
        assert_eq!(scopes_of(item), expected, "default scopes of a {kind} key");
    }
    let hold = post(
        app,
        "/v2/reservations",
        &keys["account"].secret,
        &json!({"service": "smartcheck", "credits": 10, "ttlSeconds": 3600}),
    )
    .await;
    assert_eq!(hold.status, 201, "{hold:?}");
    let usage = post(
        app,
        "/v2/usage",
        &keys["member"].secret,
        &json!({"service": "smartcheck", "quantity": 5}),
    )
    .await;
    assert_eq!(usage.status, 201, "{usage:?}");
    let budget = team::budget(
        app,
        &account,
        json!({"scope": {"type": "account"}, "limit": 100_000, "enforcement": "notify"}),
    )
    .await;
    Tenant {
        account,
        credit,
        members,
        keys,
        reservation: s(&hold.json, "id"),
        usage: s(&usage.json, "id"),
        budget: s(&budget, "id"),
    }
}

/// Which scope an endpoint needs.
#[derive(Clone, Copy, Debug)]
enum Needs {
    /// Any valid key (GET /v2/accounts/{id}: a key sees its own account).
    Nothing,
    Scope(&'static str),
    /// `credits:write` or `accounts:manage`, which no account key can carry.
    Operator,
}

/// One request against B's object, and the same request against an object that does not exist.
struct Probe {
    name: &'static str,
    method: Method,
    needs: Needs,
    /// The path and body naming B's object.
    path: String,
    body: Option<Value>,
    /// The path and body naming a missing object of the same kind.
    missing_path: String,
    missing_body: Option<Value>,
    headers: Vec<(&'static str, &'static str)>,
    /// `POST /v2/usage/batch`: the per-event result carries the answer.
    batch: bool,
}

const NO_ACCOUNT: &str = "acct_01NOSUCHACCOUNT000000000000";

fn probe(
    name: &'static str,
    method: Method,
    needs: Needs,
    path: String,
    missing_path: String,
    body: Option<Value>,
) -> Probe {
    Probe {
        name,
        method,
        needs,
        path,
        missing_body: body.clone(),
        body,
        missing_path,
        headers: Vec::new(),
        batch: false,
    }
}

/// A write naming `accountId` B in its body; the missing variant names an unknown account.
fn account_write(name: &'static str, needs: Needs, path: &str, b: &str, body: Value) -> Probe {
    let mut with_b = body.clone();
    with_b["accountId"] = json!(b);
    let mut missing = body;
    missing["accountId"] = json!(NO_ACCOUNT);
    Probe {
        name,
        method: Method::POST,
        needs,
        path: path.to_string(),
        body: Some(with_b),
        missing_path: path.to_string(),
        missing_body: Some(missing),
        headers: Vec::new(),
        batch: false,
    }
}

fn probes(b: &Tenant) -> Vec<Probe> {
    use Method as M;
    use Needs::{Nothing, Operator, Scope};
    let id_probe = |name, method, needs, template: &str, id: &str, missing: &str, body| {
        probe(
            name,
            method,
            needs,
            template.replace("{}", id),
            template.replace("{}", missing),
            body,
        )
    };
    let list = |name, needs, path: &str| {
        probe(
            name,
            M::GET,
            needs,
            format!("{path}?accountId={}", b.account),
            format!("{path}?accountId={NO_ACCOUNT}"),
            None,
        )
    };
    let mut probes = vec![
        id_probe(
            "GET credit",
            M::GET,
            Scope("credits:read"),
            "/v2/credits/{}",
            &b.credit,
            "credit_01NOSUCHCREDIT00000000000",
            None,
        ),
        id_probe(
            "void credit",
            M::POST,
            Operator,
            "/v2/credits/{}/void",
            &b.credit,
            "credit_01NOSUCHCREDIT00000000000",
            Some(json!({})),
        ),
        id_probe(
            "GET reservation",
            M::GET,
            Scope("credits:read"),
            "/v2/reservations/{}",
            &b.reservation,
            "res_01NOSUCHHOLD0000000000000",
            None,
        ),
        id_probe(
            "capture reservation",
            M::POST,
            Scope("usage:write"),
            "/v2/reservations/{}/capture",
            &b.reservation,
            "res_01NOSUCHHOLD0000000000000",
            Some(json!({})),
        ),
        id_probe(
            "release reservation",
            M::POST,
            Scope("usage:write"),
            "/v2/reservations/{}/release",
            &b.reservation,
            "res_01NOSUCHHOLD0000000000000",
            Some(json!({})),
        ),
        id_probe(
            "GET member",
            M::GET,
            Scope("team:manage"),
            "/v2/members/{}",
            &b.members["owner"],
            "mem_01NOSUCHMEMBER00000000000",
            None,
        ),
        id_probe(
            "PATCH member",
            M::PATCH,
            Scope("team:manage"),
            "/v2/members/{}",
            &b.members["member"],
            "mem_01NOSUCHMEMBER00000000000",
            Some(json!({"role": "viewer"})),
        ),
        id_probe(
            "DELETE member",
            M::DELETE,
            Scope("team:manage"),
            "/v2/members/{}",
            &b.members["viewer"],
            "mem_01NOSUCHMEMBER00000000000",
            None,
        ),
        id_probe(
            "DELETE api key",
            M::DELETE,
            Scope("team:manage"),
            "/v2/api-keys/{}",
            &b.keys["account"].id,
            "key_01NOSUCHKEY00000000000000",
            None,
        ),
        id_probe(
            "DELETE operator api key",
            M::DELETE,
            Scope("team:manage"),
            "/v2/api-keys/{}",
            "key_admin",
            "key_01NOSUCHKEY00000000000000",
            None,
        ),
        id_probe(
            "GET budget",
            M::GET,
            Scope("budgets:manage"),
            "/v2/budgets/{}",
            &b.budget,
            "bud_01NOSUCHBUDGET00000000000",
            None,
        ),
        id_probe(
            "PATCH budget",
            M::PATCH,
            Scope("budgets:manage"),
            "/v2/budgets/{}",
            &b.budget,
            "bud_01NOSUCHBUDGET00000000000",
            Some(json!({"limit": 1})),
        ),
        id_probe(
            "DELETE budget",
            M::DELETE,
            Scope("budgets:manage"),
            "/v2/budgets/{}",
            &b.budget,
            "bud_01NOSUCHBUDGET00000000000",
            None,
        ),
        id_probe("GET account", M::GET, Nothing, "/v2/accounts/{}", &b.account, NO_ACCOUNT, None),
        id_probe(
            "PATCH account",
            M::PATCH,
            Operator,
            "/v2/accounts/{}",
            &b.account,
            NO_ACCOUNT,
            Some(json!({"name": "taken over"})),
        ),
        list("list credits", Scope("credits:read"), "/v2/credits"),
        list("balance", Scope("credits:read"), "/v2/balance"),
        list("ledger", Scope("credits:read"), "/v2/ledger"),
        list("list usage", Scope("usage:read"), "/v2/usage"),
        list("list budgets", Scope("budgets:manage"), "/v2/budgets"),
        list("list members", Scope("team:manage"), "/v2/members"),
        list("list api keys", Scope("team:manage"), "/v2/api-keys"),
        account_write(
            "record usage",
            Scope("usage:write"),
            "/v2/usage",
            &b.account,
            json!({"service": "smartcheck"}),
        ),
        account_write(
            "hold",
            Scope("usage:write"),
            "/v2/reservations",
            &b.account,
            json!({"service": "smartcheck", "credits": 1}),
        ),
        account_write(
            "create member",
            Scope("team:manage"),
            "/v2/members",
            &b.account,
            json!({"email": "intruder@example.com", "role": "owner"}),
        ),
        account_write(
            "create api key",
            Scope("team:manage"),
            "/v2/api-keys",
            &b.account,
            json!({"name": "intruder"}),
        ),
        account_write(
            "create budget",
            Scope("budgets:manage"),
            "/v2/budgets",
            &b.account,
            json!({"name": "b", "scope": {"type": "account"}, "period": "day", "limit": 1}),
        ),
        account_write("create credits", Operator, "/v2/credits", &b.account, json!({"amount": 5})),
        // B's member named inside a write of A's own account.
        probe(
            "create api key bound to B's member",
            M::POST,
            Scope("team:manage"),
            "/v2/api-keys".into(),
            "/v2/api-keys".into(),
            Some(json!({"name": "x", "memberId": b.members["owner"]})),
        ),
        probe(
            "create budget on B's member",
            M::POST,
            Scope("budgets:manage"),
            "/v2/budgets".into(),
            "/v2/budgets".into(),
            Some(json!({"name": "x", "scope": {"type": "member", "id": b.members["member"]},
                "period": "day", "limit": 5})),
        ),
    ];
    // The missing variants of the last two name a member that does not exist.
    let n = probes.len();
    probes[n - 2].missing_body =
        Some(json!({"name": "x", "memberId": "mem_01NOSUCHMEMBER00000000000"}));
    probes[n - 1].missing_body = Some(
        json!({"name": "x", "scope": {"type": "member", "id": "mem_01NOSUCHMEMBER00000000000"},
            "period": "day", "limit": 5}),
    );
    let mut csv = list("ledger as CSV", Scope("credits:read"), "/v2/ledger");
    csv.headers = vec![("accept", "text/csv")];
    probes.push(csv);
    let batch_body = |account: &str| json!({"events": [{"idempotencyKey": key(), "accountId": account, "service": "smartcheck"}]});
    probes.push(Probe {
        name: "record usage batch",
        method: M::POST,
        needs: Scope("usage:write"),
        path: "/v2/usage/batch".into(),
        body: Some(batch_body(&b.account)),
        missing_path: "/v2/usage/batch".into(),
        missing_body: Some(batch_body(NO_ACCOUNT)),
        headers: Vec::new(),
        batch: true,
    });
    probes
}

async fn send(app: &TestApp, probe: &Probe, bearer: &str, missing: bool) -> Answer {
    let (path, body) = if missing {
        (&probe.missing_path, &probe.missing_body)
    } else {
        (&probe.path, &probe.body)
    };
    let idempotency = key();
    let mut headers = probe.headers.clone();
    if probe.method == Method::POST {
        headers.push(("idempotency-key", idempotency.as_str()));
    }
    app.request(
        probe.method.clone(),
        path,
        Some(bearer),
        &headers,
        body.as_ref().map(Value::to_string),
    )
    .await
}

/// The status and code an answer carries; for a batch, those of its one event.
fn outcome(probe: &Probe, answer: &Answer) -> (u16, String) {
    if probe.batch && answer.status == 200 {
        let event = &answer.json["data"][0];
        let status = u16::try_from(event["status"].as_u64().unwrap()).unwrap();
        let code = event["error"]["code"].as_str().unwrap_or("").to_string();
        (status, code)
    } else {
        if answer.status >= 400 {
            extra::assert_problem_shape(answer);
        }
        (answer.status, answer.code().to_string())
    }
}

/// Everything of an account the operator can read, without the fields that move on their own
/// (`asOf`, keys' `lastUsedAt`).
async fn state_of(app: &TestApp, t: &Tenant) -> Value {
    let account = &t.account;
    let mut keys = list_all_as(app, &format!("/v2/api-keys?accountId={account}"), ADMIN_KEY).await;
    for key in &mut keys {
        key.as_object_mut().unwrap().remove("lastUsedAt");
    }
    let mut balance = app.balance(account).await;
    balance.as_object_mut().unwrap().remove("asOf");
    let read = |path: String| async move {
        let answer = get(app, &path, ADMIN_KEY).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        answer.json
    };
    json!({
        "account": read(format!("/v2/accounts/{account}")).await,
        "balance": balance,
        "credits": list_all_as(app, &format!("/v2/credits?accountId={account}"), ADMIN_KEY).await,
        "usage": list_all_as(app, &format!("/v2/usage?accountId={account}"), ADMIN_KEY).await,
        "members": list_all_as(app, &format!("/v2/members?accountId={account}"), ADMIN_KEY).await,
        "budgets": list_all_as(app, &format!("/v2/budgets?accountId={account}"), ADMIN_KEY).await,
        "reservation": read(format!("/v2/reservations/{}", t.reservation)).await,
        "keys": keys,
    })
}

#[tokio::test]
async fn a_key_of_one_account_finds_nothing_of_another_and_changes_nothing() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    let b = tenant(&app).await;
    let ledger_before = ledger_snapshot(&app, &b.account).await;
    assert!(
        ledger_before.count >= 3,
        "B's ledger has its purchase, hold and usage: {ledger_before:?}"
    );
    let state_before = state_of(&app, &b).await;

    let mut failures = Vec::new();
    for probe in probes(&b) {
        for kind in KEY_KINDS {
            let scopes = default_scopes(kind);
            let (status, code) = match probe.needs {
                Needs::Nothing => (404, "not_found"),
                Needs::Scope(scope) if scopes.contains(scope) => (404, "not_found"),
                Needs::Scope(_) | Needs::Operator => (403, "forbidden"),
            };
            let bearer = &a.keys[kind].secret;
            let answer = send(&app, &probe, bearer, false).await;
            let got = outcome(&probe, &answer);
            if got != (status, code.to_string()) {
                failures.push(format!(
                    "{} with A's {kind} key: {} {} body {:?}: expected {status} {code}, got {answer:?}",
                    probe.name,
                    probe.method,
                    probe.path,
                    probe.body.as_ref().map(Value::to_string)
                ));
            }
            let missing = send(&app, &probe, bearer, true).await;
            let got_missing = outcome(&probe, &missing);
            if got_missing != got {
                failures.push(format!(
                    "{} with A's {kind} key: B's object answers {got:?} but a missing one {} {} \
                     answers {missing:?}",
                    probe.name, probe.method, probe.missing_path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} tenancy failures:\n{}", failures.len(), failures.join("\n"));

    let ledger_after = ledger_snapshot(&app, &b.account).await;
    assert_eq!(ledger_after, ledger_before, "B's ledger changed");
    let state_after = state_of(&app, &b).await;
    assert_eq!(state_after, state_before, "B's objects changed");
    // B's keys still work: none was revoked, no member deleted.
    for kind in KEY_KINDS {
        let answer = get(&app, "/v2/balance", &b.keys[kind].secret).await;
        assert_eq!(answer.status, 200, "B's {kind} key: {answer:?}");
        assert_eq!(answer.json["accountId"], b.account.as_str());
    }
}

#[tokio::test]
async fn filters_and_unfiltered_lists_show_nothing_of_another_account() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    let b = tenant(&app).await;
    let ledger_before = ledger_snapshot(&app, &b.account).await;
    let missing_credit = "credit_01NOSUCHCREDIT00000000000";
    let missing_member = "mem_01NOSUCHMEMBER00000000000";
    let missing_key = "key_01NOSUCHKEY00000000000000";
    let filters = [
        ("/v2/ledger?creditId=", b.credit.as_str(), missing_credit),
        ("/v2/ledger?memberId=", &b.members["member"], missing_member),
        ("/v2/ledger?apiKeyId=", &b.keys["account"].id, missing_key),
        ("/v2/usage?memberId=", &b.members["member"], missing_member),
        ("/v2/usage?apiKeyId=", &b.keys["member"].id, missing_key),
    ];
    // The same filters by the operator do find B's objects: the filters themselves work.
    for (path, id, _) in &filters {
        let all = list_all_as(&app, &format!("{path}{id}"), ADMIN_KEY).await;
        assert!(!all.is_empty(), "the operator finds B's {path}{id}");
    }
    for kind in KEY_KINDS {
        let bearer = &a.keys[kind].secret;
        for (path, id, missing) in &filters {
            let answer = get(&app, &format!("{path}{id}"), bearer).await;
            let unknown = get(&app, &format!("{path}{missing}"), bearer).await;
            assert_eq!(
                (answer.status, answer.code()),
                (unknown.status, unknown.code()),
                "A's {kind} key: {path}{id} answers {answer:?}, a missing id {unknown:?}"
            );
            if answer.status == 200 {
                let data = answer.json["data"].as_array().unwrap();
                assert!(
                    data.is_empty(),
                    "A's {kind} key sees B's objects through {path}{id}: {answer:?}"
                );
            } else {
                assert_problem(&answer, 404, "not_found");
            }
        }
        // Lists without accountId show only A's own objects.
        let scopes = default_scopes(kind);
        let lists = [
            ("/v2/credits", "credits:read"),
            ("/v2/ledger", "credits:read"),
            ("/v2/usage", "usage:read"),
            ("/v2/api-keys", "team:manage"),
            ("/v2/members", "team:manage"),
            ("/v2/budgets", "budgets:manage"),
        ];
        for (path, scope) in lists {
            if !scopes.contains(scope) {
                continue;
            }
            let items = list_all_as(&app, path, bearer).await;
            assert!(!items.is_empty(), "A's {kind} key lists A's own {path}");
            for item in &items {
                assert_eq!(
                    item["accountId"],
                    a.account.as_str(),
                    "A's {kind} key lists another account's object at {path}: {item}"
                );
            }
        }
        let balance = get(&app, "/v2/balance", bearer).await;
        assert_eq!(balance.status, 200, "{balance:?}");
        assert_eq!(balance.json["accountId"], a.account.as_str());
    }
    // The usage B recorded is not reachable through A either.
    let usage = list_all_as(&app, "/v2/usage", &a.keys["owner"].secret).await;
    assert!(usage.iter().all(|u| u["id"] != b.usage.as_str()));
    assert_eq!(ledger_snapshot(&app, &b.account).await, ledger_before);
}

#[tokio::test]
async fn idempotency_keys_of_one_account_never_replay_another_accounts_answer() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    let b = tenant(&app).await;
    let body = json!({"service": "smartcheck", "quantity": 2}).to_string();
    let shared = [("idempotency-key", "shared-key-1")];
    let first = app
        .request(
            Method::POST,
            "/v2/usage",
            Some(&b.keys["account"].secret),
            &shared,
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.json["accountId"], b.account.as_str());
    let ledger_b = ledger_snapshot(&app, &b.account).await;
    let second = app
        .request(Method::POST, "/v2/usage", Some(&a.keys["account"].secret), &shared, Some(body))
        .await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(
        second.header("idempotent-replayed"),
        None,
        "A's key replayed B's answer: {second:?}"
    );
    assert_eq!(second.json["accountId"], a.account.as_str(), "{second:?}");
    assert_ne!(second.json["id"], first.json["id"]);
    assert_eq!(ledger_snapshot(&app, &b.account).await, ledger_b);
}

/// Asserts 403 `forbidden` for a call, naming it on failure.
async fn assert_forbidden(
    app: &TestApp,
    what: &str,
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) {
    let answer = call(app, method, path, bearer, body.as_ref()).await;
    assert_eq!(answer.status, 403, "{what}: expected 403, got {answer:?}");
    assert_problem(&answer, 403, "forbidden");
}

#[tokio::test]
async fn every_call_without_its_scope_answers_403() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    let account = a.account.as_str();
    let ledger_before = ledger_snapshot(&app, account).await;
    let member_body = json!({"email": "new@example.com", "role": "viewer"});
    let key_body = json!({"name": "k"});
    let budget_body =
        json!({"name": "b", "scope": {"type": "account"}, "period": "day", "limit": 5});
    let usage_body = json!({"service": "smartcheck"});
    let hold_body = json!({"service": "smartcheck", "credits": 1});
    let batch_body = json!({"events": [{"idempotencyKey": "e1", "service": "smartcheck"}]});
    let reservation = a.reservation.clone();
    let member_id = a.members["viewer"].clone();
    let budget_id = a.budget.clone();
    let key_id = a.keys["account"].id.clone();

    // A viewer key reads but writes nothing.
    let viewer = &a.keys["viewer"].secret;
    use Method as M;
    let viewer_calls: Vec<(&str, Method, String, Option<Value>)> = vec![
        ("usage", M::POST, "/v2/usage".into(), Some(usage_body.clone())),
        ("usage batch", M::POST, "/v2/usage/batch".into(), Some(batch_body.clone())),
        ("hold", M::POST, "/v2/reservations".into(), Some(hold_body.clone())),
        ("capture", M::POST, format!("/v2/reservations/{reservation}/capture"), Some(json!({}))),
        ("release", M::POST, format!("/v2/reservations/{reservation}/release"), Some(json!({}))),
        ("member create", M::POST, "/v2/members".into(), Some(member_body.clone())),
        ("key create", M::POST, "/v2/api-keys".into(), Some(key_body.clone())),
        ("budget create", M::POST, "/v2/budgets".into(), Some(budget_body.clone())),
    ];
    for (what, method, path, body) in viewer_calls {
        assert_forbidden(&app, &format!("viewer {what}"), method, &path, viewer, body).await;
    }
    // A member key spends but manages neither the team nor budgets.
    let member_key = &a.keys["member"].secret;
    let member_calls: Vec<(&str, Method, String, Option<Value>)> = vec![
        ("member create", M::POST, "/v2/members".into(), Some(member_body.clone())),
        ("member list", M::GET, "/v2/members".into(), None),
        ("member read", M::GET, format!("/v2/members/{member_id}"), None),
        (
            "member update",
            M::PATCH,
            format!("/v2/members/{member_id}"),
            Some(json!({"role": "admin"})),
        ),
        ("member delete", M::DELETE, format!("/v2/members/{member_id}"), None),
        ("key create", M::POST, "/v2/api-keys".into(), Some(key_body.clone())),
        ("key list", M::GET, "/v2/api-keys".into(), None),
        ("key revoke", M::DELETE, format!("/v2/api-keys/{key_id}"), None),
        ("budget create", M::POST, "/v2/budgets".into(), Some(budget_body.clone())),
        ("budget list", M::GET, "/v2/budgets".into(), None),
        ("budget read", M::GET, format!("/v2/budgets/{budget_id}"), None),
        ("budget update", M::PATCH, format!("/v2/budgets/{budget_id}"), Some(json!({"limit": 1}))),
        ("budget delete", M::DELETE, format!("/v2/budgets/{budget_id}"), None),
    ];
    for (what, method, path, body) in member_calls {
        assert_forbidden(&app, &format!("member {what}"), method, &path, member_key, body).await;
    }
    // An account key with every account scope still cannot create or void credits or manage
    // accounts: those scopes are the operator's.
    let account_key = &a.keys["account"].secret;
    let owner_key = &a.keys["owner"].secret;
    for (who, bearer) in [("account", account_key), ("owner", owner_key)] {
        let operator_calls: Vec<(&str, Method, String, Option<Value>)> = vec![
            ("credits create", M::POST, "/v2/credits".into(), Some(json!({"amount": 5}))),
            (
                "credits create naming its account",
                M::POST,
                "/v2/credits".into(),
                Some(json!({"accountId": account, "amount": 5})),
            ),
            ("credits void", M::POST, format!("/v2/credits/{}/void", a.credit), Some(json!({}))),
            ("account create", M::POST, "/v2/accounts".into(), Some(json!({"name": "x"}))),
            ("account list", M::GET, "/v2/accounts".into(), None),
            (
                "own account update",
                M::PATCH,
                format!("/v2/accounts/{account}"),
                Some(json!({"name": "x"})),
            ),
        ];
        for (what, method, path, body) in operator_calls {
            assert_forbidden(&app, &format!("{who} key {what}"), method, &path, bearer, body).await;
        }
    }
    // SPEC 6: an account key may not set the cost or attribute usage to a member.
    for (what, extra_field) in
        [("credits", json!({"credits": 5})), ("memberId", json!({"memberId": a.members["member"]}))]
    {
        for bearer in [account_key, owner_key] {
            let mut usage = json!({"service": "smartcheck"});
            for (k, v) in extra_field.as_object().unwrap() {
                usage[k] = v.clone();
            }
            assert_forbidden(
                &app,
                &format!("account key usage with {what}"),
                M::POST,
                "/v2/usage",
                bearer,
                Some(usage),
            )
            .await;
        }
    }
    // A key with only credits:read lists no usage.
    let reader = team::key_as(
        &app,
        ADMIN_KEY,
        &json!({"accountId": account, "name": "reader", "scopes": ["credits:read"]}),
    )
    .await;
    assert_forbidden(
        &app,
        "credits:read key usage list",
        M::GET,
        "/v2/usage",
        &reader.secret,
        None,
    )
    .await;
    assert_eq!(get(&app, "/v2/balance", &reader.secret).await.status, 200);
    // Nothing was charged by any refused call.
    assert_eq!(ledger_snapshot(&app, account).await, ledger_before);
    // And the reads the viewer may make do answer.
    for path in ["/v2/balance", "/v2/credits", "/v2/ledger", "/v2/usage"] {
        let answer = get(&app, path, viewer).await;
        assert_eq!(answer.status, 200, "viewer {path}: {answer:?}");
    }
    assert_eq!(get(&app, &format!("/v2/reservations/{reservation}"), viewer).await.status, 200);
}

#[tokio::test]
async fn a_revoked_key_answers_401_on_its_very_next_request() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    // Revoked by the operator, and by an owner of the account, each right after a use (the key
    // is then cached as valid).
    for revoker in [ADMIN_KEY.to_string(), a.keys["owner"].secret.clone()] {
        let victim = account_key(&app, &a.account).await;
        let used = get(&app, "/v2/balance", &victim.secret).await;
        assert_eq!(used.status, 200, "{used:?}");
        let spent =
            post(&app, "/v2/usage", &victim.secret, &json!({"service": "smartcheck"})).await;
        assert_eq!(spent.status, 201, "{spent:?}");
        let revoked = team::delete(&app, &format!("/v2/api-keys/{}", victim.id), &revoker).await;
        assert_eq!(revoked.status, 200, "{revoked:?}");
        let next = get(&app, "/v2/balance", &victim.secret).await;
        assert_problem(&next, 401, "unauthorized");
        let write =
            post(&app, "/v2/usage", &victim.secret, &json!({"service": "smartcheck"})).await;
        assert_problem(&write, 401, "unauthorized");
        // The list shows it revoked.
        let keys =
            list_all_as(&app, &format!("/v2/api-keys?accountId={}", a.account), ADMIN_KEY).await;
        let listed = keys.iter().find(|k| k["id"] == victim.id.as_str()).unwrap();
        assert!(listed["revokedAt"].is_string(), "{listed}");
    }
}

#[tokio::test]
async fn deleting_a_member_makes_its_keys_401() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    let id = member(&app, &a.account, "member").await;
    let first = member_key(&app, &a.account, &id).await;
    let second = member_key(&app, &a.account, &id).await;
    for key in [&first, &second] {
        let used = post(&app, "/v2/usage", &key.secret, &json!({"service": "smartcheck"})).await;
        assert_eq!(used.status, 201, "{used:?}");
    }
    let deleted = team::delete(&app, &format!("/v2/members/{id}"), &a.keys["owner"].secret).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    for key in [&first, &second] {
        let next = get(&app, "/v2/balance", &key.secret).await;
        assert_problem(&next, 401, "unauthorized");
    }
    let gone = get(&app, &format!("/v2/members/{id}"), ADMIN_KEY).await;
    assert_problem(&gone, 404, "not_found");
    // Other members' keys go on.
    let other = get(&app, "/v2/balance", &a.keys["member"].secret).await;
    assert_eq!(other.status, 200, "{other:?}");
}

#[tokio::test]
async fn no_key_carries_more_than_its_role_or_grants_what_it_lacks() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    let account = a.account.as_str();
    // A member-bound key above its member's role: 422, by the operator and by an owner.
    for (creator, role, scope) in [
        (ADMIN_KEY, "viewer", "usage:write"),
        (ADMIN_KEY, "member", "team:manage"),
        (ADMIN_KEY, "member", "budgets:manage"),
        (a.keys["owner"].secret.as_str(), "viewer", "usage:write"),
        (a.keys["admin"].secret.as_str(), "member", "team:manage"),
    ] {
        let answer = post(
            &app,
            "/v2/api-keys",
            creator,
            &json!({"accountId": account, "name": "too strong", "memberId": a.members[role],
                "scopes": ["credits:read", scope]}),
        )
        .await;
        assert_problem(&answer, 422, "validation_failed");
    }
    // Within the role it is fine.
    let within = team::key_as(
        &app,
        ADMIN_KEY,
        &json!({"accountId": account, "name": "ok", "memberId": a.members["viewer"],
            "scopes": ["usage:read"]}),
    )
    .await;
    assert!(within.secret.len() >= 32);

    // A key cannot grant a scope it lacks: 403.
    let manager = team::key_as(
        &app,
        ADMIN_KEY,
        &json!({"accountId": account, "name": "team only", "scopes": ["team:manage", "credits:read"]}),
    )
    .await;
    for scope in ["budgets:manage", "usage:write", "usage:read"] {
        let answer = post(
            &app,
            "/v2/api-keys",
            &manager.secret,
            &json!({"name": "stronger", "scopes": [scope]}),
        )
        .await;
        assert_problem(&answer, 403, "forbidden");
    }
    // What it creates without naming scopes carries at most its own.
    let child = post(&app, "/v2/api-keys", &manager.secret, &json!({"name": "child"})).await;
    assert_eq!(child.status, 201, "{child:?}");
    let granted = scopes_of(&child.json);
    assert!(!granted.is_empty(), "{child:?}");
    for scope in &granted {
        assert!(
            ["team:manage", "credits:read"].contains(&scope.as_str()),
            "a team:manage + credits:read key minted {scope}: {child:?}"
        );
    }
    // An owner's key cannot grant operator scopes (422: not an account scope) nor reach another
    // account's member.
    let operator_scope = post(
        &app,
        "/v2/api-keys",
        &a.keys["owner"].secret,
        &json!({"name": "op", "scopes": ["credits:write"]}),
    )
    .await;
    assert!(operator_scope.status == 422 || operator_scope.status == 403, "{operator_scope:?}");
    extra::assert_problem_shape(&operator_scope);
}

#[tokio::test]
async fn demoting_a_member_removes_usage_write_from_its_key_at_once() {
    let app = common::spawn_app().await;
    let a = tenant(&app).await;
    let id = member(&app, &a.account, "member").await;
    let key = member_key(&app, &a.account, &id).await;
    let usage = json!({"service": "smartcheck"});
    let before = post(&app, "/v2/usage", &key.secret, &usage).await;
    assert_eq!(before.status, 201, "{before:?}");
    let demoted = team::patch(
        &app,
        &format!("/v2/members/{id}"),
        &a.keys["admin"].secret,
        &json!({"role": "viewer"}),
    )
    .await;
    assert_eq!(demoted.status, 200, "{demoted:?}");
    assert_eq!(demoted.json["role"], "viewer");
    let ledger_before = ledger_snapshot(&app, &a.account).await;
    let after = post(&app, "/v2/usage", &key.secret, &usage).await;
    assert_problem(&after, 403, "forbidden");
    let hold = post(
        &app,
        "/v2/reservations",
        &key.secret,
        &json!({"service": "smartcheck", "credits": 1}),
    )
    .await;
    assert_problem(&hold, 403, "forbidden");
    assert_eq!(ledger_snapshot(&app, &a.account).await, ledger_before);
    // What the viewer role keeps still works.
    let read = get(&app, "/v2/balance", &key.secret).await;
    assert_eq!(read.status, 200, "{read:?}");
    let usage_read = get(&app, "/v2/usage", &key.secret).await;
    assert_eq!(usage_read.status, 200, "{usage_read:?}");
}

/// A member's key mints keys bound to that member, so that removing the member revokes them too
/// and no minted key escapes the member's role.
#[tokio::test]
async fn keys_minted_by_a_member_stay_bound_to_that_member() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let owner = member(&app, &account, "owner").await;
    let owner_key = member_key(&app, &account, &owner).await;
    let minted = post(&app, "/v2/api-keys", &owner_key.secret, &json!({"name": "minted"})).await;
    assert_eq!(minted.status, 201, "{minted:?}");
    assert_eq!(minted.json["memberId"], owner.as_str(), "{minted:?}");
    let minted_secret = s(&minted.json, "secret");
    let before = get(&app, &format!("/v2/balance?accountId={account}"), &minted_secret).await;
    assert_eq!(before.status, 200, "{before:?}");
    let removed = delete(&app, &format!("/v2/members/{owner}"), ADMIN_KEY).await;
    assert_eq!(removed.status, 200, "{removed:?}");
    let after = get(&app, &format!("/v2/balance?accountId={account}"), &minted_secret).await;
    assert_problem(&after, 401, "unauthorized");
}
