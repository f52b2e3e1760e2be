//! Goal: the operator CLI (`credits <noun> <verb>`) drives the real service end to end: tables
//! for people, the raw JSON answer with `--json`, `--all` walking every page, and exit codes for
//! scripts: 0 on success, 1 when the service refuses (the problem's `code` on stderr, such as
//! `insufficient_credits`), 2 for usage errors caught before any request.
//!
//! Method: black box twice over. Each test spawns the real server with the shared harness, then
//! runs the same binary as a subprocess with `CREDITS_URL`/`CREDITS_KEY`, and checks its stdout,
//! stderr and exit code; what the CLI claims is cross-checked over plain HTTP through the harness.
//! Tables are parsed by the header's column offsets, which also checks that they are aligned.
//! A team is set up as the README shows it (account, purchase, member, member-bound key, budget),
//! then the member's key spends through the CLI until the budget refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};

use common::{TestApp, ADMIN_KEY};

/// What one run of the CLI printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Run {
    /// Asserts success and returns the run.
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    /// Asserts the exit code, that stdout is empty and that stderr names `needle`.
    fn fails(self, code: i32, needle: &str) -> Run {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        assert!(self.stderr.contains(needle), "{self:?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The table on stdout as one map per row, header to cell.
    fn table(&self) -> Vec<BTreeMap<String, String>> {
        table(&self.stdout)
    }
}

/// Parses an aligned table: a column starts where a header starts after two spaces, and every
/// cell of that column starts at the same offset (in characters).
fn table(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<char> = lines.next().expect("a header line").chars().collect();
    let mut starts = Vec::new();
    for (index, c) in header.iter().enumerate() {
        let after_gap =
            index == 0 || (index >= 2 && header[index - 1] == ' ' && header[index - 2] == ' ');
        if *c != ' ' && after_gap {
            starts.push(index);
        }
    }
    let slice = |chars: &[char], index: usize| -> String {
        let start = starts[index].min(chars.len());
        let end = starts.get(index + 1).map_or(chars.len(), |&e| e.min(chars.len()));
        chars[start..end].iter().collect::<String>().trim().to_string()
    };
    let names: Vec<String> = (0..starts.len()).map(|i| slice(&header, i)).collect();
    lines
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            for &start in &starts[1..] {
                // Aligned: the character before each column is a space (the gap).
                assert!(
                    start <= chars.len() && chars[start - 1] == ' ',
                    "misaligned row {line:?} in\n{text}"
                );
            }
            names.iter().enumerate().map(|(i, name)| (name.clone(), slice(&chars, i))).collect()
        })
        .collect()
}

/// Runs the CLI against `url` with `key` (None: no key at all) and no other configuration.
fn run_args(url: &str, key: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credits"));
    command.args(args).env("CREDITS_URL", url).env("CREDITS_LOG", "warn");
    match key {
        Some(key) => command.env("CREDITS_KEY", key),
        None => command.env_remove("CREDITS_KEY"),
    };
    let output = command.output().expect("the credits binary runs");
    Run {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs the command line `line`, split at whitespace, against `url` with `key`.
fn run_with(url: &str, key: Option<&str>, line: &str) -> Run {
    run_args(url, key, &line.split_whitespace().collect::<Vec<_>>())
}

/// Runs the command line `line`, split at whitespace, as the operator against `app`.
fn credits(app: &TestApp, line: &str) -> Run {
    run_with(&app.address, Some(ADMIN_KEY), line)
}

/// Runs `line` as the operator with `tail` appended as whole arguments (values with spaces).
fn credits_then(app: &TestApp, line: &str, tail: &[&str]) -> Run {
    let mut args: Vec<&str> = line.split_whitespace().collect();
    args.extend_from_slice(tail);
    run_args(&app.address, Some(ADMIN_KEY), &args)
}

fn id_of(run: &Run) -> String {
    run.json()["id"].as_str().unwrap().to_string()
}

fn column<'a>(rows: &'a [BTreeMap<String, String>], name: &str) -> Vec<&'a str> {
    rows.iter().map(|row| row[name].as_str()).collect()
}

