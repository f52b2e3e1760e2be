//! Goal (issue 8): no acknowledged write is lost or applied twice through many `kill -9`s in a row
//! (spec sections 5, 6, 9 and 10), with clients writing concurrently on shared accounts.
//!
//! Method: black box over real HTTP against the real binary, 20 cycles on one data directory.
//! Each cycle starts the binary, runs 12 concurrent clients doing purchases and grants, single and
//! batch usages, holds, captures and releases on 4 shared accounts, every write with an
//! idempotency key (usages also carry their key in `metadata.k`, purchases a unique `reference`,
//! so every landed write can be told apart), and SIGKILLs the server at a random moment while
//! requests are in flight (seeded; the seed is printed, `CRASH_SEED` replays a run). After each
//! restart the state is compared with the log of answers: every acknowledged write is there as
//! answered, and what nobody acknowledged is at most the writes whose answer never came, each at
//! most once. Then, as a client would, every unanswered write is retried with its key: it must
//! replay exactly when its effect was already visible, and is acknowledged from then on. At the
//! end the whole state is checked exactly (records, usages by key, holds, equation, used and
//! reserved per record, ledger sums), every acknowledged key must replay its first answer with
//! `Idempotent-Replayed: true`, and the replays must change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/race.rs"]
mod race;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;
use serde_json::{json, Value};

use common::TestApp;
use race::{allocations_into, assert_equation, key, list_all, num, Target};

const CYCLES: usize = 20;
const CLIENTS: usize = 12;
const ACCOUNTS: usize = 4;

/// SplitMix64 (`rand_xoshiro`): a small deterministic generator, so a seed replays the same
/// choices.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SplitMix64::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Purchase,
    Usage,
    Batch,
    Hold,
    Capture,
    Release,
}

impl Kind {
    fn expected(self) -> u16 {
        match self {
            Kind::Purchase | Kind::Usage | Kind::Hold => 201,
            Kind::Batch | Kind::Capture | Kind::Release => 200,
        }
    }
}

#[derive(Clone, Debug)]
struct Answered {
    status: u16,
    text: String,
    json: Value,
}

/// One write and, once it came, its answer.
#[derive(Clone, Debug)]
struct Write {
    kind: Kind,
    account: String,
    path: String,
    /// The `Idempotency-Key` header (none for a batch: its events carry their own keys).
    key: Option<String>,
    body: Value,
    /// Batch events: (idempotency key, account), in order.
    events: Vec<(String, String)>,
    /// The hold a capture or release settles.
    hold: Option<String>,
    answer: Option<Answered>,
}

impl Write {
    fn json(&self) -> &Value {
        &self.answer.as_ref().expect("an acknowledged write").json
    }
    fn acked(&self) -> bool {
        self.answer.is_some()
    }
}

#[derive(Default)]
struct Model {
    accounts: Vec<String>,
    writes: Vec<Write>,
    /// Holds known to be held and not being settled by anyone: (id, account).
    pool: Vec<(String, String)>,
    unexpected: Vec<String>,
}

#[derive(Default)]
struct Stats {
    acks: AtomicUsize,
    in_flight: AtomicUsize,
}

fn usage_event(account: &str, quantity: u64, key: &str) -> Value {
    json!({"accountId": account, "service": "smartcheck", "quantity": quantity,
           "metadata": {"k": key}})
}

fn purchase(account: &str, amount: u64, service: &str, kind: &str) -> Write {
    let key = key("buy");
    let body = json!({"accountId": account, "amount": amount, "service": service, "kind": kind,
                      "reference": format!("pay-{key}")});
    write(Kind::Purchase, account, "/v2/credits".into(), Some(key), body)
}

fn write(kind: Kind, account: &str, path: String, key: Option<String>, body: Value) -> Write {
    Write {
        kind,
        account: account.to_string(),
        path,
        key,
        body,
        events: Vec::new(),
        hold: None,
        answer: None,
    }
}

