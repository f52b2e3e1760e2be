//! Goal: no acknowledged write is lost through `kill -9` or a SIGTERM under load (spec section
//! 10), and after the restart every record keeps the equation of section 5, the sum of usage
//! credits equals the sum of `used`, and every acknowledged idempotency key still replays.
//!
//! Method: black box over real HTTP against the real binary. Concurrent workers, each on its own
//! account, write accounts, purchases, usages (charged and refused), reservations, captures and
//! releases, every write with an `Idempotency-Key`, and log every answer they get. The server is
//! then killed (SIGKILL right after the last acknowledgement, or SIGKILL or SIGTERM while requests
//! are in flight), restarted on the same data directory, and compared with the log: each
//! acknowledged object is read back with its numbers, and each logged request is sent again and
//! must replay its first answer byte for byte. A request whose answer never arrived may or may
//! not have landed; the checks allow exactly that much and no more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/race.rs"]
mod race;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{json, Value};

use common::TestApp;
use race::{allocations_into, assert_equation, key, list_all, num, Target};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Account,
    Purchase,
    Usage,
    Hold,
    Capture,
    Release,
}

/// One write: the request, and its answer when one arrived.
#[derive(Debug)]
struct Write {
    kind: Kind,
    path: String,
    key: String,
    body: String,
    /// What it should cost or hold (usages, holds), or the purchase amount.
    credits: u64,
    answer: Option<(u16, String, Value)>,
}

impl Write {
    fn status(&self) -> u16 {
        self.answer.as_ref().map_or(0, |a| a.0)
    }
    fn json(&self) -> &Value {
        &self.answer.as_ref().expect("an acknowledged write").2
    }
    fn id(&self) -> String {
        self.json()["id"].as_str().expect("an id").to_string()
    }
}

/// What one worker did on its account.
#[derive(Debug, Default)]
struct Log {
    account: String,
    /// Every answered write, in order.
    acked: Vec<Write>,
    /// The write whose answer never came (the server died meanwhile), if any.
    lost: Option<Write>,
    /// Answers no request here should get (a 5xx, or a status the request cannot have).
    unexpected: Vec<String>,
}

impl Log {
    /// Sends one write and logs it; `false` when no answer came.
    async fn send(
        &mut self,
        target: &Target,
        kind: Kind,
        path: String,
        body: Value,
        credits: u64,
        expected: u16,
    ) -> bool {
        let key = key(&format!("{kind:?}").to_lowercase());
        let body = body.to_string();
        let mut write = Write { kind, path, key, body, credits, answer: None };
        match target.try_post(&write.path, &write.body, Some(&write.key)).await {
            Ok(answer) => {
                if answer.status != expected {
                    self.unexpected.push(format!(
                        "POST {} {}: expected {expected}, got {answer:?}",
                        write.path, write.body
                    ));
                }
                write.answer = Some((answer.status, answer.text, answer.json));
                self.acked.push(write);
                true
            }
            Err(_) => {
                self.lost = Some(write);
                false
            }
        }
    }

    fn acked_of(&self, kind: Kind, status: u16) -> impl Iterator<Item = &Write> {
        self.acked.iter().filter(move |w| w.kind == kind && w.status() == status)
    }

    fn lost_of(&self, kind: Kind) -> Option<&Write> {
        self.lost.as_ref().filter(|w| w.kind == kind)
    }
}

fn account_body(name: &str) -> Value {
    json!({ "name": name })
}

fn purchase_body(account: &str, amount: u64, service: &str) -> Value {
    json!({"accountId": account, "amount": amount, "service": service,
           "reference": key("payment")})
}

fn usage_body(account: &str, quantity: u64) -> Value {
    json!({"accountId": account, "service": "smartcheck", "quantity": quantity})
}

fn hold_body(account: &str, credits: u64) -> Value {
    json!({"accountId": account, "service": "smartcheck", "credits": credits,
           "ttlSeconds": 3600})
}

/// Creates the worker's account and first records; the account id is in the log.
async fn open_account(target: &Target, log: &mut Log, name: &str, records: &[(u64, &str)]) {
    let sent =
        log.send(target, Kind::Account, "/v2/accounts".into(), account_body(name), 0, 201).await;
    assert!(sent && log.acked[0].status() == 201, "{log:?}");
    log.account = log.acked[0].id();
    for &(amount, service) in records {
        let body = purchase_body(&log.account, amount, service);
        let sent = log.send(target, Kind::Purchase, "/v2/credits".into(), body, amount, 201).await;
        assert!(sent, "{log:?}");
    }
}

