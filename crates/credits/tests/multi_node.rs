//! Goal: several `credits serve` nodes sharing one PostgreSQL database behave as one service:
//! racing usages on different nodes never overspend, one idempotency key sent to two nodes at
//! once charges once, a node killed with SIGKILL under load loses no acknowledged usage and
//! charges nothing twice while the others keep serving (the leader, which the others send a hot
//! account's usages to, or another node), nodes that start at the same instant on a fresh
//! database migrate it safely, and each node's copier moves its usage journal into the usage
//! and ledger tables by itself.
//!
//! Method: black box over real HTTP against the real binary. Each test makes its own database
//! (dropped at the end, also on panic) and starts three nodes on it, each with its own data dir
//! and port, sharing the admin key and the webhook key file. Requests are spread over the nodes;
//! the answers, the credit records, the ledger and the paged usage list are then compared.
//!
//! Needs PostgreSQL: `CREDITS_TEST_DATABASE_URL`, else the local server at
//! `postgres://postgres@127.0.0.1:5432/test` if it accepts connections; else each test says
//! "skipped: no PostgreSQL" and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/race.rs"]
mod race;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;
use tokio::sync::Barrier;

use cluster::Cluster;
use common::Answer;
use race::{assert_equation, assert_exactly_fit, key, list_all, num, Target};

const NODES: usize = 3;
const REPLAYED: &str = "idempotent-replayed";

/// The PostgreSQL server to run on, or `None` after saying the test is skipped.
fn postgres_or_skip() -> Option<String> {
    let base = cluster::base_url();
    if base.is_none() {
        println!("skipped: no PostgreSQL");
    }
    base
}

fn usage(account: &str, quantity: u64) -> String {
    json!({"accountId": account, "service": "smartcheck", "quantity": quantity}).to_string()
}

