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
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
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
        let end = starts
            .get(index + 1)
            .map_or(chars.len(), |&e| e.min(chars.len()));
        chars[start..end]
            .iter()
            .collect::<String>()
            .trim()
            .to_string()
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
            names
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), slice(&chars, i)))
                .collect()
        })
        .collect()
}

/// Runs the CLI against `url` with `key` (None: no key at all) and no other configuration.
fn run_with(url: &str, key: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credits"));
    command
        .args(args)
        .env("CREDITS_URL", url)
        .env("CREDITS_LOG", "warn");
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

/// Runs the CLI as the operator against `app`.
fn credits(app: &TestApp, args: &[&str]) -> Run {
    run_with(&app.address, Some(ADMIN_KEY), args)
}

fn id_of(run: &Run) -> String {
    run.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn accounts_and_credits_as_tables_and_json() {
    let app = common::spawn_app().await;

    let created = credits(
        &app,
        &[
            "accounts",
            "create",
            "--name",
            "Acme Corp",
            "--external-id",
            "cus_1",
            "--low-balance-threshold",
            "100",
        ],
    )
    .ok();
    let rows = created.table();
    assert_eq!(rows.len(), 1, "{created:?}");
    assert!(rows[0]["ID"].starts_with("acct_"), "{created:?}");
    assert_eq!(rows[0]["NAME"], "Acme Corp");
    assert_eq!(rows[0]["EXTERNAL ID"], "cus_1");
    assert_eq!(rows[0]["LOW BALANCE"], "100");
    let acme = rows[0]["ID"].clone();

    let beta = credits(&app, &["accounts", "create", "--name", "Beta", "--json"]).ok();
    let beta_json = beta.json();
    assert_eq!(beta_json["name"], "Beta");
    assert_eq!(beta_json["externalId"], Value::Null);
    let beta = id_of(&beta);

    // The JSON is the service's own answer.
    let got = credits(&app, &["accounts", "get", &beta, "--json"]).ok();
    assert_eq!(
        got.json(),
        app.get(&format!("/v2/accounts/{beta}")).await.json
    );
    let got = credits(&app, &["accounts", "get", &acme]).ok().table();
    assert_eq!(got[0]["ID"], acme);
    assert_eq!(got[0]["LOW BALANCE"], "100");

    let list = credits(&app, &["accounts", "list"]).ok().table();
    let ids: Vec<&str> = list.iter().map(|row| row["ID"].as_str()).collect();
    assert_eq!(ids, [beta.as_str(), acme.as_str()], "newest first");
    let filtered = credits(&app, &["accounts", "list", "--external-id", "cus_1"])
        .ok()
        .table();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["ID"], acme);

    // A purchase with every option, and a grant with none.
    let purchase = credits(
        &app,
        &[
            "credits",
            "purchase",
            "--account",
            &acme,
            "--amount",
            "1000",
            "--service",
            "smartcheck",
            "--expires-at",
            "2099-12-31T23:59:59Z",
            "--priority",
            "-2",
            "--reference",
            "pay_0001",
            "--description",
            "SmartCheck pack",
            "--json",
        ],
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

    let grant = credits(
        &app,
        &["credits", "grant", "--account", &acme, "--amount", "50"],
    )
    .ok();
    let grant = grant.table();
    assert_eq!(grant[0]["KIND"], "grant");
    assert_eq!(grant[0]["SERVICE"], "any");
    assert_eq!(grant[0]["AMOUNT"], "50");
    assert_eq!(grant[0]["EXPIRES AT"], "-");
    assert_eq!(grant[0]["STATUS"], "active");
    let grant_id = grant[0]["ID"].clone();

    // The billing system retrying a payment: 409, exit 1, nothing on stdout.
    credits(
        &app,
        &[
            "credits",
            "purchase",
            "--account",
            &acme,
            "--amount",
            "1000",
            "--reference",
            "pay_0001",
        ],
    )
    .fails(1, "duplicate_reference");

    let records = credits(&app, &["credits", "list", "--account", &acme])
        .ok()
        .table();
    let ids: Vec<&str> = records.iter().map(|row| row["ID"].as_str()).collect();
    assert_eq!(ids, [grant_id.as_str(), purchase_id.as_str()]);
    let none = credits(&app, &["credits", "list", "--account", &beta]).ok();
    assert_eq!(none.stdout.lines().count(), 1, "only the header: {none:?}");
    assert!(none.table().is_empty());

    let balance = credits(&app, &["balance", "--account", &acme]).ok();
    let rows = balance
        .stdout
        .lines()
        .take_while(|line| !line.starts_with("next expiry"))
        .collect::<Vec<_>>()
        .join("\n");
    let rows = table(&rows);
    let by_service: BTreeMap<&str, (&str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row["SERVICE"].as_str(),
                (row["AVAILABLE"].as_str(), row["RESERVED"].as_str()),
            )
        })
        .collect();
    let expected = BTreeMap::from([
        ("any", ("50", "0")),
        ("smartcheck", ("1000", "0")),
        ("total", ("1050", "0")),
    ]);
    assert_eq!(by_service, expected, "{balance:?}");
    let last = balance.stdout.lines().last().unwrap();
    assert_eq!(
        last,
        format!("next expiry: 1000 credits of {purchase_id} at 2099-12-31T23:59:59Z")
    );
    let balance = credits(&app, &["balance", "--account", &acme, "--json"])
        .ok()
        .json();
    assert_eq!(balance["available"], 1050);
    assert_eq!(balance["byService"]["smartcheck"]["available"], 1000);

    // Void what is left of the grant.
    let voided = credits(&app, &["credits", "void", &grant_id, "--reason", "mistake"])
        .ok()
        .table();
    assert_eq!(voided[0]["STATUS"], "voided");
    assert_eq!(voided[0]["REMAINING"], "0");
    let got = credits(&app, &["credits", "get", &grant_id, "--json"])
        .ok()
        .json();
    assert_eq!(got["voidedAmount"], 50);
    assert_eq!(got, app.credit(&grant_id).await);
    let voided_list = credits(&app, &["credits", "list", "--status", "voided"])
        .ok()
        .table();
    assert_eq!(voided_list.len(), 1);
    assert_eq!(voided_list[0]["ID"], grant_id);
    credits(&app, &["credits", "void", &grant_id]).fails(1, "invalid_state");
    assert_eq!(app.balance(&acme).await["available"], 1000);
}

