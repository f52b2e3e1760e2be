//! Goal: a node whose PostgreSQL connection is lost answers fast and honestly, and heals by
//! itself: while the database cannot be reached, writes and `/readyz` answer 503 problem+json
//! `unavailable` within seconds (never hang); once it can be reached again, the same process
//! serves writes and `/readyz` 200 within seconds; no usage acknowledged before is lost and none
//! refused during the outage was charged.
//!
//! Method: black box over real HTTP against the real binary, whose `CREDITS_DATABASE_URL` points
//! at a TCP proxy run by the test in front of PostgreSQL. Cutting the proxy closes every proxied
//! connection and closes each new one at once, as a database that went away would; restoring it
//! forwards connections again. The test's client gives up after 10 s, so a hang fails the test.
//!
//! A second test makes the network fail silently instead, as a partition or a database host
//! that lost power does: every packet between the node and the proxy is dropped (`tc`, on the
//! proxy's port of the loopback device), so no connection is closed and nothing answers. The
//! node must find that out by itself (TCP keepalive and a limit on unacknowledged data) and
//! answer 503 within seconds rather than wait for the kernel's retransmissions (a quarter of an
//! hour), then heal when packets flow again.
//!
//! Needs PostgreSQL: `CREDITS_TEST_DATABASE_URL`, else the local server at
//! `postgres://postgres@127.0.0.1:5432/test` if it accepts connections; else the test says
//! "skipped: no PostgreSQL" and passes. The partition test also needs `tc` and the right to
//! change the loopback device's queueing (root): without them it says "skipped", unless
//! `CREDITS_TEST_REQUIRE_TC` is set (CI sets it), when it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/race.rs"]
mod race;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use common::{Answer, ADMIN_KEY};
use race::{assert_equation, key, list_all, num, Target};

/// A TCP proxy to the database server with a switch: cut, it closes every connection it carries
/// and every new one at once; restored, it forwards new connections again.
struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
    /// Connections being forwarded now.
    active: Arc<AtomicUsize>,
    accepting: tokio::task::JoinHandle<()>,
}

/// Counts a forwarded connection while it lives.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watching) = watch::channel(false);
        let active = Arc::new(AtomicUsize::new(0));
        let counted = active.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if *watching.borrow() {
                    drop(inbound); // cut: closed at once
                    continue;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let active = Active(counted.clone());
                let mut watching = watching.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _active = active;
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watching.wait_for(|cut| *cut) => {}
                    }
                    // Both sockets close here.
                });
            }
        });
        Proxy { port, cut, active, accepting }
    }

    /// Closes every forwarded connection, and refuses new ones, until restored; returns once
    /// no connection is forwarded any more.
    async fn cut(&self) {
        self.cut.send_replace(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.active.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "the proxy closes its connections");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.accepting.abort();
    }
}

/// Packets to and from one port of the loopback device lost while it lives, as a network that
/// fails silently loses them: the sender's kernel takes each packet and it never arrives. With
/// `tc`: an HTB root whose unclassified traffic goes out directly (unshaped), and a class at 8
/// bits per second, which `u32` filters send that port's packets to. The class's first packet
/// leaves at once and puts it a minute in debt, so [`Partition::start`] spends it on a packet of
/// its own; every later one waits in the queue, and is discarded with it at the end. (A queue
/// that dropped packets instead would tell the sender's kernel, which then gives up on its
/// connections within seconds, as it would not when a real network fails.)
struct Partition;