/// The next write of a client, chosen at random.
fn next_write(rng: &mut Rng, model: &Mutex<Model>) -> Write {
    let (account, settle) = {
        let mut model = model.lock().unwrap();
        let account = model.accounts[rng.below(ACCOUNTS as u64) as usize].clone();
        let roll = rng.below(100);
        let settle = if roll >= 80 && !model.pool.is_empty() {
            let index = rng.below(model.pool.len() as u64) as usize;
            Some(model.pool.swap_remove(index))
        } else {
            None
        };
        (account, (roll, settle))
    };
    match settle {
        (_, Some((hold, account))) => {
            let kind = if rng.below(2) == 0 { Kind::Capture } else { Kind::Release };
            let verb = if kind == Kind::Capture { "capture" } else { "release" };
            let path = format!("/v2/reservations/{hold}/{verb}");
            let mut w = write(kind, &account, path, Some(key(verb)), json!({}));
            w.hold = Some(hold);
            w
        }
        (roll, None) if roll < 10 => {
            let service = if rng.below(2) == 0 { "smartcheck" } else { "any" };
            let kind = if rng.below(4) == 0 { "grant" } else { "purchase" };
            purchase(&account, 50 + rng.below(450), service, kind)
        }
        (roll, None) if roll < 55 => {
            let k = key("use");
            let body = usage_event(&account, 1 + rng.below(5), &k);
            write(Kind::Usage, &account, "/v2/usage".into(), Some(k), body)
        }
        (roll, None) if roll < 65 => {
            let mut events = Vec::new();
            let mut bodies = Vec::new();
            for _ in 0..2 + rng.below(4) {
                let account = {
                    let model = model.lock().unwrap();
                    model.accounts[rng.below(ACCOUNTS as u64) as usize].clone()
                };
                let k = key("batch");
                let mut event = usage_event(&account, 1 + rng.below(5), &k);
                event["idempotencyKey"] = json!(k);
                bodies.push(event);
                events.push((k, account));
            }
            let body = json!({ "events": bodies });
            let mut w = write(Kind::Batch, "", "/v2/usage/batch".into(), None, body);
            w.events = events;
            w
        }
        _ => {
            let body = json!({"accountId": account, "service": "smartcheck",
                              "credits": 1 + rng.below(20), "ttlSeconds": 3600});
            write(Kind::Hold, &account, "/v2/reservations".into(), Some(key("hold")), body)
        }
    }
}

/// Whether an answer is what the write must get: its status, and 201 for every batch event.
fn as_expected(write: &Write, answer: &common::Answer) -> bool {
    answer.status == write.kind.expected()
        && (write.kind != Kind::Batch
            || answer.json["data"].as_array().is_some_and(|results| {
                results.len() == write.events.len() && results.iter().all(|r| r["status"] == 201)
            }))
}

/// Writes until a request goes unanswered (the server died).
async fn client(target: Target, model: Arc<Mutex<Model>>, stats: Arc<Stats>, seed: u64) {
    let mut rng = Rng::new(seed);
    loop {
        let mut w = next_write(&mut rng, &model);
        stats.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = target.try_post(&w.path, &w.body.to_string(), w.key.as_deref()).await;
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut model = model.lock().unwrap();
        match result {
            Ok(answer) => {
                if !as_expected(&w, &answer) {
                    model.unexpected.push(format!("POST {} {}: {answer:?}", w.path, w.body));
                }
                if w.kind == Kind::Hold && answer.status == 201 {
                    let id = answer.json["id"].as_str().unwrap().to_string();
                    model.pool.push((id, w.account.clone()));
                }
                w.answer =
                    Some(Answered { status: answer.status, text: answer.text, json: answer.json });
                model.writes.push(w);
                stats.acks.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                model.writes.push(w);
                return;
            }
        }
    }
}