/// The value of an unlabelled metric in Prometheus text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn targets(cluster: &Cluster) -> Vec<Target> {
    cluster.nodes.iter().map(Target::of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_hundred_usages_racing_over_three_nodes_spend_exactly_the_two_hundred_credits_there_are(
) {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let nodes = &cluster.nodes;
    let account = nodes[0].create_account().await;
    let record = nodes[0].purchase(&account, 200, json!({"service": "smartcheck"})).await;
    let record_id = record["id"].as_str().unwrap().to_string();

    // 600 one-credit usages, round-robin over the nodes, all released by one barrier.
    let targets = targets(&cluster);
    let barrier = Arc::new(Barrier::new(600));
    let tasks = (0..600).map(|i| {
        let target = targets[i % NODES].clone();
        let barrier = barrier.clone();
        let (k, body) = (key("race"), usage(&account, 1));
        tokio::spawn(async move {
            barrier.wait().await;
            (i % NODES, target.post("/v2/usage", &body, Some(&k)).await)
        })
    });
    let answers: Vec<(usize, Answer)> =
        join_all(tasks).await.into_iter().map(|joined| joined.unwrap()).collect();

    let others: Vec<&(usize, Answer)> =
        answers.iter().filter(|(_, a)| a.status != 201 && a.status != 402).collect();
    assert!(others.is_empty(), "only 201 or 402 expected (node, answer): {others:?}");
    // Charged one after the other, whichever node took them.
    let answered: Vec<&Answer> = answers.iter().map(|(_, a)| a).collect();
    let ids = assert_exactly_fit(&answered, &record_id, 200);

    // Every node reads the same record: all spent, once.
    for node in nodes {
        let record = node.credit(&record_id).await;
        assert_eq!(record["used"], 200, "{record}");
        assert_eq!(record["remaining"], 0, "{record}");
        assert_eq!(record["reserved"], 0, "{record}");
        assert_eq!(record["status"], "depleted", "{record}");
        assert_equation(&record);
        assert_eq!(node.balance(&account).await["available"], 0);
    }

    let listed = list_all(&nodes[1], &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.len(), 200, "one usage listed per success");
    assert_eq!(listed.iter().map(|u| num(u, "credits")).sum::<u64>(), 200);
    let listed_ids: HashSet<String> =
        listed.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed_ids, ids, "the usage list is exactly what was acknowledged");

    let ledger = list_all(&nodes[2], &format!("/v2/ledger?accountId={account}&type=usage")).await;
    assert_eq!(ledger.len(), 200, "one usage ledger entry per success");
    assert_eq!(ledger.iter().map(|e| num(e, "credits")).sum::<u64>(), 200);
    let ledger_usages: HashSet<String> = ledger
        .iter()
        .map(|e| {
            assert_eq!(e["creditId"], record_id.as_str(), "{e}");
            e["usageId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ledger_usages, ids);
    let remaining_after: BTreeSet<u64> = ledger.iter().map(|e| num(e, "remainingAfter")).collect();
    assert_eq!(remaining_after, (0..200).collect::<BTreeSet<u64>>(), "the ledger counts down");

    // The group-commit histograms count every request a batch ran, those that joined a batch
    // while it waited for the account's lock included (the race makes many), and those another
    // node forwarded to the leader: 600 over the nodes.
    let mut ran = 0.0;
    for node in nodes {
        ran += metric(&node.get("/metrics").await.text, "credits_writer_batch_requests_sum");
    }
    assert!(ran >= 600.0, "600 usages ran, the nodes' batches counted {ran}");
}

/// Batches over many accounts: each node locks all the accounts of a batch in one statement
/// and reads their state after the locks; racing over three nodes, every account still spends
/// exactly what it has, each usage once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usages_racing_over_twelve_accounts_and_three_nodes_spend_exactly_each_accounts_credits() {
    const ACCOUNTS: usize = 12;
    const FIT: u64 = 30;
    const TRIES: usize = 50;
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let nodes = &cluster.nodes;
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let account = nodes[0].create_account().await;
        let record = nodes[0].purchase(&account, FIT, json!({"service": "smartcheck"})).await;
        accounts.push((account, record["id"].as_str().unwrap().to_string()));
    }

    // Usage i charges account i mod 12 through node (i / 12) mod 3: every account is charged
    // through every node, and every node's batches hold many accounts.
    let targets = targets(&cluster);
    let barrier = Arc::new(Barrier::new(ACCOUNTS * TRIES));
    let tasks = (0..ACCOUNTS * TRIES).map(|i| {
        let target = targets[(i / ACCOUNTS) % NODES].clone();
        let barrier = barrier.clone();
        let (k, body) = (key("spread"), usage(&accounts[i % ACCOUNTS].0, 1));
        tokio::spawn(async move {
            barrier.wait().await;
            (i % ACCOUNTS, target.post("/v2/usage", &body, Some(&k)).await)
        })
    });
    let answers: Vec<(usize, Answer)> =
        join_all(tasks).await.into_iter().map(|joined| joined.unwrap()).collect();

    for (index, (account, record_id)) in accounts.iter().enumerate() {
        let answered: Vec<&Answer> =
            answers.iter().filter(|(a, _)| *a == index).map(|(_, answer)| answer).collect();
        assert_eq!(answered.len(), TRIES);
        let ids = assert_exactly_fit(&answered, record_id, FIT);
        let record = nodes[index % NODES].credit(record_id).await;
        assert_eq!(num(&record, "used"), FIT, "{record}");
        assert_eq!(num(&record, "remaining"), 0, "{record}");
        assert_equation(&record);
        let listed =
            list_all(&nodes[(index + 1) % NODES], &format!("/v2/usage?accountId={account}")).await;
        let listed_ids: HashSet<String> =
            listed.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(listed_ids, ids, "the usage list is exactly what was acknowledged");
    }
}

/// The node that leads, once every node knows who does (within a few polls of starting).
async fn leader_of(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut leaders = Vec::new();
        let mut known = 0;
        for (n, node) in cluster.nodes.iter().enumerate() {
            let text = node.get("/metrics").await.text;
            if metric(&text, "credits_cluster_leader") == 1.0 {
                leaders.push(n);
            }
            if metric(&text, "credits_cluster_leader_known") == 1.0 {
                known += 1;
            }
        }
        if leaders.len() == 1 && known == cluster.nodes.len() {
            return leaders[0];
        }
        assert!(Instant::now() < deadline, "no single leader known to all: {leaders:?}, {known}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The usages of a hot account sent to the other nodes run in the leader's batches, each once:
/// the other nodes forward them, and the balance, the usage list and the ledger are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_accounts_usages_sent_to_every_node_run_at_the_leader_once_each() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let leader = leader_of(&cluster).await;
    let account = cluster.nodes[0].create_account().await;
    cluster.nodes[0].purchase(&account, 100_000, json!({"service": "any"})).await;
    let targets = targets(&cluster);
    let forwarded = |text: &str| metric(text, "credits_forwarded_usages{outcome=\"answered\"}");

    // Bursts of 60 concurrent usages over the nodes, until both followers forwarded some.
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = (0..60).map(|i| {
            let target = targets[i % NODES].clone();
            let (k, body) = (key("hot"), usage(&account, 1));
            tokio::spawn(async move { target.post("/v2/usage", &body, Some(&k)).await })
        });
        for answer in join_all(tasks).await {
            let answer = answer.unwrap();
            assert_eq!(answer.status, 201, "{answer:?}");
            assert_eq!(answer.header(REPLAYED), None, "{answer:?}");
        }
        sent += 60;
        let mut followers_forwarded = Vec::new();
        for (n, node) in cluster.nodes.iter().enumerate() {
            let count = forwarded(&node.get("/metrics").await.text);
            if n == leader {
                assert_eq!(count, 0.0, "the leader forwards nothing");
            } else {
                followers_forwarded.push(count);
            }
        }
        if followers_forwarded.iter().all(|&count| count > 0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "followers forwarded {followers_forwarded:?}");
    }

    for node in &cluster.nodes {
        assert_eq!(num(&node.balance(&account).await, "available"), 100_000 - sent);
    }
    let listed = list_all(&cluster.nodes[1], &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed.len() as u64, sent, "one usage listed per answer");
    let ledger = list_all(&cluster.nodes[2], &format!("/v2/ledger?accountId={account}")).await;
    let usage_entries = ledger.iter().filter(|e| e["type"] == "usage");
    assert_eq!(usage_entries.map(|e| num(e, "credits")).sum::<u64>(), sent);
}

/// A leader the others cannot reach (here: it advertises a port nobody listens on) costs them
/// one failed attempt, after which they run hot usages themselves for a while instead of trying
/// it for every batch; every usage is answered and charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_leader_is_not_tried_for_every_batch() {
    let Some(base) = postgres_or_skip() else { return };
    let mut cluster = Cluster::start(&base, 0);
    let key_file = cluster.webhook_key_file();
    let key_file = key_file.to_str().unwrap();
    let url = cluster.database.url.clone();
    let unreachable =
        [("CREDITS_WEBHOOK_KEY_FILE", key_file), ("CREDITS_ADVERTISE_URL", "http://127.0.0.1:1")];
    cluster.nodes.push(common::launch_node(&url, &unreachable).listening());
    assert_eq!(leader_of(&cluster).await, 0, "the first node leads");
    cluster
        .nodes
        .push(common::launch_node(&url, &[("CREDITS_WEBHOOK_KEY_FILE", key_file)]).listening());
    assert_eq!(leader_of(&cluster).await, 0, "and keeps leading");

    let follower = &cluster.nodes[1];
    let account = follower.create_account().await;
    follower.purchase(&account, 1_000, json!({"service": "any"})).await;
    let target = Target::of(follower);
    for _ in 0..10 {
        let tasks = (0..20).map(|_| {
            let (target, k, body) = (target.clone(), key("cold"), usage(&account, 1));
            tokio::spawn(async move { target.post("/v2/usage", &body, Some(&k)).await })
        });
        for answer in join_all(tasks).await {
            let answer = answer.unwrap();
            assert_eq!(answer.status, 201, "{answer:?}");
        }
    }
    assert_eq!(follower.balance(&account).await["available"], 1_000 - 200);
    let text = follower.get("/metrics").await.text;
    let attempts = metric(&text, "credits_forward_batch_usages_count");
    let ran_here = metric(&text, "credits_forwarded_usages{outcome=\"ran_here\"}");
    assert!(ran_here > 0.0, "hot usages were meant for the leader and ran here: {ran_here}");
    assert!((1.0..=3.0).contains(&attempts), "{attempts} forwarded batches: one, then a pause");
}