/// Sends every acknowledged write again: each must replay its first answer byte for byte.
async fn assert_every_key_replays(app: &TestApp, log: &Log) {
    for write in &log.acked {
        let (status, text, _) = write.answer.as_ref().unwrap();
        let replay = app.post_raw(&write.path, &write.body, Some(&write.key)).await;
        assert_eq!(
            replay.status, *status,
            "replay of key {} on POST {}: {replay:?}",
            write.key, write.path
        );
        assert_eq!(
            replay.header("idempotent-replayed"),
            Some("true"),
            "replay of key {} on POST {}: {replay:?}",
            write.key,
            write.path
        );
        assert_eq!(
            &replay.text, text,
            "replay of key {} on POST {} is byte-identical",
            write.key, write.path
        );
    }
}

/// Section 5 and 10 on one account: the equation on every record, and usage credits = used.
async fn assert_account_invariants(app: &TestApp, account: &str) -> (Vec<Value>, Vec<Value>) {
    let records = list_all(app, &format!("/v2/credits?accountId={account}")).await;
    for record in &records {
        assert_equation(record);
    }
    let usages = list_all(app, &format!("/v2/usage?accountId={account}")).await;
    let used: u64 = records.iter().map(|r| num(r, "used")).sum();
    let usage_credits: u64 = usages.iter().map(|u| num(u, "credits")).sum();
    assert_eq!(
        usage_credits, used,
        "account {account}: the sum of usage credits equals the sum of used"
    );
    (records, usages)
}

// ---------------------------------------------------------------------------------------------
// SIGKILL right after the last acknowledgement: the state must be exactly what was acknowledged.