impl Partition {
    /// `None` when `tc` is missing or not allowed to change the loopback device.
    async fn start(port: u16) -> Option<Partition> {
        // A root left by a run that was killed (this test's own, so an HTB with handle 1:).
        if tc(&["qdisc", "show", "dev", "lo"]).is_ok_and(|shown| shown.contains("htb 1:")) {
            let _ = tc(&["qdisc", "del", "dev", "lo", "root"]);
        }
        let port_text = port.to_string();
        let steps: [&[&str]; 5] = [
            &["qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "direct_qlen", "10000"],
            &[
                "class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb", "rate",
                "8bit", "ceil", "8bit", "burst", "1b", "cburst", "1b",
            ],
            &[
                "qdisc", "add", "dev", "lo", "parent", "1:2", "handle", "2:", "pfifo", "limit",
                "100000",
            ],
            &[
                "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "dport", &port_text, "0xffff", "flowid", "1:2",
            ],
            &[
                "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                "match", "ip", "sport", &port_text, "0xffff", "flowid", "1:2",
            ],
        ];
        for (i, step) in steps.iter().enumerate() {
            if let Err(error) = tc(step) {
                println!("tc {}: {error}", step.join(" "));
                if i > 0 {
                    drop(Partition);
                }
                return None;
            }
        }
        // The class's one free packet: a connection attempt whose answer then waits a minute.
        let spend = TcpStream::connect(("127.0.0.1", port));
        let _ = tokio::time::timeout(Duration::from_millis(300), spend).await;
        Some(Partition)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Err(error) = tc(&["qdisc", "del", "dev", "lo", "root"]) {
            println!("tc qdisc del dev lo root: {error}");
        }
    }
}

/// Runs `tc` with `args`: its standard output, or what went wrong.
fn tc(args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new("tc").args(args).output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

fn usage(account: &str, key: &str) -> String {
    json!({"accountId": account, "service": "smartcheck", "quantity": 1,
           "metadata": {"key": key}})
    .to_string()
}

/// Sends one usage with its own key; `Err` when no answer came within the client's 10 s.
async fn post_usage(target: &Target, account: &str, key: &str) -> Result<Answer, String> {
    target
        .try_post("/v2/usage", &usage(account, key), Some(key))
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn readyz(target: &Target) -> Result<Answer, String> {
    let response = target
        .client
        .get(format!("{}/readyz", target.address))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.map_err(|e| format!("{e:?}"))?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer { status, headers, text, json })
}

/// 503 problem+json with code `unavailable`.
fn assert_unavailable(answer: &Result<Answer, String>, what: &str) {
    let answer = answer
        .as_ref()
        .unwrap_or_else(|e| panic!("{what}: no answer before the client gave up: {e}"));
    assert_eq!(answer.status, 503, "{what}: {answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{what}");
    assert_eq!(answer.code(), "unavailable", "{what}: {answer:?}");
}

/// A node on its own database, reached through a [`Proxy`], with one funded account and the
/// usages acknowledged so far. Fields drop in order: the node, then the proxy, then the
/// database, which outlives both.
struct Outage {
    app: common::TestApp,
    target: Target,
    proxy: Proxy,
    account: String,
    record_id: String,
    acknowledged: HashSet<String>,
    /// Usages answered 503, by key.
    refused: Vec<String>,
    _database: cluster::TestDatabase,
}

impl Outage {
    /// `None` without PostgreSQL. The test's client gives up after `patience`: a hang fails.
    async fn start(patience: Duration) -> Option<Outage> {
        let Some(base) = cluster::base_url() else {
            println!("skipped: no PostgreSQL");
            return None;
        };
        let database = cluster::TestDatabase::create(&base);
        let proxy = Proxy::start(database.server()).await;
        let app = common::spawn_node(&database.url_via("127.0.0.1", proxy.port), &[]).await;
        let client = reqwest::Client::builder().timeout(patience).build().unwrap();
        let target = Target { client, address: app.address.clone() };
        let account = app.create_account().await;
        let record = app.purchase(&account, 1000, json!({"service": "smartcheck"})).await;
        let record_id = record["id"].as_str().unwrap().to_string();
        let mut outage = Outage {
            app,
            target,
            proxy,
            account,
            record_id,
            acknowledged: HashSet::new(),
            refused: Vec::new(),
            _database: database,
        };
        outage.charge(10, "before").await;
        Some(outage)
    }

    /// `count` usages, each answered 201.
    async fn charge(&mut self, count: usize, label: &str) {
        for _ in 0..count {
            let answer = post_usage(&self.target, &self.account, &key(label)).await.unwrap();
            assert_eq!(answer.status, 201, "{answer:?}");
            self.acknowledged.insert(answer.json["id"].as_str().unwrap().to_string());
        }
    }

    /// `count` usages and then `/readyz`, each answered 503 problem+json `unavailable`.
    async fn refused(&mut self, count: usize, during: &str) {
        let started = Instant::now();
        for attempt in 0..count {
            let k = key(during);
            let sent = Instant::now();
            let answer = post_usage(&self.target, &self.account, &k).await;
            println!("usage {attempt} during the {during} answered in {:?}", sent.elapsed());
            assert_unavailable(&answer, &format!("usage {attempt} during the {during}"));
            self.refused.push(k);
        }
        let sent = Instant::now();
        let ready = readyz(&self.target).await;
        println!("/readyz during the {during} answered in {:?}", sent.elapsed());
        assert_unavailable(&ready, &format!("/readyz during the {during}"));
        println!("{during} checks took {:?}", started.elapsed());
    }

    /// Once the database can be reached again, the same process serves a usage (a client
    /// retrying one key) and `/readyz` 200 within `within`.
    async fn heals(&mut self, within: Duration, after: &str) {
        let healed_at = Instant::now();
        let deadline = healed_at + within;
        let retried = key("retried");
        let healed = loop {
            let answer = post_usage(&self.target, &self.account, &retried).await;
            match &answer {
                Ok(answer) if answer.status == 201 => break answer.json.clone(),
                Ok(answer) if answer.status == 503 => {}
                _ => panic!("a usage after the {after}: {answer:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "usage answers 201 within {within:?} of the {after}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        println!("usage answered 201 {:?} after the {after}", healed_at.elapsed());
        self.acknowledged.insert(healed["id"].as_str().unwrap().to_string());
        loop {
            let ready = readyz(&self.target).await;
            match &ready {
                Ok(ready) if ready.status == 200 => break,
                Ok(ready) if ready.status == 503 => {}
                _ => panic!("/readyz after the {after}: {ready:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "/readyz answers 200 within {within:?} of the {after}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("/readyz answered 200 {:?} after the {after}", healed_at.elapsed());
    }

    /// Nothing acknowledged is lost; nothing refused with 503 was charged.
    async fn nothing_lost_nothing_refused_charged(&self) {
        let listed = list_all(&self.app, &format!("/v2/usage?accountId={}", self.account)).await;
        let listed_ids: HashSet<String> =
            listed.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(
            listed_ids, self.acknowledged,
            "the usage list is exactly what was acknowledged"
        );
        let listed_keys: HashSet<&str> =
            listed.iter().map(|u| u["metadata"]["key"].as_str().unwrap()).collect();
        for k in &self.refused {
            assert!(!listed_keys.contains(k.as_str()), "usage {k} answered 503 was not charged");
        }
        let record = self.app.credit(&self.record_id).await;
        assert_eq!(num(&record, "used"), self.acknowledged.len() as u64, "{record}");
        assert_equation(&record);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_database_gives_fast_503s_and_the_node_heals_when_it_returns() {
    let Some(mut outage) = Outage::start(Duration::from_secs(10)).await else { return };
    outage.proxy.cut().await;
    outage.refused(3, "outage").await;
    outage.proxy.restore();
    outage.heals(Duration::from_secs(15), "database returned").await;
    outage.charge(5, "after").await;
    outage.nothing_lost_nothing_refused_charged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_partition_gives_503s_within_seconds_and_the_node_heals_after_it() {
    // The client waits longer than the node may take to notice (10 s), so a hang fails.
    let Some(mut outage) = Outage::start(Duration::from_secs(40)).await else { return };
    // Packets between the node and the database stop; no connection is closed.
    let Some(partition) = Partition::start(outage.proxy.port).await else {
        assert!(
            std::env::var_os("CREDITS_TEST_REQUIRE_TC").is_none(),
            "tc could not drop the proxy's packets (see above), and CREDITS_TEST_REQUIRE_TC is set"
        );
        println!("skipped: tc cannot change the loopback device here");
        outage.proxy.cut().await;
        return;
    };
    outage.refused(2, "partition").await;
    // Packets flow again: the same process heals by itself.
    drop(partition);
    outage.heals(Duration::from_secs(30), "partition ended").await;
    outage.nothing_lost_nothing_refused_charged().await;
    // The proxy's connections to the database are still open: close them before it is dropped.
    outage.proxy.cut().await;
}