#[tokio::test]
async fn usage_records_charges_and_refuses_beyond_balance() {
    let app = common::spawn_app().await;
    let account = app.create_account().await;
    let record = app
        .purchase(&account, 100, json!({"service": "smartcheck"}))
        .await;
    let record = record["id"].as_str().unwrap().to_string();

    // Without a key the CLI generates one and tells it on stderr.
    let first = credits(
        &app,
        &[
            "usage",
            "record",
            "--account",
            &account,
            "--service",
            "smartcheck",
            "--quantity",
            "30",
        ],
    )
    .ok();
    assert!(first.stderr.contains("idempotency key: cli_"), "{first:?}");
    let rows = first.table();
    assert!(rows[0]["ID"].starts_with("use_"), "{first:?}");
    assert_eq!(rows[0]["CREDITS"], "30");
    assert_eq!(rows[0]["BALANCE AFTER"], "70");
    assert_eq!(rows[0]["SERVICE"], "smartcheck");

    // With a key, a retry replays the first answer and charges once.
    let args = [
        "usage",
        "record",
        "--account",
        &account,
        "--service",
        "smartcheck",
        "--quantity",
        "20",
        "--idempotency-key",
        "order-42",
        "--metadata",
        "order=42",
        "--json",
    ];
    let once = credits(&app, &args).ok();
    assert!(!once.stderr.contains("idempotency key:"), "{once:?}");
    assert!(!once.stderr.contains("replayed"), "{once:?}");
    let twice = credits(&app, &args).ok();
    assert!(twice.stderr.contains("replayed"), "{twice:?}");
    assert_eq!(once.json(), twice.json());
    assert_eq!(once.json()["metadata"], json!({"order": "42"}));
    assert_eq!(
        once.json()["allocations"],
        json!([{"creditId": record, "credits": 20}])
    );
    assert_eq!(app.balance(&account).await["available"], 50);

    // Beyond the balance: 402, exit 1, insufficient_credits on stderr, nothing charged.
    let refused = credits(
        &app,
        &[
            "usage",
            "record",
            "--account",
            &account,
            "--service",
            "smartcheck",
            "--quantity",
            "51",
        ],
    )
    .fails(1, "insufficient_credits");
    assert!(refused.stderr.contains("402"), "{refused:?}");
    assert_eq!(app.balance(&account).await["available"], 50);
    let refused_json = credits(
        &app,
        &[
            "usage",
            "record",
            "--account",
            &account,
            "--service",
            "smartcheck",
            "--quantity",
            "51",
            "--json",
        ],
    );
    refused_json.fails(1, "insufficient_credits");

    // The operator sets the cost explicitly; a service without credits of its own is refused.
    let explicit = credits(
        &app,
        &[
            "usage",
            "record",
            "--account",
            &account,
            "--service",
            "smartcheck",
            "--quantity",
            "3",
            "--credits",
            "5",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(explicit["credits"], 5);
    assert_eq!(explicit["quantity"], 3);
    assert_eq!(explicit["balanceAfter"], 45);
    credits(
        &app,
        &["usage", "record", "--account", &account, "--service", "api"],
    )
    .fails(1, "insufficient_credits");

    let listed = credits(&app, &["usage", "list", "--account", &account, "--json"])
        .ok()
        .json();
    let charged: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["credits"])
        .collect();
    assert_eq!(
        charged,
        [&json!(5), &json!(20), &json!(30)],
        "newest first: {listed}"
    );
    let table_rows = credits(&app, &["usage", "list", "--account", &account])
        .ok()
        .table();
    assert_eq!(table_rows.len(), 3);
    assert_eq!(
        table_rows[0]["API KEY"],
        listed["data"][0]["actor"]["apiKeyId"].as_str().unwrap()
    );
    assert_eq!(table_rows[0]["MEMBER"], "-");

    // The ledger: a purchase and three usages, as a table and as CSV.
    let ledger = credits(&app, &["ledger", "--account", &account])
        .ok()
        .table();
    let types: Vec<&str> = ledger.iter().map(|row| row["TYPE"].as_str()).collect();
    assert_eq!(types, ["usage", "usage", "usage", "purchase"]);
    assert_eq!(ledger[0]["REMAINING AFTER"], "45");
    assert_eq!(ledger[3]["CREDIT"], record);
    let purchases = credits(
        &app,
        &["ledger", "--account", &account, "--type", "purchase"],
    )
    .ok();
    assert_eq!(purchases.table().len(), 1, "{purchases:?}");
    let csv = credits(&app, &["ledger", "--account", &account, "--csv"]).ok();
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "id,accountId,creditId,type,credits,remainingAfter,usageId,reservationId,memberId,apiKeyId,createdAt"
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

    let first = credits(&app, &["accounts", "list", "--limit", "2"]).ok();
    let ids: Vec<String> = first.table().iter().map(|row| row["ID"].clone()).collect();
    assert_eq!(ids, created[..2]);
    assert!(
        first
            .stderr
            .contains("more results: add --all, or --cursor "),
        "{first:?}"
    );
    let cursor = first.stderr.trim().rsplit(' ').next().unwrap().to_string();
    let next = credits(
        &app,
        &["accounts", "list", "--limit", "2", "--cursor", &cursor],
    )
    .ok();
    let ids: Vec<String> = next.table().iter().map(|row| row["ID"].clone()).collect();
    assert_eq!(ids, created[2..4]);

    let all = credits(&app, &["accounts", "list", "--all", "--limit", "2"]).ok();
    let ids: Vec<String> = all.table().iter().map(|row| row["ID"].clone()).collect();
    assert_eq!(ids, created);
    assert!(all.stderr.is_empty(), "{all:?}");

    // --json: the raw first page, or with --all one merged list.
    let page = credits(&app, &["accounts", "list", "--limit", "2", "--json"])
        .ok()
        .json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["hasMore"], true);
    assert!(page["nextCursor"].is_string());
    let merged = credits(
        &app,
        &["accounts", "list", "--all", "--limit", "2", "--json"],
    )
    .ok()
    .json();
    let ids: Vec<&str> = merged["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, created);
    assert_eq!(merged["hasMore"], false);
    assert_eq!(merged["nextCursor"], Value::Null);
    let default_all = credits(&app, &["accounts", "list", "--all", "--json"])
        .ok()
        .json();
    assert_eq!(default_all["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn services_catalog_and_operation_prices() {
    let app = common::spawn_app().await;
    let seeded = credits(&app, &["services", "list"]).ok().table();
    let ids: Vec<&str> = seeded.iter().map(|row| row["ID"].as_str()).collect();
    for id in [
        "smartcheck",
        "smartaccess",
        "smartenroll",
        "api",
        "biometric",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(seeded.iter().all(|row| row["UNIT COST"] == "1"));

    let created = credits(
        &app,
        &[
            "services",
            "create",
            "--id",
            "ocr",
            "--name",
            "Document OCR",
            "--unit-cost",
            "2",
            "--operation",
            "page=3",
            "--operation",
            "document=10",
        ],
    )
    .ok()
    .table();
    assert_eq!(created[0]["ID"], "ocr");
    assert_eq!(created[0]["NAME"], "Document OCR");
    assert_eq!(created[0]["OPERATIONS"], "document=10,page=3");
    credits(
        &app,
        &[
            "services",
            "create",
            "--id",
            "ocr",
            "--name",
            "Again",
            "--unit-cost",
            "1",
        ],
    )
    .fails(1, "validation_failed");

    let account = app.create_account().await;
    app.purchase(&account, 100, json!({"service": "ocr"})).await;
    let charged = credits(
        &app,
        &[
            "usage",
            "record",
            "--account",
            &account,
            "--service",
            "ocr",
            "--operation",
            "page",
            "--quantity",
            "4",
            "--json",
        ],
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
    credits(&app, &["credits", "purchase", "--account", &account]).fails(2, "--amount");
    credits(
        &app,
        &[
            "credits",
            "purchase",
            "--account",
            &account,
            "--amount",
            "ten",
        ],
    )
    .fails(2, "--amount");
    credits(&app, &["credits", "list", "--status", "spent"]).fails(2, "--status");
    credits(
        &app,
        &[
            "members",
            "create",
            "--account",
            &account,
            "--email",
            "a@example.com",
            "--role",
            "boss",
        ],
    )
    .fails(2, "--role");
    credits(
        &app,
        &[
            "budgets",
            "create",
            "--account",
            &account,
            "--name",
            "cap",
            "--scope",
            "member",
            "--period",
            "month",
            "--limit",
            "10",
        ],
    )
    .fails(2, "member:ID");
    credits(
        &app,
        &[
            "budgets",
            "create",
            "--account",
            &account,
            "--name",
            "cap",
            "--scope",
            "team:x",
            "--period",
            "month",
            "--limit",
            "10",
        ],
    )
    .fails(2, "unknown scope");
    credits(&app, &["ledger", "--csv", "--json"]).fails(2, "--csv");
    credits(&app, &["accounts", "frobnicate"]).fails(2, "frobnicate");
    run_with(&app.address, None, &["balance", "--account", &account]).fails(2, "CREDITS_KEY");
    run_with("ftp://example.com", Some(ADMIN_KEY), &["accounts", "list"]).fails(2, "--url");

    // Answered by the service: exit 1 with the problem's code and detail.
    let missing = credits(
        &app,
        &["accounts", "get", "acct_01JD8X5Q7M3N2P4R6T8V0W2Y4Z"],
    )
    .fails(1, "not_found");
    assert!(
        missing.stderr.starts_with("error: not_found: "),
        "{missing:?}"
    );
    run_with(
        &app.address,
        Some("ck_wrong_key_000000000000000000000"),
        &["accounts", "list"],
    )
    .fails(1, "unauthorized");
    credits(
        &app,
        &[
            "credits",
            "purchase",
            "--account",
            &account,
            "--amount",
            "10",
            "--expires-at",
            "yesterday",
        ],
    )
    .fails(1, "validation_failed");
    credits(
        &app,
        &[
            "credits",
            "purchase",
            "--account",
            &account,
            "--amount",
            "9007199254740992",
        ],
    )
    .fails(1, "validation_failed");

    // Nothing listening: exit 1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    run_with(&closed, Some(ADMIN_KEY), &["accounts", "list"]).fails(1, "cannot reach");

    // The connection options may follow the noun or the verb, and --url and --key beat the env.
    let listed = run_with(
        &closed,
        None,
        &[
            "accounts",
            "--json",
            "list",
            "--url",
            &app.address,
            "--key",
            ADMIN_KEY,
        ],
    )
    .ok()
    .json();
    assert_eq!(listed["data"][0]["id"], account.as_str());
}

#[tokio::test]
async fn a_team_is_set_up_and_spends_from_the_cli() {
    let app = common::spawn_app().await;
    let account = id_of(&credits(&app, &["accounts", "create", "--name", "Acme", "--json"]).ok());
    credits(
        &app,
        &[
            "credits",
            "purchase",
            "--account",
            &account,
            "--amount",
            "1000",
            "--service",
            "smartcheck",
        ],
    )
    .ok();

    // A member, as a table and as JSON.
    let member = credits(
        &app,
        &[
            "members",
            "create",
            "--account",
            &account,
            "--email",
            "alice@example.com",
            "--name",
            "Alice",
            "--role",
            "member",
        ],
    )
    .ok()
    .table();
    assert!(member[0]["ID"].starts_with("mem_"), "{member:?}");
    assert_eq!(member[0]["EMAIL"], "alice@example.com");
    assert_eq!(member[0]["ROLE"], "member");
    let alice = member[0]["ID"].clone();
    let bob = credits(
        &app,
        &[
            "members",
            "create",
            "--account",
            &account,
            "--email",
            "bob@example.com",
            "--role",
            "viewer",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(bob["name"], Value::Null);
    assert_eq!(bob["role"], "viewer");
    let bob = bob["id"].as_str().unwrap().to_string();
    let members = credits(&app, &["members", "list", "--account", &account])
        .ok()
        .table();
    let ids: Vec<&str> = members.iter().map(|row| row["ID"].as_str()).collect();
    assert_eq!(ids, [bob.as_str(), alice.as_str()]);
    let got = credits(&app, &["members", "get", &alice, "--json"])
        .ok()
        .json();
    assert_eq!(got["name"], "Alice");

    // A key bound to Alice: the secret is shown once, in its own column.
    let created = credits(
        &app,
        &[
            "keys",
            "create",
            "--account",
            &account,
            "--name",
            "alice-ci",
            "--member",
            &alice,
            "--scope",
            "usage:write",
            "--scope",
            "credits:read",
        ],
    )
    .ok();
    assert!(created.stderr.contains("shown only once"), "{created:?}");
    let key = created.table();
    assert!(key[0]["ID"].starts_with("key_"), "{created:?}");
    assert_eq!(key[0]["MEMBER"], alice);
    assert_eq!(key[0]["SCOPES"], "usage:write,credits:read");
    let secret = key[0]["SECRET"].clone();
    assert!(secret.starts_with(&key[0]["PREFIX"]), "{created:?}");
    let key_id = key[0]["ID"].clone();
    let operator_key = credits(&app, &["keys", "create", "--name", "ops", "--json"])
        .ok()
        .json();
    assert_eq!(operator_key["accountId"], Value::Null);
    assert!(operator_key["secret"].is_string());
    let keys = credits(&app, &["keys", "list", "--account", &account]).ok();
    assert!(!keys.stdout.contains("SECRET"), "never listed: {keys:?}");
    assert!(!keys.stdout.contains(&secret), "never listed: {keys:?}");
    let keys = keys.table();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["ID"], key_id);

    // Budgets: 300 a month for Alice (block), and a notify-only lifetime budget for the account.
    let budget = credits(
        &app,
        &[
            "budgets",
            "create",
            "--account",
            &account,
            "--name",
            "alice-monthly",
            "--scope",
            &format!("member:{alice}"),
            "--period",
            "month",
            "--limit",
            "300",
        ],
    )
    .ok()
    .table();
    assert!(budget[0]["ID"].starts_with("bud_"));
    assert_eq!(budget[0]["SCOPE"], format!("member:{alice}"));
    assert_eq!(budget[0]["ENFORCEMENT"], "block");
    assert_eq!(budget[0]["SPENT"], "0");
    let alice_budget = budget[0]["ID"].clone();
    let account_budget = credits(
        &app,
        &[
            "budgets",
            "create",
            "--account",
            &account,
            "--name",
            "all",
            "--scope",
            "account",
            "--period",
            "lifetime",
            "--limit",
            "5000",
            "--enforcement",
            "notify",
            "--threshold",
            "50",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(
        account_budget["scope"],
        json!({"type": "account", "id": null})
    );
    assert_eq!(account_budget["thresholds"], json!([50]));
    let account_budget = account_budget["id"].as_str().unwrap().to_string();

    // Alice's key spends; the usage carries both her and the key.
    let alice_run = |args: &[&str]| run_with(&app.address, Some(&secret), args);
    for _ in 0..2 {
        let spent = alice_run(&[
            "usage",
            "record",
            "--account",
            &account,
            "--service",
            "smartcheck",
            "--quantity",
            "100",
        ])
        .ok()
        .table();
        assert_eq!(spent[0]["MEMBER"], alice);
        assert_eq!(spent[0]["API KEY"], key_id);
    }
    alice_run(&[
        "usage",
        "record",
        "--account",
        &account,
        "--service",
        "smartcheck",
        "--quantity",
        "150",
    ])
    .fails(1, "budget_exceeded");
    alice_run(&[
        "usage",
        "record",
        "--account",
        &account,
        "--service",
        "smartcheck",
        "--member",
        &bob,
    ])
    .fails(1, "forbidden");
    let balance = alice_run(&["balance", "--account", &account, "--json"])
        .ok()
        .json();
    assert_eq!(balance["available"], 800);
    let budgets = credits(&app, &["budgets", "list", "--account", &account])
        .ok()
        .table();
    assert_eq!(budgets.len(), 2);
    assert!(
        budgets.iter().all(|row| row["SPENT"] == "200"),
        "{budgets:?}"
    );
    let got = credits(&app, &["budgets", "get", &alice_budget, "--json"])
        .ok()
        .json();
    assert_eq!(got["spent"], 200);

    // Revoking the key locks it out at once.
    let revoked = credits(&app, &["keys", "revoke", &key_id]).ok().table();
    assert_eq!(revoked[0]["ID"], key_id);
    assert_ne!(revoked[0]["REVOKED AT"], "-");
    alice_run(&["balance", "--account", &account]).fails(1, "unauthorized");

    // Deleting a budget and a member.
    let deleted = credits(&app, &["budgets", "delete", &account_budget])
        .ok()
        .table();
    assert_eq!(deleted[0]["ID"], account_budget);
    assert_eq!(deleted[0]["DELETED"], "true");
    let budgets = credits(&app, &["budgets", "list", "--account", &account])
        .ok()
        .table();
    assert_eq!(budgets.len(), 1);
    let deleted = credits(&app, &["members", "delete", &bob, "--json"])
        .ok()
        .json();
    assert_eq!(deleted, json!({"id": bob, "deleted": true}));
    credits(&app, &["members", "get", &bob]).fails(1, "not_found");
}