/// Sequential writes on one account, every kind, every answer logged.
async fn exact_worker(target: Target, worker: usize) -> Log {
    let mut log = Log::default();
    open_account(
        &target,
        &mut log,
        &format!("crash-{worker}"),
        &[(60, "smartcheck"), (200, "any")],
    )
    .await;
    let account = log.account.clone();
    let mut holds = 0;
    for i in 0..40u64 {
        match i % 10 {
            3 => {
                let body = purchase_body(&account, 20, "any");
                log.send(&target, Kind::Purchase, "/v2/credits".into(), body, 20, 201).await;
            }
            5 | 8 => {
                let body = hold_body(&account, 10);
                log.send(&target, Kind::Hold, "/v2/reservations".into(), body, 10, 201).await;
                let hold = log.acked.last().unwrap().id();
                holds += 1;
                match holds % 3 {
                    0 => {
                        let path = format!("/v2/reservations/{hold}/capture");
                        log.send(&target, Kind::Capture, path, json!({}), 10, 200).await;
                    }
                    1 => {
                        let path = format!("/v2/reservations/{hold}/release");
                        log.send(&target, Kind::Release, path, json!({}), 10, 200).await;
                    }
                    _ => {}
                }
            }
            7 => {
                let body = usage_body(&account, 1_000_000);
                log.send(&target, Kind::Usage, "/v2/usage".into(), body, 1_000_000, 402).await;
            }
            _ => {
                let quantity = 1 + i % 5;
                let body = usage_body(&account, quantity);
                log.send(&target, Kind::Usage, "/v2/usage".into(), body, quantity, 201).await;
            }
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_right_after_the_last_acknowledgement_loses_nothing() {
    let mut app = common::spawn_app().await;
    let target = Target::of(&app);
    let workers = (0..16).map(|w| tokio::spawn(exact_worker(target.clone(), w)));
    let logs: Vec<Log> = join_all(workers)
        .await
        .into_iter()
        .map(|joined| joined.expect("the worker did not panic"))
        .collect();
    // The last acknowledgement has just arrived: crash now.
    app.kill();
    for log in &logs {
        assert!(log.lost.is_none(), "every write was answered: {log:?}");
        assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
    }
    let acknowledged: usize = logs.iter().map(|l| l.acked.len()).sum();
    assert!(acknowledged >= 600, "many acknowledged writes: {acknowledged}");

    let app = common::spawn_app_in(&app.data_dir).await;
    for log in &logs {
        assert_exact_state(&app, log).await;
    }
    for log in &logs {
        assert_every_key_replays(&app, log).await;
    }
    // Replays changed nothing.
    for log in &logs {
        assert_exact_state(&app, log).await;
    }
}

/// The account's state is exactly what its acknowledged writes say.
async fn assert_exact_state(app: &TestApp, log: &Log) {
    let account = &log.account;
    let found = app.get(&format!("/v2/accounts/{account}")).await;
    assert_eq!(found.status, 200, "acknowledged account {account}: {found:?}");
    assert_eq!(found.json, *log.acked[0].json(), "account {account}");

    // Model: what each record should have used and reserved, from the acknowledged allocations.
    let mut used: HashMap<String, u64> = HashMap::new();
    let mut reserved: HashMap<String, u64> = HashMap::new();
    let mut hold_state: HashMap<String, (&'static str, u64)> = HashMap::new();
    let mut hold_allocations: HashMap<String, Value> = HashMap::new();
    for write in &log.acked {
        match (write.kind, write.status()) {
            (Kind::Usage, 201) => allocations_into(&mut used, &write.json()["allocations"]),
            (Kind::Hold, 201) => {
                hold_state.insert(write.id(), ("held", write.credits));
                hold_allocations.insert(write.id(), write.json()["allocations"].clone());
            }
            (Kind::Capture, 200) => {
                hold_state.insert(write.id(), ("captured", write.credits));
            }
            (Kind::Release, 200) => {
                hold_state.insert(write.id(), ("released", write.credits));
            }
            _ => {}
        }
    }
    for (hold, (state, _)) in &hold_state {
        match *state {
            "held" => allocations_into(&mut reserved, &hold_allocations[hold]),
            "captured" => allocations_into(&mut used, &hold_allocations[hold]),
            _ => {}
        }
    }

    let (records, usages) = assert_account_invariants(app, account).await;
    let acked_records: HashMap<String, u64> =
        log.acked_of(Kind::Purchase, 201).map(|w| (w.id(), w.credits)).collect();
    let listed: HashSet<String> =
        records.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        listed,
        acked_records.keys().cloned().collect::<HashSet<_>>(),
        "account {account}: exactly the acknowledged credit records"
    );
    for record in &records {
        let id = record["id"].as_str().unwrap();
        let used = used.get(id).copied().unwrap_or(0);
        let reserved = reserved.get(id).copied().unwrap_or(0);
        assert_eq!(num(record, "amount"), acked_records[id], "{record}");
        assert_eq!(num(record, "used"), used, "{record}");
        assert_eq!(num(record, "reserved"), reserved, "{record}");
        assert_eq!(num(record, "remaining"), acked_records[id] - used - reserved, "{record}");
        assert_eq!(num(record, "expiredAmount"), 0, "{record}");
        assert_eq!(num(record, "voidedAmount"), 0, "{record}");
        let status =
            if num(record, "remaining") == 0 && reserved == 0 { "depleted" } else { "active" };
        assert_eq!(record["status"], status, "{record}");
    }

    // Usages: every acknowledged one as it was answered, plus one per captured hold, no more.
    let by_id: HashMap<&str, &Value> =
        usages.iter().map(|u| (u["id"].as_str().unwrap(), u)).collect();
    let mut expected_count = 0;
    for write in log.acked_of(Kind::Usage, 201) {
        expected_count += 1;
        let listed = by_id
            .get(write.id().as_str())
            .unwrap_or_else(|| panic!("acknowledged usage {} is lost: {}", write.id(), write.body));
        assert_eq!(*listed, write.json(), "usage {} as acknowledged", write.id());
        assert_eq!(num(listed, "credits"), write.credits, "{listed}");
    }
    for (hold, (state, credits)) in &hold_state {
        let reservation = app.get(&format!("/v2/reservations/{hold}")).await;
        assert_eq!(reservation.status, 200, "acknowledged hold {hold}: {reservation:?}");
        assert_eq!(reservation.json["status"], *state, "{reservation:?}");
        assert_eq!(reservation.json["credits"], *credits, "{reservation:?}");
        let captured = if *state == "captured" { *credits } else { 0 };
        assert_eq!(reservation.json["captured"], captured, "{reservation:?}");
        let capture_usages: Vec<&&Value> =
            by_id.values().filter(|u| u["reservationId"] == hold.as_str()).collect();
        if *state == "captured" {
            expected_count += 1;
            assert_eq!(capture_usages.len(), 1, "hold {hold}: {capture_usages:?}");
            assert_eq!(num(capture_usages[0], "credits"), *credits);
        } else {
            assert!(capture_usages.is_empty(), "hold {hold}: {capture_usages:?}");
        }
    }
    assert_eq!(usages.len(), expected_count, "account {account}: no other usage");

    // The ledger lists every debit.
    let ledger = list_all(app, &format!("/v2/ledger?accountId={account}")).await;
    let ledger_usages: HashSet<&str> = ledger
        .iter()
        .filter(|e| e["type"] == "usage")
        .map(|e| e["usageId"].as_str().unwrap())
        .collect();
    for write in log.acked_of(Kind::Usage, 201) {
        assert!(
            ledger_usages.contains(write.id().as_str()),
            "usage {} is in the ledger",
            write.id()
        );
    }
    let debited: u64 = ledger
        .iter()
        .filter(|e| e["type"] == "usage" || e["type"] == "capture")
        .map(|e| num(e, "credits"))
        .sum();
    let used_total: u64 = records.iter().map(|r| num(r, "used")).sum();
    assert_eq!(debited, used_total, "account {account}: ledger debits = used");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL or SIGTERM while requests are in flight.

/// Shared by the churning workers and the test that stops the server.
#[derive(Default)]
struct Churn {
    acks: AtomicUsize,
    in_flight: AtomicUsize,
}

/// Writes on one account without pause until a request goes unanswered.
async fn churn_worker(target: Target, worker: usize, churn: Arc<Churn>) -> Log {
    let mut log = Log::default();
    open_account(&target, &mut log, &format!("churn-{worker}"), &[(100_000, "smartcheck")]).await;
    let account = log.account.clone();
    for i in 0u64.. {
        let (kind, path, body, credits, expected) = match i % 10 {
            3 => (Kind::Purchase, "/v2/credits", purchase_body(&account, 50, "any"), 50, 201),
            6 => (Kind::Hold, "/v2/reservations", hold_body(&account, 4), 4, 201),
            9 => (
                Kind::Usage,
                "/v2/usage",
                usage_body(&account, 1_000_000_000_000),
                1_000_000_000_000,
                402,
            ),
            _ => {
                let quantity = 1 + i % 3;
                let body = usage_body(&account, quantity);
                (Kind::Usage, "/v2/usage", body, quantity, 201)
            }
        };
        churn.in_flight.fetch_add(1, Ordering::SeqCst);
        let answered = log.send(&target, kind, path.into(), body, credits, expected).await;
        churn.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !answered {
            break;
        }
        churn.acks.fetch_add(1, Ordering::SeqCst);
    }
    log
}

/// Starts `count` churning workers, waits for `acks` acknowledgements and returns the workers.
async fn churn_until(
    app: &TestApp,
    count: usize,
    acks: usize,
) -> (Arc<Churn>, Vec<tokio::task::JoinHandle<Log>>) {
    let churn = Arc::new(Churn::default());
    let target = Target::of(app);
    let workers =
        (0..count).map(|w| tokio::spawn(churn_worker(target.clone(), w, churn.clone()))).collect();
    let started = Instant::now();
    while churn.acks.load(Ordering::SeqCst) < acks {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {} acknowledgements in 15 s",
            churn.acks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (churn, workers)
}

async fn join_logs(workers: Vec<tokio::task::JoinHandle<Log>>) -> Vec<Log> {
    join_all(workers)
        .await
        .into_iter()
        .map(|joined| joined.expect("the worker did not panic"))
        .collect()
}

/// Every acknowledged write is there; an unanswered one may be there too, nothing else is.
async fn assert_nothing_acknowledged_lost(app: &TestApp, log: &Log) {
    let account = &log.account;
    let (records, usages) = assert_account_invariants(app, account).await;

    // Credit records: every acknowledged purchase, and at most the unanswered one besides.
    let ids: HashSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut acked_purchases = 0;
    for write in log.acked_of(Kind::Purchase, 201) {
        acked_purchases += 1;
        let record = app.get(&format!("/v2/credits/{}", write.id())).await;
        assert_eq!(record.status, 200, "acknowledged purchase {}: {record:?}", write.id());
        assert_eq!(num(&record.json, "amount"), write.credits, "{record:?}");
        assert!(ids.contains(write.id().as_str()));
    }
    let extra = records.len() - acked_purchases;
    assert!(
        extra == 0 || (extra == 1 && log.lost_of(Kind::Purchase).is_some()),
        "account {account}: {extra} credit records nobody acknowledged; lost {:?}",
        log.lost
    );

    // Usages: every acknowledged one as answered, and at most the unanswered one besides.
    let by_id: HashMap<&str, &Value> =
        usages.iter().map(|u| (u["id"].as_str().unwrap(), u)).collect();
    let mut acked_usages = HashSet::new();
    for write in log.acked_of(Kind::Usage, 201) {
        let id = write.id();
        let listed = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged usage {id} is lost: {}", write.body));
        assert_eq!(*listed, write.json(), "usage {id} as acknowledged");
        acked_usages.insert(id);
    }
    let unacknowledged: Vec<&&Value> =
        by_id.iter().filter(|(id, _)| !acked_usages.contains(**id)).map(|(_, u)| u).collect();
    match log.lost_of(Kind::Usage) {
        Some(lost) => assert!(
            unacknowledged.is_empty()
                || (unacknowledged.len() == 1 && num(unacknowledged[0], "credits") == lost.credits),
            "account {account}: usages nobody acknowledged {unacknowledged:?}; lost {lost:?}"
        ),
        None => assert!(
            unacknowledged.is_empty(),
            "account {account}: usages nobody acknowledged {unacknowledged:?}"
        ),
    }

    // Holds: every acknowledged one is held; reserved is theirs, and at most the unanswered one.
    let mut held = 0;
    for write in log.acked_of(Kind::Hold, 201) {
        let hold = app.get(&format!("/v2/reservations/{}", write.id())).await;
        assert_eq!(hold.status, 200, "acknowledged hold {}: {hold:?}", write.id());
        assert_eq!(hold.json["status"], "held", "{hold:?}");
        assert_eq!(num(&hold.json, "credits"), write.credits, "{hold:?}");
        held += write.credits;
    }
    let reserved: u64 = records.iter().map(|r| num(r, "reserved")).sum();
    let lost_hold = log.lost_of(Kind::Hold).map_or(0, |w| w.credits);
    assert!(
        reserved == held || reserved == held + lost_hold,
        "account {account}: reserved {reserved}, acknowledged holds {held}, lost {lost_hold}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_keeps_every_acknowledged_write() {
    let mut app = common::spawn_app().await;
    let (churn, workers) = churn_until(&app, 8, 1000).await;
    let in_flight = churn.in_flight.load(Ordering::SeqCst);
    app.kill();
    let logs = join_logs(workers).await;
    assert!(in_flight > 0, "requests were in flight at the kill");
    for log in &logs {
        assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
    }

    let app = common::spawn_app_in(&app.data_dir).await;
    for log in &logs {
        assert_nothing_acknowledged_lost(&app, log).await;
        assert_every_key_replays(&app, log).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_requests_in_flight_exits_cleanly_and_keeps_every_2xx() {
    let app = common::spawn_app().await;
    let (churn, workers) = churn_until(&app, 8, 1000).await;
    let in_flight = churn.in_flight.load(Ordering::SeqCst);
    let acks_at_signal = churn.acks.load(Ordering::SeqCst);
    let (exited_cleanly, app) = tokio::task::spawn_blocking(move || {
        let mut app = app;
        (app.terminate(), app)
    })
    .await
    .unwrap();
    let logs = join_logs(workers).await;
    assert!(in_flight > 0, "requests were in flight at the SIGTERM");
    assert!(exited_cleanly, "SIGTERM: the process exits successfully");
    for log in &logs {
        assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
    }
    let acks: usize = logs.iter().map(|l| l.acked.len()).sum();
    assert!(acks >= acks_at_signal, "{acks} >= {acks_at_signal}");

    let app = common::spawn_app_in(&app.data_dir).await;
    for log in &logs {
        assert_nothing_acknowledged_lost(&app, log).await;
        assert_every_key_replays(&app, log).await;
    }
}