/// What the check saw of the unanswered writes: the keys whose effect is visible.
#[derive(Default)]
struct Seen {
    landed: HashSet<String>,
    usages: usize,
}

/// The state against the log. Unanswered writes may or may not have landed, each at most once;
/// everything else is exact. `full` reads every hold back, else only those of unanswered writes
/// and the ones written since `since` (the index of the first write of the last cycle).
async fn check(app: &TestApp, model: &Model, since: usize, full: bool) -> Seen {
    let mut seen = Seen::default();
    let writes = &model.writes;
    let touched = |i: usize| full || !writes[i].acked() || i >= since;
    for account in &model.accounts {
        let records = list_all(app, &format!("/v2/credits?accountId={account}")).await;
        let usages = list_all(app, &format!("/v2/usage?accountId={account}")).await;
        for record in &records {
            assert_equation(record);
            assert_eq!(num(record, "expiredAmount"), 0, "{record}");
            assert_eq!(num(record, "voidedAmount"), 0, "{record}");
        }

        // Credit records: every acknowledged one, plus at most the unanswered ones, by reference.
        let by_reference: HashMap<&str, &Value> =
            records.iter().map(|r| (r["reference"].as_str().unwrap(), r)).collect();
        assert_eq!(by_reference.len(), records.len(), "references are unique: {account}");
        let mut purchases: HashMap<&str, &Write> = HashMap::new();
        for w in writes.iter().filter(|w| w.kind == Kind::Purchase && &w.account == account) {
            purchases.insert(w.body["reference"].as_str().unwrap(), w);
            if w.acked() {
                let id = w.json()["id"].as_str().unwrap();
                let record = records.iter().find(|r| r["id"] == id);
                let record = record.unwrap_or_else(|| panic!("acknowledged record {id} is lost"));
                assert_eq!(record["amount"], w.body["amount"], "{record}");
                assert_eq!(record["reference"], w.body["reference"], "{record}");
            }
        }
        for (reference, record) in &by_reference {
            let w = purchases
                .get(reference)
                .unwrap_or_else(|| panic!("a credit record nobody wrote: {record}"));
            assert_eq!(record["amount"], w.body["amount"], "{record}");
            if !w.acked() {
                seen.landed.insert(w.key.clone().unwrap());
            }
        }

        // Usages: by key, each acknowledged one exactly once as answered; unanswered at most once.
        let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
        let mut by_hold: HashMap<String, Vec<&Value>> = HashMap::new();
        for usage in &usages {
            match usage["reservationId"].as_str() {
                Some(hold) => by_hold.entry(hold.to_string()).or_default().push(usage),
                None => {
                    let k = usage["metadata"]["k"].as_str();
                    let k = k.unwrap_or_else(|| panic!("a usage without our key: {usage}"));
                    by_key.entry(k.to_string()).or_default().push(usage);
                }
            }
        }
        seen.usages += usages.len();
        let mut expected: HashMap<String, Option<Value>> = HashMap::new();
        for w in writes {
            match w.kind {
                Kind::Usage if &w.account == account => {
                    expected
                        .insert(w.key.clone().unwrap(), w.answer.as_ref().map(|a| a.json.clone()));
                }
                Kind::Batch => {
                    for (i, (k, event_account)) in w.events.iter().enumerate() {
                        if event_account == account {
                            let answer =
                                w.answer.as_ref().map(|a| a.json["data"][i]["usage"].clone());
                            expected.insert(k.clone(), answer);
                        }
                    }
                }
                _ => {}
            }
        }
        for (k, answer) in &expected {
            let found = by_key.get(k).map_or(0, Vec::len);
            match answer {
                Some(answer) => {
                    assert_eq!(found, 1, "acknowledged usage key {k} is charged once: {answer}");
                    assert_eq!(by_key[k][0], answer, "usage of key {k} as acknowledged");
                }
                None => {
                    assert!(found <= 1, "unanswered usage key {k} charged {found} times");
                    if found == 1 {
                        seen.landed.insert(k.clone());
                    }
                }
            }
        }
        for (k, found) in &by_key {
            assert!(expected.contains_key(k), "a usage nobody sent, key {k}: {found:?}");
        }

        // Holds: the acknowledged state, or the one an unanswered settle asked for.
        let mut holds: HashMap<String, (&Write, &'static str, Option<&'static str>, bool)> =
            HashMap::new();
        for (i, w) in writes.iter().enumerate().filter(|(_, w)| &w.account == account) {
            match w.kind {
                Kind::Hold if w.acked() => {
                    let id = w.json()["id"].as_str().unwrap().to_string();
                    holds.insert(id, (w, "held", None, touched(i)));
                }
                Kind::Capture | Kind::Release => {
                    let state = if w.kind == Kind::Capture { "captured" } else { "released" };
                    let entry = holds.get_mut(w.hold.as_ref().unwrap()).expect("a known hold");
                    if w.acked() {
                        entry.1 = state;
                    } else {
                        entry.2 = Some(state);
                    }
                    entry.3 |= touched(i);
                }
                _ => {}
            }
        }
        let mut held = 0;
        let mut reserved_by_record: HashMap<String, u64> = HashMap::new();
        let mut used_by_record: HashMap<String, u64> = HashMap::new();
        for usage in &usages {
            allocations_into(&mut used_by_record, &usage["allocations"]);
        }
        for (id, (w, state, pending, read)) in &holds {
            let credits = num(&w.body, "credits");
            let status = if *read {
                let got = app.get(&format!("/v2/reservations/{id}")).await;
                assert_eq!(got.status, 200, "acknowledged hold {id}: {got:?}");
                assert_eq!(num(&got.json, "credits"), credits, "{got:?}");
                let status = got.json["status"].as_str().unwrap().to_string();
                assert!(
                    status == *state || Some(status.as_str()) == *pending,
                    "hold {id}: acknowledged {state}, unanswered {pending:?}, reads {got:?}"
                );
                if pending.is_some() && status != *state {
                    let settle =
                        writes.iter().find(|x| !x.acked() && x.hold.as_deref() == Some(id));
                    seen.landed.insert(settle.unwrap().key.clone().unwrap());
                }
                status
            } else {
                state.to_string()
            };
            let captures = by_hold.remove(id).unwrap_or_default();
            if status == "captured" {
                assert_eq!(captures.len(), 1, "hold {id} captured once: {captures:?}");
                assert_eq!(num(captures[0], "credits"), credits, "{captures:?}");
            } else {
                assert!(captures.is_empty(), "hold {id} is {status}: {captures:?}");
            }
            if status == "held" {
                held += credits;
                allocations_into(&mut reserved_by_record, &w.json()["allocations"]);
            }
        }
        assert!(by_hold.is_empty(), "captures of holds nobody acknowledged: {by_hold:?}");

        // Nothing charged twice: usage credits = used, per record and per account.
        let used: u64 = records.iter().map(|r| num(r, "used")).sum();
        let charged: u64 = usages.iter().map(|u| num(u, "credits")).sum();
        assert_eq!(charged, used, "account {account}: usage credits = used");
        for record in &records {
            let id = record["id"].as_str().unwrap();
            let expected = used_by_record.get(id).copied().unwrap_or(0);
            assert_eq!(num(record, "used"), expected, "usage allocations = used: {record}");
        }
        let reserved: u64 = records.iter().map(|r| num(r, "reserved")).sum();
        let unanswered_holds: Vec<&Write> = writes
            .iter()
            .filter(|w| w.kind == Kind::Hold && !w.acked() && &w.account == account)
            .collect();
        if unanswered_holds.is_empty() {
            assert_eq!(reserved, held, "account {account}: reserved = acknowledged holds");
            for record in &records {
                let id = record["id"].as_str().unwrap();
                let expected = reserved_by_record.get(id).copied().unwrap_or(0);
                assert_eq!(num(record, "reserved"), expected, "hold allocations: {record}");
            }
        } else {
            let open: u64 = unanswered_holds.iter().map(|w| num(&w.body, "credits")).sum();
            assert!(
                held <= reserved && reserved <= held + open,
                "account {account}: reserved {reserved}, acknowledged held {held}, unanswered {open}"
            );
        }
    }
    seen
}