#[tokio::test]
async fn accounts_and_credits_as_tables_and_json() {
    let app = common::spawn_app().await;

    let created = credits_then(
        &app,
        "accounts create --external-id cus_1 --low-balance-threshold 100",
        &["--name", "Acme Corp"],
    )
    .ok();
    let rows = created.table();
    assert_eq!(rows.len(), 1, "{created:?}");
    assert!(rows[0]["ID"].starts_with("acct_"), "{created:?}");
    assert_eq!(rows[0]["NAME"], "Acme Corp");
    assert_eq!(rows[0]["EXTERNAL ID"], "cus_1");
    assert_eq!(rows[0]["LOW BALANCE"], "100");
    let acme = rows[0]["ID"].clone();

    let beta = credits(&app, "accounts create --name Beta --json").ok();
    assert_eq!(beta.json()["name"], "Beta");
    assert_eq!(beta.json()["externalId"], Value::Null);
    let beta = id_of(&beta);

    // The JSON is the service's own answer.
    let got = credits(&app, &format!("accounts get {beta} --json")).ok();
    assert_eq!(got.json(), app.get(&format!("/v2/accounts/{beta}")).await.json);
    let got = credits(&app, &format!("accounts get {acme}")).ok().table();
    assert_eq!(got[0]["ID"], acme);
    assert_eq!(got[0]["LOW BALANCE"], "100");

    let list = credits(&app, "accounts list").ok().table();
    assert_eq!(column(&list, "ID"), [&beta, &acme], "newest first");
    let filtered = credits(&app, "accounts list --external-id cus_1").ok().table();
    assert_eq!(column(&filtered, "ID"), [&acme]);

    // A purchase with every option, and a grant with none.
    let purchase = credits_then(
        &app,
        &format!(
            "credits purchase --account {acme} --amount 1000 --service smartcheck \
             --expires-at 2099-12-31T23:59:59Z --priority -2 --reference pay_0001 --json"
        ),
        &["--description", "SmartCheck pack"],
    )
    .ok()
    .json();
    assert_eq!(purchase["kind"], "purchase");
    assert_eq!(purchase["accountId"], acme.as_str());
    assert_eq!(purchase["amount"], 1000);
    assert_eq!(purchase["remaining"], 1000);
    assert_eq!(purchase["service"], "smartcheck");
    assert_eq!(purchase["expiresAt"], "2099-12-31T23:59:59Z");
    assert_eq!(purchase["priority"], -2);
    assert_eq!(purchase["reference"], "pay_0001");
    assert_eq!(purchase["description"], "SmartCheck pack");
    let purchase_id = purchase["id"].as_str().unwrap().to_string();

    let grant = credits(&app, &format!("credits grant --account {acme} --amount 50")).ok().table();
    assert_eq!(grant[0]["KIND"], "grant");
    assert_eq!(grant[0]["SERVICE"], "any");
    assert_eq!(grant[0]["AMOUNT"], "50");
    assert_eq!(grant[0]["EXPIRES AT"], "-");
    assert_eq!(grant[0]["STATUS"], "active");
    let grant_id = grant[0]["ID"].clone();

    // The billing system retrying a payment: 409, exit 1, nothing on stdout.
    credits(&app, &format!("credits purchase --account {acme} --amount 1000 --reference pay_0001"))
        .fails(1, "duplicate_reference");

    let records = credits(&app, &format!("credits list --account {acme}")).ok().table();
    assert_eq!(column(&records, "ID"), [&grant_id, &purchase_id]);
    let none = credits(&app, &format!("credits list --account {beta}")).ok();
    assert_eq!(none.stdout.lines().count(), 1, "only the header: {none:?}");
    assert!(none.table().is_empty());

    // The balance: one row per service, a total, then the next expiry.
    let balance = credits(&app, &format!("balance --account {acme}")).ok();
    let (rows, last) = balance.stdout.trim_end().rsplit_once('\n').unwrap();
    let rows = table(rows);
    assert_eq!(column(&rows, "SERVICE"), ["any", "smartcheck", "total"]);
    assert_eq!(column(&rows, "AVAILABLE"), ["50", "1000", "1050"]);
    assert_eq!(column(&rows, "RESERVED"), ["0", "0", "0"]);
    assert_eq!(last, format!("next expiry: 1000 credits of {purchase_id} at 2099-12-31T23:59:59Z"));
    let balance = credits(&app, &format!("balance --account {acme} --json")).ok().json();
    assert_eq!(balance["available"], 1050);
    assert_eq!(balance["byService"]["smartcheck"]["available"], 1000);

    // Void what is left of the grant.
    let voided = credits(&app, &format!("credits void {grant_id} --reason mistake")).ok().table();
    assert_eq!(voided[0]["STATUS"], "voided");
    assert_eq!(voided[0]["REMAINING"], "0");
    let got = credits(&app, &format!("credits get {grant_id} --json")).ok().json();
    assert_eq!(got["voidedAmount"], 50);
    assert_eq!(got, app.credit(&grant_id).await);
    let voided_list = credits(&app, "credits list --status voided").ok().table();
    assert_eq!(column(&voided_list, "ID"), [&grant_id]);
    credits(&app, &format!("credits void {grant_id}")).fails(1, "invalid_state");
    assert_eq!(app.balance(&acme).await["available"], 1000);
}