/// Only a node of the cluster may forward: a request to the internal path that is not signed
/// with the key the nodes share is refused, and nothing is charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_forwarding_path_refuses_a_request_not_signed_by_a_node() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, 1);
    let node = &cluster.nodes[0];
    let account = node.create_account().await;
    node.purchase(&account, 10, json!({"service": "any"})).await;
    let body = json!({"leader": "x", "usages": [{"scope": "admin", "key": "k",
        "requestHash": "AA", "accountId": account, "service": "smartcheck",
        "operation": null, "quantity": 1, "explicitCost": 5, "catalogOperation": null,
        "catalogQuantity": 0, "memberId": null, "apiKeyId": null, "metadata": null}]})
    .to_string();
    let signatures = [None, Some(("credits-node-timestamp", "1", "credits-node-signature", "00"))];
    for signature in signatures {
        let mut request = node.client.post(node.url("/internal/forward")).body(body.clone());
        if let Some((t, tv, s, sv)) = signature {
            request = request.header(t, tv).header(s, sv);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], "unauthorized", "{problem}");
    }
    assert_eq!(node.balance(&account).await["available"], 10, "nothing was charged");
}

/// A key is kept 24 hours: sent again after that, it is a new request and charges again, and the
/// answer stored for it is replaced (the one write of a batch that upserts rather than inserts).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_sent_again_past_its_retention_charges_again_and_its_answer_is_replaced() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, 2);
    let nodes = &cluster.nodes;
    let account = nodes[0].create_account().await;
    let record = nodes[0].purchase(&account, 1000, json!({"service": "smartcheck"})).await;
    let record_id = record["id"].as_str().unwrap().to_string();
    let targets = targets(&cluster);
    let k = key("aged");

    let first = targets[0].post("/v2/usage", &usage(&account, 5), Some(&k)).await;
    assert_eq!(first.status, 201, "{first:?}");
    // Its stored answer ages past the 24 hours a key is kept (the sweep has not forgotten it).
    let aged = format!(
        "UPDATE idempotency SET created_at = created_at - 25 * 3600 * 1000000::bigint \
         WHERE key = '{k}'"
    );
    cluster::sql(&cluster.database.url, &aged).expect("the stored answer is aged");

    // The same key, with another body, on the other node: a new usage, not a conflict.
    let second = targets[1].post("/v2/usage", &usage(&account, 3), Some(&k)).await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(second.header(REPLAYED), None, "a new request, not a replay: {second:?}");
    assert_ne!(second.json["id"], first.json["id"], "{second:?}");
    assert_eq!(second.json["credits"], 3, "{second:?}");
    // Sent again now, it replays the second answer, on either node.
    for target in &targets {
        let again = target.post("/v2/usage", &usage(&account, 3), Some(&k)).await;
        assert_eq!(again.status, 201, "{again:?}");
        assert_eq!(again.header(REPLAYED), Some("true"), "{again:?}");
        assert_eq!(again.text, second.text, "the replay is the second answer: {again:?}");
    }
    let record = nodes[1].credit(&record_id).await;
    assert_eq!(record["used"], 8, "charged twice, 5 then 3: {record}");
    assert_equation(&record);
    let stored = cluster::query_texts(
        &cluster.database.url,
        &format!("SELECT count(*)::text FROM idempotency WHERE key = '{k}'"),
    );
    assert_eq!(stored, ["1"], "one answer kept for the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_sent_to_two_nodes_at_once_charges_once() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let nodes = &cluster.nodes;
    let account = nodes[0].create_account().await;
    let record = nodes[0].purchase(&account, 1000, json!({"service": "smartcheck"})).await;
    let record_id = record["id"].as_str().unwrap().to_string();
    let targets = targets(&cluster);

    const ROUNDS: usize = 20;
    let mut charged = HashSet::new();
    for round in 0..ROUNDS {
        // Each round a new key, sent with the same body to two different nodes at once.
        let (k, body) = (key("twice"), usage(&account, 7));
        let pair = [round % NODES, (round + 1) % NODES];
        let barrier = Arc::new(Barrier::new(2));
        let tasks = pair.map(|node| {
            let target = targets[node].clone();
            let barrier = barrier.clone();
            let (k, body) = (k.clone(), body.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                target.post("/v2/usage", &body, Some(&k)).await
            })
        });
        let answers: Vec<Answer> =
            join_all(tasks).await.into_iter().map(|joined| joined.unwrap()).collect();
        let context = format!("round {round}, key {k}, nodes {pair:?}: {answers:?}");
        for answer in &answers {
            assert_eq!(answer.status, 201, "{context}");
        }
        assert_eq!(answers[0].json["id"], answers[1].json["id"], "one usage: {context}");
        let replays: Vec<Option<&str>> = answers.iter().map(|a| a.header(REPLAYED)).collect();
        assert!(
            replays == [None, Some("true")] || replays == [Some("true"), None],
            "one first answer and one replay: {context}"
        );
        assert_eq!(answers[0].text, answers[1].text, "the replay is byte-identical: {context}");
        assert_eq!(answers[0].json["credits"], 7, "{context}");
        assert!(charged.insert(answers[0].json["id"].as_str().unwrap().to_string()), "{context}");

        // The balance dropped by exactly one charge this round, on every node.
        for node in nodes {
            let used = node.credit(&record_id).await["used"].clone();
            assert_eq!(used, 7 * (round as u64 + 1), "after {context}");
        }
    }

    let record = nodes[2].credit(&record_id).await;
    assert_eq!(record["used"], 7 * ROUNDS as u64, "charged once a round: {record}");
    assert_eq!(record["remaining"], 1000 - 7 * ROUNDS as u64, "{record}");
    assert_equation(&record);
    let listed = list_all(&nodes[1], &format!("/v2/usage?accountId={account}")).await;
    let listed_ids: HashSet<String> =
        listed.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed.len(), ROUNDS, "one usage a round: {listed:?}");
    assert_eq!(listed_ids, charged);
    let ledger = list_all(&nodes[0], &format!("/v2/ledger?accountId={account}&type=usage")).await;
    assert_eq!(ledger.len(), ROUNDS, "one usage ledger entry a round: {ledger:?}");
}