/// Retries every unanswered write with its key, as a client would: it replays exactly when its
/// effect was visible (holds cannot be seen before, so either is allowed). Returns how many had
/// landed.
async fn resolve(target: &Target, model: &mut Model, seen: &Seen) -> usize {
    let mut landed = 0;
    for w in model.writes.iter_mut().filter(|w| !w.acked()) {
        let answer = target.post(&w.path, &w.body.to_string(), w.key.as_deref()).await;
        assert!(as_expected(w, &answer), "retry of POST {} {}: {answer:?}", w.path, w.body);
        if w.kind == Kind::Batch {
            for (i, (k, _)) in w.events.iter().enumerate() {
                let replayed = answer.json["data"][i]["replayed"] == true;
                assert_eq!(replayed, seen.landed.contains(k), "batch event {k}: {answer:?}");
                landed += usize::from(replayed);
            }
        } else {
            let k = w.key.as_ref().unwrap();
            let replayed = answer.header("idempotent-replayed") == Some("true");
            if w.kind != Kind::Hold {
                assert_eq!(replayed, seen.landed.contains(k), "retry of key {k}: {answer:?}");
            }
            landed += usize::from(replayed);
            if w.kind == Kind::Hold {
                let id = answer.json["id"].as_str().unwrap().to_string();
                model.pool.push((id, w.account.clone()));
            }
        }
        w.answer = Some(Answered { status: answer.status, text: answer.text, json: answer.json });
    }
    landed
}