#[tokio::test]
async fn usage_records_charges_and_refuses_beyond_balance() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let record = record["id"].as_str().unwrap().to_string();
    let smartcheck = format!("usage record --account {account} --service smartcheck");

    // Without a key the CLI generates one and tells it on stderr.
    let first = credits(&app, &format!("{smartcheck} --quantity 30")).ok();
    assert!(first.stderr.contains("idempotency key: cli_"), "{first:?}");
    let rows = first.table();
    assert!(rows[0]["ID"].starts_with("use_"), "{first:?}");
    assert_eq!(rows[0]["SERVICE"], "smartcheck");
    assert_eq!(rows[0]["QUANTITY"], "30");
    assert_eq!(rows[0]["CREDITS"], "30");
    assert_eq!(rows[0]["BALANCE AFTER"], "70");

    // With a key, a retry replays the first answer and charges once.
    let line =
        format!("{smartcheck} --quantity 20 --idempotency-key order-42 --metadata order=42 --json");
    let once = credits(&app, &line).ok();
    assert!(!once.stderr.contains("idempotency key:"), "{once:?}");
    assert!(!once.stderr.contains("replayed"), "{once:?}");
    let twice = credits(&app, &line).ok();
    assert!(twice.stderr.contains("replayed"), "{twice:?}");
    assert_eq!(once.json(), twice.json());
    assert_eq!(once.json()["metadata"], json!({"order": "42"}));
    assert_eq!(once.json()["allocations"], json!([{"creditId": record, "credits": 20}]));
    assert_eq!(app.balance(&account).await["available"], 50);

    // Beyond the balance: 402, exit 1, insufficient_credits on stderr, nothing charged.
    let refused =
        credits(&app, &format!("{smartcheck} --quantity 51")).fails(1, "insufficient_credits");
    assert!(refused.stderr.contains("HTTP 402"), "{refused:?}");
    credits(&app, &format!("{smartcheck} --quantity 51 --json")).fails(1, "insufficient_credits");
    assert_eq!(app.balance(&account).await["available"], 50);

    // The operator sets the cost explicitly; a service without credits of its own is refused.
    let explicit =
        credits(&app, &format!("{smartcheck} --quantity 3 --credits 5 --json")).ok().json();
    assert_eq!(explicit["credits"], 5);
    assert_eq!(explicit["quantity"], 3);
    assert_eq!(explicit["balanceAfter"], 45);
    credits(&app, &format!("usage record --account {account} --service api"))
        .fails(1, "insufficient_credits");

    let listed = credits(&app, &format!("usage list --account {account} --json")).ok().json();
    let charged: Vec<u64> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|usage| usage["credits"].as_u64().unwrap())
        .collect();
    assert_eq!(charged, [5, 20, 30], "newest first: {listed}");
    let rows = credits(&app, &format!("usage list --account {account}")).ok().table();
    assert_eq!(column(&rows, "CREDITS"), ["5", "20", "30"]);
    assert_eq!(rows[0]["API KEY"], listed["data"][0]["actor"]["apiKeyId"]);
    assert_eq!(rows[0]["MEMBER"], "-");

    // The ledger: a purchase and three usages, as a table and as CSV.
    let ledger = credits(&app, &format!("ledger --account {account}")).ok().table();
    assert_eq!(column(&ledger, "TYPE"), ["usage", "usage", "usage", "purchase"]);
    assert_eq!(column(&ledger, "REMAINING AFTER"), ["45", "50", "70", "100"]);
    assert_eq!(ledger[3]["CREDIT"], record);
    let purchases =
        credits(&app, &format!("ledger --account {account} --type purchase")).ok().table();
    assert_eq!(column(&purchases, "TYPE"), ["purchase"]);
    let csv = credits(&app, &format!("ledger --account {account} --csv")).ok();
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "id,accountId,creditId,type,credits,remainingAfter,usageId,reservationId,memberId,\
         apiKeyId,createdAt"
    );
    assert_eq!(lines.len(), 5, "{csv:?}");
    assert!(lines[4].contains(",purchase,100,100,"), "{csv:?}");
}