/// One usage sent by the load of the kill test, and what came of it.
struct Sent {
    node: usize,
    key: String,
    body: String,
    /// Whether the request was sent after the killed node's process had exited.
    after_kill: bool,
    outcome: Outcome,
}

enum Outcome {
    Answered(Answer),
    /// No connection could be made (connection refused).
    ConnectFailed,
    /// A connection was made, or reused, and no answer came.
    Unanswered(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_a_follower_under_load_loses_no_acknowledged_usage_and_charges_nothing_twice() {
    sigkill_under_load(false).await;
}

/// The leader runs the other nodes' usages of the hot account: when it dies, what they had
/// sent it runs on them (a usage it did charge replays), and they keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_the_leader_under_load_loses_no_acknowledged_usage_and_charges_nothing_twice() {
    sigkill_under_load(true).await;
}

async fn sigkill_under_load(kill_leader: bool) {
    let Some(base) = postgres_or_skip() else { return };
    let mut cluster = Cluster::start(&base, NODES);
    let leader = leader_of(&cluster).await;
    let account = cluster.nodes[0].create_account().await;
    let record = cluster.nodes[0].purchase(&account, 1_000_000, json!({"service": "any"})).await;
    let record_id = record["id"].as_str().unwrap().to_string();
    let targets = targets(&cluster);
    let victim = if kill_leader { leader } else { (leader + 1) % NODES };
    let survivors: Vec<usize> = (0..NODES).filter(|&n| n != victim).collect();

    // 12 clients loop for 3 s, each request to the next node in turn, each with its own key.
    let killed = Arc::new(AtomicBool::new(false));
    let stop_at = Instant::now() + Duration::from_secs(3);
    let next = Arc::new(AtomicUsize::new(0));
    let clients = (0..12).map(|_| {
        let (targets, killed, next, account) =
            (targets.clone(), killed.clone(), next.clone(), account.clone());
        tokio::spawn(async move {
            let mut log = Vec::new();
            while Instant::now() < stop_at {
                let node = next.fetch_add(1, Ordering::SeqCst) % NODES;
                let key = key("load");
                let body = json!({"accountId": account, "service": "smartcheck", "quantity": 1,
                                  "metadata": {"key": key, "node": node.to_string()}})
                .to_string();
                let after_kill = killed.load(Ordering::SeqCst);
                let outcome = match targets[node].try_post("/v2/usage", &body, Some(&key)).await {
                    Ok(answer) => Outcome::Answered(answer),
                    Err(error) if error.is_connect() => Outcome::ConnectFailed,
                    Err(error) => Outcome::Unanswered(format!("{error:?}")),
                };
                let failed = !matches!(outcome, Outcome::Answered(_));
                log.push(Sent { node, key, body, after_kill, outcome });
                if failed {
                    // A dead node refuses at once: do not spin on it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            log
        })
    });
    let clients: Vec<_> = clients.collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let forwarded = |text: &str| metric(text, "credits_forwarded_usages{outcome=\"answered\"}");
    if kill_leader {
        // It dies while the others send it the account's usages.
        for &n in &survivors {
            let count = forwarded(&cluster.nodes[n].get("/metrics").await.text);
            assert!(count > 0.0, "node {n} forwarded to the leader before it died");
        }
    }
    cluster.nodes[victim].kill();
    killed.store(true, Ordering::SeqCst);
    let log: Vec<Sent> = join_all(clients).await.into_iter().flat_map(|j| j.unwrap()).collect();

    // What each node answered, before and after the kill.
    let mut acked: HashMap<String, &Sent> = HashMap::new(); // usage id -> request
    let mut acked_after_kill = [0usize; NODES];
    let mut acked_before_kill = [0usize; NODES];
    let (mut refused, mut unanswered) = (0, Vec::new());
    let mut maybe_committed: Vec<&Sent> = Vec::new();
    for sent in &log {
        match &sent.outcome {
            Outcome::Answered(answer) => {
                assert_eq!(answer.status, 201, "node {}: {answer:?}", sent.node);
                assert_eq!(answer.json["credits"], 1, "{answer:?}");
                assert!(
                    !(sent.node == victim && sent.after_kill),
                    "the killed node cannot answer after its process exited: {answer:?}"
                );
                let id = answer.json["id"].as_str().unwrap().to_string();
                assert!(acked.insert(id, sent).is_none(), "one usage id per answer: {answer:?}");
                if sent.after_kill {
                    acked_after_kill[sent.node] += 1;
                } else {
                    acked_before_kill[sent.node] += 1;
                }
            }
            failure => {
                assert_eq!(sent.node, victim, "only the killed node fails to answer");
                match failure {
                    Outcome::ConnectFailed => refused += 1,
                    Outcome::Unanswered(error) => unanswered.push(error.as_str()),
                    Outcome::Answered(_) => unreachable!(),
                }
                if !sent.after_kill {
                    // In flight when the node died: committed or not, no one knows yet.
                    maybe_committed.push(sent);
                }
            }
        }
    }
    println!(
        "acknowledged before the kill {acked_before_kill:?}, after {acked_after_kill:?}; \
         the killed node refused {refused} connections and left {} requests unanswered \
         ({} sent before it died), for example {:?}",
        unanswered.len(),
        maybe_committed.len(),
        unanswered.first()
    );
    assert!(acked_before_kill[victim] > 0, "the killed node served load before it died");
    assert!(refused + unanswered.len() > 0, "requests reached the killed node after it died");
    for node in (0..NODES).filter(|&n| n != victim) {
        assert!(acked_after_kill[node] > 0, "node {node} kept answering after the kill");
    }

    // Every acknowledged usage is listed by a survivor; the only others are requests that were in
    // flight on the killed node, each at most once. A batch the killed node committed but had not
    // copied out of its journal yet is charged and not listed until a survivor copies it (below).
    for &n in &survivors {
        let text = cluster.nodes[n].get("/metrics").await.text;
        let ran_here = metric(&text, "credits_forwarded_usages{outcome=\"ran_here\"}");
        println!(
            "node {n}: {} usages answered by the leader, {ran_here} run here",
            forwarded(&text)
        );
    }
    let survivor = &cluster.nodes[survivors[0]];
    let listed = list_all(survivor, &format!("/v2/usage?accountId={account}")).await;
    let mut listed_by_key: HashMap<String, String> = HashMap::new(); // key -> usage id
    for usage in &listed {
        let key = usage["metadata"]["key"].as_str().expect("the usage keeps its metadata");
        let id = usage["id"].as_str().unwrap();
        assert!(
            listed_by_key.insert(key.to_string(), id.to_string()).is_none(),
            "one idempotency key charged twice: {usage}"
        );
    }
    for (id, sent) in &acked {
        assert_eq!(
            listed_by_key.get(&sent.key),
            Some(id),
            "acknowledged usage {id} (node {}) is listed",
            sent.node
        );
    }
    let in_flight: HashSet<&str> = maybe_committed.iter().map(|s| s.key.as_str()).collect();
    let unacknowledged: Vec<&String> = listed_by_key
        .iter()
        .filter(|(_, id)| !acked.contains_key(*id))
        .map(|(key, _)| key)
        .collect();
    for key in &unacknowledged {
        assert!(
            in_flight.contains(key.as_str()),
            "usage with key {key} was never acknowledged nor in flight on the killed node"
        );
    }
    assert_eq!(listed.len(), acked.len() + unacknowledged.len());
    let record = survivor.credit(&record_id).await;
    let listed_credits = listed.iter().map(|u| num(u, "credits")).sum::<u64>();
    assert!(listed_credits <= num(&record, "used"), "{listed_credits} listed, {record}");
    assert_equation(&record);
    println!(
        "{} in-flight requests were committed and listed without an answer, {} more charged and \
         not copied yet",
        unacknowledged.len(),
        num(&record, "used") - listed_credits
    );

    // A client retries what the dead node left unanswered on a survivor: a committed one replays
    // its usage, listed by the time the replay is answered (the survivor copies what the dead
    // node left in its journal); the others are charged now; nothing is charged twice.
    let mut retried = HashMap::new(); // key -> usage id
    for sent in &maybe_committed {
        let answer = targets[survivors[1]].post("/v2/usage", &sent.body, Some(&sent.key)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        if let Some(id) = listed_by_key.get(&sent.key) {
            assert_eq!(answer.header(REPLAYED), Some("true"), "{answer:?}");
            assert_eq!(answer.json["id"], id.as_str(), "{answer:?}");
        }
        retried.insert(sent.key.clone(), answer.json["id"].as_str().unwrap().to_string());
    }
    let listed =
        list_all(&cluster.nodes[survivors[1]], &format!("/v2/usage?accountId={account}")).await;
    for usage in &listed {
        if let Some(id) = retried.get(usage["metadata"]["key"].as_str().unwrap()) {
            assert_eq!(usage["id"], id.as_str(), "a retry is answered with the usage charged");
        }
    }
    assert_eq!(listed.len(), acked.len() + in_flight.len(), "every request charged once");
    let keys: HashSet<&str> =
        listed.iter().map(|u| u["metadata"]["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), listed.len(), "no idempotency key charged twice");
    let record = cluster.nodes[survivors[1]].credit(&record_id).await;
    assert_eq!(num(&record, "used"), listed.len() as u64, "{record}");
    assert_eq!(listed.iter().map(|u| num(u, "credits")).sum::<u64>(), num(&record, "used"));
    assert_equation(&record);
    let ledger = list_all(
        &cluster.nodes[survivors[0]],
        &format!("/v2/ledger?accountId={account}&type=usage"),
    )
    .await;
    assert_eq!(ledger.iter().map(|e| num(e, "credits")).sum::<u64>(), num(&record, "used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_starting_at_once_on_a_fresh_database_migrate_it_once_and_all_serve() {
    let Some(base) = postgres_or_skip() else { return };
    // Ten rounds, each on a new database: a race between starting nodes shows only now and then.
    for round in 0..10 {
        // Three processes launched back to back on an empty database, then awaited.
        let cluster = Cluster::start(&base, NODES);
        for (n, node) in cluster.nodes.iter().enumerate() {
            let ready = node.get("/readyz").await;
            assert_eq!(ready.status, 200, "round {round}, node {n}: {ready:?}");
        }
        let versions = cluster::query_texts(
            &cluster.database.url,
            "SELECT version FROM credits_schema ORDER BY version",
        );
        let expected: Vec<String> = (1..=versions.len()).map(|v| v.to_string()).collect();
        assert!(!versions.is_empty(), "round {round}: the schema is migrated");
        assert_eq!(versions, expected, "round {round}: each migration applied exactly once");
        // The usage journal keeps its arrays in the row, compressed with lz4 (`schema.rs`).
        let journal = cluster::query_texts(
            &cluster.database.url,
            "SELECT attname || ' ' || attcompression::text || attstorage::text \
             FROM pg_attribute WHERE attrelid = 'usage_journal'::regclass \
             AND attname IN ('usage', 'ledger') ORDER BY attname",
        );
        assert_eq!(journal, ["ledger lm", "usage lm"], "round {round}");

        // And they share it: each node writes, and every node reads what they all wrote.
        let account = cluster.nodes[round % NODES].create_account().await;
        for (n, node) in cluster.nodes.iter().enumerate() {
            let read = node.get(&format!("/v2/accounts/{account}")).await;
            assert_eq!(read.status, 200, "round {round}, node {n}: {read:?}");
            node.purchase(&account, 5, json!({"service": "any"})).await;
            let used = node.use_credits(&account, "smartcheck", 1).await;
            assert_eq!(used.status, 201, "round {round}, node {n}: {used:?}");
        }
        for node in &cluster.nodes {
            assert_eq!(node.balance(&account).await["available"], 3 * 4, "round {round}");
        }
    }
}

/// A key revoked on one node is refused by the others too, within the 100 ms their key caches
/// poll the shared auth epoch (and at once on the node that revoked it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_on_one_node_is_refused_by_every_node() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let nodes = &cluster.nodes;
    let account = nodes[0].create_account().await;
    let body = json!({"accountId": account, "name": "integration"}).to_string();
    let created = nodes[0].post_raw("/v2/api-keys", &body, None).await;
    assert_eq!(created.status, 201, "{created:?}");
    let (id, secret) = (
        created.json["id"].as_str().unwrap().to_string(),
        created.json["secret"].as_str().unwrap().to_string(),
    );
    let path = format!("/v2/balance?accountId={account}");
    // Every node authenticates the key (and caches it).
    for node in nodes {
        let read = node.request(reqwest::Method::GET, &path, Some(&secret), &[], None).await;
        assert_eq!(read.status, 200, "{read:?}");
    }
    let revoked = nodes[0]
        .request(
            reqwest::Method::DELETE,
            &format!("/v2/api-keys/{id}"),
            Some(common::ADMIN_KEY),
            &[],
            None,
        )
        .await;
    assert!(revoked.status < 300, "{revoked:?}");
    let at_once = nodes[0].request(reqwest::Method::GET, &path, Some(&secret), &[], None).await;
    assert_eq!(at_once.status, 401, "the revoking node refuses at once: {at_once:?}");
    // The others, within their polling interval (generous bound for a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(2);
    for (n, node) in nodes.iter().enumerate().skip(1) {
        loop {
            let read = node.request(reqwest::Method::GET, &path, Some(&secret), &[], None).await;
            if read.status == 401 {
                break;
            }
            assert_eq!(read.status, 200, "node {n}: {read:?}");
            assert!(Instant::now() < deadline, "node {n} still accepts the revoked key");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A request that joins a batch while the batch holds its account's lock has its idempotency
/// key taken as new, unread (one round trip less under the lock). When the key was stored after
/// all (a client's retry), the batch's write finds it, the batch runs again, and the retry gets
/// the stored answer: one charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_that_joins_a_locked_batch_is_replayed_not_charged_again() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, 1);
    let node = &cluster.nodes[0];
    let account = node.create_account().await;
    let record = node.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let record_id = record["id"].as_str().unwrap().to_string();
    let target = Target::of(node);
    let (retried, body) = (key("retried"), usage(&account, 1));
    let first = target.post("/v2/usage", &body, Some(&retried)).await;
    assert_eq!(first.status, 201, "{first:?}");

    // Another transaction holds the account's row, as another node's batch would.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let (url, held) = (cluster.database.url.clone(), account.clone());
    let holder = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut transaction = client.transaction().unwrap();
        transaction.query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &[&held]).unwrap();
        locked.send(()).unwrap();
        released.recv().unwrap();
        transaction.commit().unwrap();
    });
    is_locked.recv().unwrap();
    // A new usage starts a batch, which waits for the lock; the retry arrives meanwhile.
    let fresh = {
        let (target, body, k) = (target.clone(), body.clone(), key("fresh"));
        tokio::spawn(async move { target.post("/v2/usage", &body, Some(&k)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retry = {
        let (target, body, k) = (target.clone(), body.clone(), retried.clone());
        tokio::spawn(async move { target.post("/v2/usage", &body, Some(&k)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send(()).unwrap();
    holder.join().unwrap();
    let (fresh, retry) = (fresh.await.unwrap(), retry.await.unwrap());

    assert_eq!(fresh.status, 201, "{fresh:?}");
    assert_eq!(fresh.header(REPLAYED), None, "{fresh:?}");
    assert_eq!(retry.status, 201, "{retry:?}");
    assert_eq!(retry.header(REPLAYED), Some("true"), "the retry is a replay: {retry:?}");
    assert_eq!(retry.text, first.text, "the stored answer, byte for byte");
    let record = node.credit(&record_id).await;
    assert_eq!(record["used"], 2, "the first usage and the fresh one, once each: {record}");
    let metrics = node.get("/metrics").await.text;
    let retries = metric(&metrics, "credits_writer_batch_retries");
    assert!(retries >= 1.0, "the batch ran again after finding the key: {metrics}");
}

/// Each node keeps its copy of the service catalog between batches (PostgreSQL), and must drop it
/// when another node changes the catalog: a price changed through one node prices the next usage
/// on every node, and a service created on one node is known to the others at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_price_changed_on_one_node_prices_the_next_usage_on_every_node() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let nodes = &cluster.nodes;
    let account = nodes[0].create_account().await;
    nodes[0].purchase(&account, 1_000, json!({})).await;
    let charged = |answer: &Answer| {
        assert_eq!(answer.status, 201, "{answer:?}");
        num(&answer.json, "credits")
    };
    // Every node prices one usage at the first price, and so holds the catalog.
    for node in nodes {
        assert_eq!(charged(&node.use_credits(&account, "smartcheck", 1).await), 1);
        let unknown = node.use_credits(&account, "ocr", 1).await;
        assert_eq!(unknown.status, 422, "no such service yet: {unknown:?}");
    }
    let patched = nodes[1].patch("/v2/services/smartcheck", &json!({"unitCost": 7})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let created =
        nodes[2].post("/v2/services", &json!({"id": "ocr", "name": "OCR", "unitCost": 2})).await;
    assert_eq!(created.status, 201, "{created:?}");
    for (n, node) in nodes.iter().enumerate() {
        let smartcheck = charged(&node.use_credits(&account, "smartcheck", 1).await);
        assert_eq!(smartcheck, 7, "node {n} priced smartcheck at the old price");
        let ocr = charged(&node.use_credits(&account, "ocr", 1).await);
        assert_eq!(ocr, 2, "node {n} priced the new service");
    }
    assert_eq!(num(&nodes[0].balance(&account).await, "available"), 1_000 - 3 - 3 * 9);
}

/// A dashboard session started on one node is known to the others (sessions live in the
/// database), and signing out on another node ends it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dashboard_session_works_on_every_node() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let nodes = &cluster.nodes;
    let account = nodes[0].create_account().await;
    let body = json!({"accountId": account, "name": "staff"}).to_string();
    let created = nodes[0].post_raw("/v2/api-keys", &body, None).await;
    assert_eq!(created.status, 201, "{created:?}");
    let secret = created.json["secret"].as_str().unwrap().to_string();
    let sign_in = json!({"key": secret}).to_string();
    let signed_in =
        nodes[0].request(reqwest::Method::POST, "/session", None, &[], Some(sign_in)).await;
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let cookie = signed_in.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let csrf = signed_in.json["csrfToken"].as_str().unwrap().to_string();
    let path = format!("/v2/balance?accountId={account}");
    for (n, node) in nodes.iter().enumerate() {
        let read =
            node.request(reqwest::Method::GET, &path, None, &[("cookie", &cookie)], None).await;
        assert_eq!(read.status, 200, "node {n} knows the session: {read:?}");
    }
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let signed_out =
        nodes[1].request(reqwest::Method::DELETE, "/session", None, &headers, None).await;
    assert_eq!(signed_out.status, 204, "{signed_out:?}");
    for (n, node) in nodes.iter().enumerate() {
        let read =
            node.request(reqwest::Method::GET, &path, None, &[("cookie", &cookie)], None).await;
        assert_eq!(read.status, 401, "node {n} ended the session: {read:?}");
    }
}

/// Puts the usage rows and usage ledger entries back into one journal row, as a node stopped
/// after its commit leaves them (long past the 5 s within which their own node would have copied
/// them), and out of the tables lists read. The entries in their ledger order: `ledger` rows as
/// rows, the entries usage rows keep as their usage's ordinal (see `bulk::journal_copy`).
const BACK_INTO_THE_JOURNAL: &str = "INSERT INTO usage_journal (created_at, usage, ledger) \
    SELECT CREATED_AT, \
    (SELECT jsonb_agg(jsonb_build_array(id, account_id, service, operation, quantity, credits, \
    allocations, member_id, api_key_id, metadata, balance_after, reservation_id, created_at, \
    credit_id, remaining_after) ORDER BY seq) FROM usage)::text, \
    (SELECT jsonb_agg(e ORDER BY place) FROM \
    (SELECT seq AS place, jsonb_build_array(account_id, credit_id, type, credits, \
    remaining_after, usage_id, reservation_id, member_id, api_key_id, created_at) AS e \
    FROM ledger WHERE type = 'usage' \
    UNION ALL SELECT entry_seq, to_jsonb(ordinal) FROM \
    (SELECT entry_seq, row_number() OVER (ORDER BY seq) AS ordinal FROM usage) AS o \
    WHERE entry_seq IS NOT NULL) AS entries)::text; \
    DELETE FROM usage; DELETE FROM ledger WHERE type = 'usage';";

/// A journal row's `created_at` an hour ahead: no sweep counts it old enough to copy it.
const AN_HOUR_AHEAD: &str = "((extract(epoch FROM now()) + 3600) * 1000000)::bigint";

/// Usage committed by a node that stopped between its commit and the copy of its usage journal
/// (the rows still in `usage_journal`, see `store/src/copier.rs`) reaches the usage list and the
/// ledger exactly once: a running node's sweep copies it, and so does a node as it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_a_stopped_node_left_in_its_journal_is_copied_once_by_the_others() {
    let Some(base) = postgres_or_skip() else { return };
    let mut cluster = Cluster::start(&base, 1);
    let node = &cluster.nodes[0];
    let url = cluster.database.url.clone();
    let account = node.create_account().await;
    node.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let target = Target::of(node);
    let mut charged = BTreeSet::new();
    for _ in 0..3 {
        let answer = target.post("/v2/usage", &usage(&account, 2), Some(&key("journal"))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        charged.insert(answer.json["id"].as_str().unwrap().to_string());
    }
    let listed_ids = |usages: &[serde_json::Value]| -> BTreeSet<String> {
        usages.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect()
    };
    let before = list_all(node, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed_ids(&before), charged, "answered usage is listed at once");

    // What a node stopped after its commit leaves. Nothing reads usage meanwhile: the running
    // node's sweep (every second) copies it.
    cluster::sql(&url, &BACK_INTO_THE_JOURNAL.replace("CREATED_AT", "0")).unwrap();
    assert!(journal_empties(&url, Duration::from_secs(15)).await, "the sweep copied the row");
    let listed = list_all(node, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed, before, "the journal's usage is back, as it was answered");
    let ledger_path = format!("/v2/ledger?accountId={account}&type=usage");
    assert_eq!(list_all(node, &ledger_path).await.len(), 3, "one usage entry each");

    // Again, written an hour ahead so that no sweep takes them, and a list reads them at once: a
    // read copies the journal rows it can see first.
    cluster::sql(&url, &BACK_INTO_THE_JOURNAL.replace("CREATED_AT", AN_HOUR_AHEAD)).unwrap();
    let listed = list_all(node, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed, before, "copied by the read, once");
    assert_eq!(list_all(node, &ledger_path).await.len(), 3, "one usage entry each");
    assert_eq!(journal_rows(&url), ["0"], "the journal row is gone with its copy");

    // With no node running, the same rows back in the journal: a node copies them as it starts,
    // before it answers, and only once.
    cluster.nodes[0].kill();
    cluster::sql(&url, &BACK_INTO_THE_JOURNAL.replace("CREATED_AT", "0")).unwrap();
    let key_file = cluster.webhook_key_file();
    let env = [("CREDITS_WEBHOOK_KEY_FILE", key_file.to_str().unwrap())];
    let second = common::spawn_node(&url, &env).await;
    assert_eq!(journal_rows(&url), ["0"], "copied at start, before the node answers");
    let again = list_all(&second, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed_ids(&again), charged, "each usage once, copied at start");
    assert_eq!(list_all(&second, &ledger_path).await.len(), 3);
    let record = &second.get(&format!("/v2/credits?accountId={account}")).await.json["data"][0];
    assert_eq!(record["used"], 6, "{record}");
}

/// A retry of a request whose usage a stopped node left in its journal replays the answer, byte
/// for byte, and a list read after it shows that usage, once, without waiting for any sweep. (A
/// usage's answer is stored as a reference to the usage, rendered again for a replay: here from
/// the journal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_of_usage_left_in_the_journal_is_answered_and_the_usage_listed_once() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, 1);
    let node = &cluster.nodes[0];
    let url = cluster.database.url.clone();
    let account = node.create_account().await;
    node.purchase(&account, 100, json!({"service": "smartcheck"})).await;
    let target = Target::of(node);
    let mut sent = Vec::new();
    for _ in 0..3 {
        let key = key("left");
        let answer = target.post("/v2/usage", &usage(&account, 2), Some(&key)).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        sent.push((key, answer.json["id"].as_str().unwrap().to_string(), answer.text));
    }
    let before = list_all(node, &format!("/v2/usage?accountId={account}")).await;
    cluster::sql(&url, &BACK_INTO_THE_JOURNAL.replace("CREATED_AT", AN_HOUR_AHEAD)).unwrap();

    let (key, id, first) = &sent[1];
    let stored = cluster::query_texts(
        &url,
        &format!("SELECT usage_id || ' ' || length(body) FROM idempotency WHERE key = '{key}'"),
    );
    assert_eq!(stored, [format!("{id} 0")], "the answer is stored as its usage's id");
    let answer = target.post("/v2/usage", &usage(&account, 2), Some(key)).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(answer.header(REPLAYED), Some("true"), "{answer:?}");
    assert_eq!(answer.json["id"], id.as_str(), "{answer:?}");
    assert_eq!(&answer.text, first, "the replay is the first answer, byte for byte");
    let listed = list_all(node, &format!("/v2/usage?accountId={account}")).await;
    assert_eq!(listed, before, "every usage left in the journal is listed once, as answered");
    let ledger = list_all(node, &format!("/v2/ledger?accountId={account}&type=usage")).await;
    assert_eq!(ledger.len(), 3, "one usage entry each");
    let left = cluster::query_texts(&url, "SELECT count(*) FROM usage_journal");
    assert_eq!(left, ["0"], "the journal rows are gone with their copy");
    let record = &node.get(&format!("/v2/credits?accountId={account}")).await.json["data"][0];
    assert_eq!(record["used"], 6, "the replay charged nothing: {record}");
}

/// A node's copier moves its own batches' usage journal into `usage` and `ledger` by itself,
/// gathering the batches of a few milliseconds into one copy: with no read of usage or the
/// ledger to copy them first, the journal is empty well within the 5 s after which another
/// node's sweep would take rows over, and every usage is in `usage` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nodes_copier_empties_its_usage_journal_by_itself_within_a_second() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, 1);
    let node = &cluster.nodes[0];
    let account = node.create_account().await;
    node.purchase(&account, 1_000, json!({})).await;
    let target = Target::of(node);
    let (body, keys): (String, Vec<String>) =
        (usage(&account, 1), (0..40).map(|_| key("c")).collect());
    let answers =
        join_all(keys.iter().map(|k| target.post("/v2/usage", &body, Some(k.as_str())))).await;
    for answer in &answers {
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let url = &cluster.database.url;
    let emptied = journal_empties(url, Duration::from_secs(1)).await;
    assert!(emptied, "the copier left {:?} journal rows after a second", journal_rows(url));
    let count = |sql: &str| cluster::query_texts(url, &sql.replace("ACCOUNT", &account));
    let usages = count("SELECT count(*) FROM usage WHERE account_id = 'ACCOUNT'");
    assert_eq!(usages, ["40"], "each answered usage copied once");
    let entries = count(
        "SELECT (SELECT count(*) FROM ledger WHERE account_id = 'ACCOUNT' AND type = 'usage') \
         + (SELECT count(DISTINCT entry_seq) FROM usage WHERE account_id = 'ACCOUNT')",
    );
    assert_eq!(entries, ["40"], "one ledger entry each, copied once");
    let kept = count("SELECT count(*) FROM usage WHERE account_id = 'ACCOUNT' AND entry_seq > 0");
    assert_eq!(kept, ["40"], "each usage, drawn from one record, keeps its entry in its row");
    // The copy numbers the entries in the order the batches made them: by the usages' order.
    let out_of_order = count(
        "SELECT count(*) FROM (SELECT entry_seq, lag(entry_seq) OVER (ORDER BY seq) AS before \
         FROM usage WHERE account_id = 'ACCOUNT') AS o WHERE entry_seq <= before",
    );
    assert_eq!(out_of_order, ["0"], "the entries' places follow the usages'");
}

/// The number of rows in the usage journal, as text.
fn journal_rows(url: &str) -> Vec<String> {
    cluster::query_texts(url, "SELECT count(*) FROM usage_journal")
}

/// Whether the usage journal is empty, or empties within `within`.
async fn journal_empties(url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while journal_rows(url) != ["0"] {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// A usage is answered once it is on disk and copied into the usage list afterwards (see
/// `store/src/copier.rs`), yet whoever got the answer lists it at once, on any node: a list first
/// copies the journal rows it can see.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_usage_is_listed_on_every_node_as_soon_as_it_is_answered() {
    let Some(base) = postgres_or_skip() else { return };
    let cluster = Cluster::start(&base, NODES);
    let nodes = &cluster.nodes;
    let account = nodes[0].create_account().await;
    nodes[0].purchase(&account, 1_000, json!({"service": "smartcheck"})).await;
    let targets = targets(&cluster);
    for i in 0..60 {
        let answer =
            targets[i % NODES].post("/v2/usage", &usage(&account, 1), Some(&key("ryw"))).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let id = answer.json["id"].as_str().unwrap();
        let reader = &nodes[(i + 1) % NODES];
        let page = reader.get(&format!("/v2/usage?accountId={account}&limit=1")).await;
        assert_eq!(page.json["data"][0]["id"], id, "usage {i} listed at once: {page:?}");
        let ledger =
            reader.get(&format!("/v2/ledger?accountId={account}&type=usage&limit=1")).await;
        assert_eq!(ledger.json["data"][0]["usageId"], id, "entry {i} listed at once: {ledger:?}");
    }
}