/// Every acknowledged write sent again: the same status and body, marked as replayed.
async fn replay(target: &Target, w: &Write) {
    let answer = target.post(&w.path, &w.body.to_string(), w.key.as_deref()).await;
    let first = w.answer.as_ref().unwrap();
    assert_eq!(answer.status, first.status, "replay of POST {} {}: {answer:?}", w.path, w.body);
    if w.kind == Kind::Batch {
        let results = answer.json["data"].as_array().expect("a batch has data");
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result["replayed"], true, "batch event replays: {result}");
            assert_eq!(result["status"], first.json["data"][i]["status"], "{result}");
            assert_eq!(result["usage"], first.json["data"][i]["usage"], "{result}");
        }
    } else {
        assert_eq!(answer.header("idempotent-replayed"), Some("true"), "{:?}: {answer:?}", w.key);
        assert_eq!(answer.text, first.text, "replay of key {:?} is byte-identical", w.key);
    }
}

/// Per account: purchases and grants in the ledger = amounts; usages and captures = used.
async fn check_ledger(app: &TestApp, account: &str) {
    let records = list_all(app, &format!("/v2/credits?accountId={account}")).await;
    let ledger = list_all(app, &format!("/v2/ledger?accountId={account}")).await;
    let sum = |types: &[&str]| -> u64 {
        ledger
            .iter()
            .filter(|e| types.iter().any(|t| e["type"] == *t))
            .map(|e| num(e, "credits"))
            .sum()
    };
    let amounts: u64 = records.iter().map(|r| num(r, "amount")).sum();
    let used: u64 = records.iter().map(|r| num(r, "used")).sum();
    assert_eq!(sum(&["purchase", "grant"]), amounts, "account {account}: ledger credits = amounts");
    assert_eq!(sum(&["usage", "capture"]), used, "account {account}: ledger debits = used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_sigkills_under_concurrent_load_lose_and_duplicate_nothing() {
    let seed = match std::env::var("CRASH_SEED") {
        Ok(s) => s.parse().expect("CRASH_SEED is a u64"),
        Err(_) => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        }
    };
    println!("crash_cycles: seed {seed} (rerun with CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = Rng::new(seed);

    let first = common::spawn_app().await;
    let data_dir = first.data_dir.clone();
    let mut model = Model::default();
    {
        let target = Target::of(&first);
        for _ in 0..ACCOUNTS {
            model.accounts.push(first.create_account().await);
        }
        for account in model.accounts.clone() {
            let mut w = purchase(&account, 1_000_000, "any", "purchase");
            let answer = target.post(&w.path, &w.body.to_string(), w.key.as_deref()).await;
            assert_eq!(answer.status, 201, "{answer:?}");
            w.answer =
                Some(Answered { status: answer.status, text: answer.text, json: answer.json });
            model.writes.push(w);
        }
    }
    let mut app = first;
    let mut restarted: Option<TestApp> = None;
    let (mut acked_under_load, mut in_flight_total, mut unanswered_total, mut landed_total) =
        (0, 0, 0, 0);
    for cycle in 1..=CYCLES {
        let current = restarted.as_mut().unwrap_or(&mut app);
        let target = Target::of(current);
        let since = model.writes.len();
        let shared = Arc::new(Mutex::new(std::mem::take(&mut model)));
        let stats = Arc::new(Stats::default());
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(client(target.clone(), shared.clone(), stats.clone(), rng.next()))
            })
            .collect();
        let kill_after = Duration::from_millis(300 + rng.below(2200));
        tokio::time::sleep(kill_after).await;
        let in_flight = stats.in_flight.load(Ordering::SeqCst);
        current.kill();
        for joined in futures::future::join_all(clients).await {
            joined.expect("a client did not panic");
        }
        model = Arc::try_unwrap(shared).ok().unwrap().into_inner().unwrap();
        assert!(model.unexpected.is_empty(), "cycle {cycle}: {:?}", model.unexpected);
        let unanswered = model.writes[since..].iter().filter(|w| !w.acked()).count();
        assert_eq!(unanswered, CLIENTS, "each client stops at its first unanswered write");
        let acks = stats.acks.load(Ordering::SeqCst);
        assert!(acks > 0, "cycle {cycle}: writes were acknowledged before the kill");

        let next = common::spawn_app_in(&data_dir).await;
        let seen = check(&next, &model, since, false).await;
        let landed = resolve(&Target::of(&next), &mut model, &seen).await;
        println!(
            "cycle {cycle:2}: killed after {kill_after:?}, {acks} acknowledged, {in_flight} in \
             flight, {unanswered} unanswered ({landed} had landed), {} usages in all",
            seen.usages
        );
        acked_under_load += acks;
        in_flight_total += in_flight;
        unanswered_total += unanswered;
        landed_total += landed;
        restarted = Some(next);
    }

    let app = restarted.unwrap();
    let target = Target::of(&app);
    let seen = check(&app, &model, model.writes.len(), true).await;
    for account in &model.accounts {
        check_ledger(&app, account).await;
    }
    stream::iter(model.writes.iter()).for_each_concurrent(16, |w| replay(&target, w)).await;
    let after = check(&app, &model, model.writes.len(), true).await;
    assert_eq!(after.usages, seen.usages, "replays charge nothing");
    for account in &model.accounts {
        check_ledger(&app, account).await;
    }
    let events: usize = model.writes.iter().map(|w| w.events.len()).sum();
    println!(
        "crash_cycles: seed {seed}, {CYCLES} cycles, {CLIENTS} clients, {ACCOUNTS} accounts, \
         {acked_under_load} writes acknowledged under load ({} writes in all, {events} batch \
         events, {} usages), {in_flight_total} requests in flight at the kills, \
         {unanswered_total} unanswered ({landed_total} had landed, retried by key), every key \
         replayed, {:.1} s",
        model.writes.len(),
        seen.usages,
        started.elapsed().as_secs_f64()
    );
}