#[tokio::test]
async fn lists_follow_next_cursor_with_all() {
    let app = common::spawn_app().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(app.create_account().await);
    }
    created.reverse(); // Newest first, as lists answer.

    let first = credits(&app, "accounts list --limit 2").ok();
    assert_eq!(column(&first.table(), "ID"), created[..2]);
    assert!(first.stderr.contains("more results: add --all, or --cursor "), "{first:?}");
    let cursor = first.stderr.trim().rsplit(' ').next().unwrap().to_string();
    let next = credits(&app, &format!("accounts list --limit 2 --cursor {cursor}")).ok();
    assert_eq!(column(&next.table(), "ID"), created[2..4]);

    let all = credits(&app, "accounts list --all --limit 2").ok();
    assert_eq!(column(&all.table(), "ID"), created);
    assert!(all.stderr.is_empty(), "{all:?}");

    // --json: the raw first page, or with --all one merged list.
    let page = credits(&app, "accounts list --limit 2 --json").ok().json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["hasMore"], true);
    assert!(page["nextCursor"].is_string());
    let merged = credits(&app, "accounts list --all --limit 2 --json").ok().json();
    let ids: Vec<&str> = merged["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, created);
    assert_eq!(merged["hasMore"], false);
    assert_eq!(merged["nextCursor"], Value::Null);
    let default_all = credits(&app, "accounts list --all --json").ok().json();
    assert_eq!(default_all["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn services_catalog_and_operation_prices() {
    let app = common::spawn_app().await;
    let seeded = credits(&app, "services list").ok().table();
    let ids = column(&seeded, "ID");
    for id in ["smartcheck", "smartaccess", "smartenroll", "api", "biometric"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(seeded.iter().all(|row| row["UNIT COST"] == "1"));

    let created = credits_then(
        &app,
        "services create --id ocr --unit-cost 2 --operation page=3 --operation document=10",
        &["--name", "Document OCR"],
    )
    .ok()
    .table();
    assert_eq!(created[0]["ID"], "ocr");
    assert_eq!(created[0]["NAME"], "Document OCR");
    assert_eq!(created[0]["OPERATIONS"], "document=10,page=3");
    credits(&app, "services create --id ocr --name Again --unit-cost 1")
        .fails(1, "validation_failed");

    let account = app.create_account().await;
    app.purchase(&account, 100, json!({"service": "ocr"})).await;
    let charged = credits(
        &app,
        &format!(
            "usage record --account {account} --service ocr --operation page --quantity 4 --json"
        ),
    )
    .ok()
    .json();
    assert_eq!(charged["credits"], 12);
    assert_eq!(charged["operation"], "page");
    assert_eq!(charged["balanceAfter"], 88);
}

#[tokio::test]
async fn usage_errors_exit_2_and_service_errors_exit_1() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;

    // Caught by the command line, before any request: exit 2.
    let usage_errors = [
        (format!("credits purchase --account {account}"), "--amount"),
        (format!("credits purchase --account {account} --amount ten"), "--amount"),
        ("credits list --status spent".to_string(), "--status"),
        (format!("members create --account {account} --email a@example.com --role boss"), "--role"),
        (
            format!(
                "budgets create --account {account} --name cap --scope member --period month \
                 --limit 10"
            ),
            "member:ID",
        ),
        (
            format!(
                "budgets create --account {account} --name cap --scope team:x --period month \
                 --limit 10"
            ),
            "unknown scope",
        ),
        (
            format!(
                "budgets create --account {account} --name cap --scope account --period year \
                 --limit 10"
            ),
            "--period",
        ),
        ("ledger --csv --json".to_string(), "--csv"),
        ("accounts frobnicate".to_string(), "frobnicate"),
    ];
    for (line, needle) in &usage_errors {
        credits(&app, line).fails(2, needle);
    }
    run_with(&app.address, None, "accounts list").fails(2, "CREDITS_KEY");
    run_with("ftp://example.com", Some(ADMIN_KEY), "accounts list").fails(2, "--url");

    // Answered by the service: exit 1 with the problem's code and detail.
    let missing =
        credits(&app, "accounts get acct_01JD8X5Q7M3N2P4R6T8V0W2Y4Z").fails(1, "not_found");
    assert!(missing.stderr.starts_with("error: not_found: "), "{missing:?}");
    assert!(missing.stderr.contains("HTTP 404"), "{missing:?}");
    run_with(&app.address, Some("ck_wrong_key_000000000000000000000"), "accounts list")
        .fails(1, "unauthorized");
    credits(
        &app,
        &format!("credits purchase --account {account} --amount 10 --expires-at yesterday"),
    )
    .fails(1, "validation_failed");
    credits(&app, &format!("credits purchase --account {account} --amount 9007199254740992"))
        .fails(1, "validation_failed");

    // Nothing listening: exit 1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    run_with(&closed, Some(ADMIN_KEY), "accounts list").fails(1, "cannot reach");

    // The connection options may follow the noun or the verb, and --url and --key beat the env.
    let listed = run_with(
        &closed,
        None,
        &format!("accounts --json list --url {} --key {ADMIN_KEY}", app.address),
    )
    .ok()
    .json();
    assert_eq!(listed["data"][0]["id"], account.as_str());
}

#[tokio::test]
async fn a_team_is_set_up_and_spends_from_the_cli() {
    let app = common::spawn_app().await;
    let account = id_of(&credits(&app, "accounts create --name Acme --json").ok());
    credits(
        &app,
        &format!("credits purchase --account {account} --amount 1000 --service smartcheck"),
    )
    .ok();

    // Members, as a table and as JSON.
    let member = credits(
        &app,
        &format!(
            "members create --account {account} --email alice@example.com --name Alice \
             --role member"
        ),
    )
    .ok()
    .table();
    assert!(member[0]["ID"].starts_with("mem_"), "{member:?}");
    assert_eq!(member[0]["EMAIL"], "alice@example.com");
    assert_eq!(member[0]["NAME"], "Alice");
    assert_eq!(member[0]["ROLE"], "member");
    let alice = member[0]["ID"].clone();
    let bob = credits(
        &app,
        &format!("members create --account {account} --email bob@example.com --role viewer --json"),
    )
    .ok()
    .json();
    assert_eq!(bob["name"], Value::Null);
    assert_eq!(bob["role"], "viewer");
    let bob = bob["id"].as_str().unwrap().to_string();
    let members = credits(&app, &format!("members list --account {account}")).ok().table();
    assert_eq!(column(&members, "ID"), [&bob, &alice]);
    let got = credits(&app, &format!("members get {alice} --json")).ok().json();
    assert_eq!(got["name"], "Alice");

    // A key bound to Alice: the secret is shown once, in its own column.
    let created = credits(
        &app,
        &format!(
            "keys create --account {account} --name alice-ci --member {alice} \
             --scope usage:write --scope credits:read"
        ),
    )
    .ok();
    assert!(created.stderr.contains("shown only once"), "{created:?}");
    let key = created.table();
    assert!(key[0]["ID"].starts_with("key_"), "{created:?}");
    assert_eq!(key[0]["ACCOUNT"], account);
    assert_eq!(key[0]["MEMBER"], alice);
    let mut scopes: Vec<&str> = key[0]["SCOPES"].split(',').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["credits:read", "usage:write"]);
    let secret = key[0]["SECRET"].clone();
    assert!(secret.starts_with(&key[0]["PREFIX"]), "{created:?}");
    let key_id = key[0]["ID"].clone();
    let operator_key = credits(&app, "keys create --name ops --json").ok().json();
    assert_eq!(operator_key["accountId"], Value::Null);
    assert!(operator_key["secret"].is_string());
    let keys = credits(&app, &format!("keys list --account {account}")).ok();
    assert!(!keys.stdout.contains("SECRET"), "never listed: {keys:?}");
    assert!(!keys.stdout.contains(&secret), "never listed: {keys:?}");
    assert_eq!(column(&keys.table(), "ID"), [&key_id]);

    // Budgets: 300 a month for Alice (block), and a notify-only lifetime budget for the account.
    let budget = credits(
        &app,
        &format!(
            "budgets create --account {account} --name alice-monthly --scope member:{alice} \
             --period month --limit 300"
        ),
    )
    .ok()
    .table();
    assert!(budget[0]["ID"].starts_with("bud_"), "{budget:?}");
    assert_eq!(budget[0]["SCOPE"], format!("member:{alice}"));
    assert_eq!(budget[0]["PERIOD"], "month");
    assert_eq!(budget[0]["LIMIT"], "300");
    assert_eq!(budget[0]["ENFORCEMENT"], "block");
    assert_eq!(budget[0]["SPENT"], "0");
    let alice_budget = budget[0]["ID"].clone();
    let account_budget = credits(
        &app,
        &format!(
            "budgets create --account {account} --name all --scope account --period lifetime \
             --limit 5000 --enforcement notify --threshold 50 --json"
        ),
    )
    .ok()
    .json();
    assert_eq!(account_budget["scope"]["type"], "account");
    assert_eq!(account_budget["enforcement"], "notify");
    assert_eq!(account_budget["thresholds"], json!([50]));
    let account_budget = account_budget["id"].as_str().unwrap().to_string();

    // Alice's key spends; the usage carries both her and the key.
    let as_alice = |line: &str| run_with(&app.address, Some(&secret), line);
    let smartcheck = format!("usage record --account {account} --service smartcheck");
    for _ in 0..2 {
        let spent = as_alice(&format!("{smartcheck} --quantity 100")).ok().table();
        assert_eq!(spent[0]["MEMBER"], alice);
        assert_eq!(spent[0]["API KEY"], key_id);
    }
    as_alice(&format!("{smartcheck} --quantity 150")).fails(1, "budget_exceeded");
    credits(&app, &format!("{smartcheck} --quantity 7 --member {bob}")).ok();
    let alices =
        credits(&app, &format!("usage list --account {account} --member {alice}")).ok().table();
    assert_eq!(column(&alices, "CREDITS"), ["100", "100"]);
    let bobs = credits(&app, &format!("ledger --account {account} --member {bob}")).ok().table();
    assert_eq!(column(&bobs, "CREDITS"), ["7"]);
    assert_eq!(column(&bobs, "MEMBER"), [&bob]);
    let keys_usage =
        credits(&app, &format!("usage list --account {account} --api-key {key_id}")).ok().table();
    assert_eq!(keys_usage.len(), 2);
    // An account key may not attribute usage to someone else.
    as_alice(&format!("{smartcheck} --member {bob}")).fails(1, "forbidden");
    let balance = as_alice(&format!("balance --account {account} --json")).ok().json();
    assert_eq!(balance["available"], 793);
    let budgets = credits(&app, &format!("budgets list --account {account}")).ok().table();
    assert_eq!(column(&budgets, "SPENT"), ["207", "200"], "the account, then Alice");
    let got = credits(&app, &format!("budgets get {alice_budget} --json")).ok().json();
    assert_eq!(got["spent"], 200);

    // Revoking the key locks it out at once.
    let revoked = credits(&app, &format!("keys revoke {key_id}")).ok().table();
    assert_eq!(revoked[0]["ID"], key_id);
    assert_ne!(revoked[0]["REVOKED AT"], "-");
    as_alice(&format!("balance --account {account}")).fails(1, "unauthorized");

    // Deleting a budget and a member.
    let deleted = credits(&app, &format!("budgets delete {account_budget}")).ok().table();
    assert_eq!(deleted[0]["ID"], account_budget);
    assert_eq!(deleted[0]["DELETED"], "true");
    let budgets = credits(&app, &format!("budgets list --account {account}")).ok().table();
    assert_eq!(column(&budgets, "ID"), [&alice_budget]);
    let deleted = credits(&app, &format!("members delete {bob} --json")).ok().json();
    assert_eq!(deleted, json!({"id": bob, "deleted": true}));
    credits(&app, &format!("members get {bob}")).fails(1, "not_found");
}
