//! Goal: an event is stored in the same transaction as the change that caused it, so a crash
//! right after the acknowledgement never loses it (SPEC section 8, "at least once"): after a
//! SIGKILL and a restart on the same data directory, the event is delivered, with the same
//! `webhook-id`, signed with the same endpoint secret.
//!
//! Method: black box. The real binary runs with private URLs allowed and the retry schedule
//! scaled by 0.01. An endpoint subscribed to `credit.created` points at a receiver in the test
//! that answers 500 (or at a port where nothing listens yet); purchases are acknowledged (201),
//! the server is SIGKILLed at once, the receiver is made to answer 200 (or starts listening), and
//! the server is restarted on the same directory with the same environment by a small spawn
//! helper modelled on `common/mod.rs`. The test then waits for a 200-answered delivery of every
//! acknowledged purchase's event, identified through `GET /v2/events` after the restart.
//!
//! On PostgreSQL a node claims due deliveries by moving their next attempt a lease ahead
//! (ARCHITECTURE.md, "Background work"); a kill that lands between a claim and the record of its
//! attempts leaves them leased, and the restarted node sends them when the lease ends. The
//! servers here run with a 2 s lease instead of 60 s (every attempt in this test ends in
//! milliseconds), so that case too is delivered within the wait; on SQLite nothing is leased.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{spawn_app_with_env, ADMIN_KEY};
use receiver::{assert_envelope, assert_signed, create_endpoint, Captured, Receiver};

const WEBHOOK_ENV: [(&str, &str); 3] = [
    ("CREDITS_WEBHOOK_ALLOW_PRIVATE", "true"),
    ("CREDITS_WEBHOOK_RETRY_SCALE", "0.01"),
    ("CREDITS_WEBHOOK_LEASE_SECS", "2"),
];

/// The binary started again on an existing data directory, with environment.
struct Restarted {
    address: String,
    client: reqwest::Client,
    child: Child,
}

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `credits serve` on `data_dir` with `env`, as `common/mod.rs` `start` does.
fn restart(data_dir: &Path, env: &[(&str, &str)]) -> Restarted {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credits"));
    command
        .arg("serve")
        .env("CREDITS_LISTEN", "127.0.0.1:0")
        .env("CREDITS_DATA_DIR", data_dir)
        .env("CREDITS_ADMIN_KEY", ADMIN_KEY)
        .env_remove("CREDITS_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .envs(env.iter().copied());
    if let Some(url) = common::database_url(data_dir) {
        command.env("CREDITS_DATABASE_URL", url);
    }
    if std::env::var_os("TEST_LOG").is_none() {
        command.env("CREDITS_LOG", "warn");
    }
    let mut child = command.spawn().expect("the credits binary starts");
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("[restarted] {line}");
            }
            if !sent {
                if let Some(address) = line.strip_prefix("credits listening on ") {
                    let _ = sender.send(address.to_string());
                    sent = true;
                }
            }
        }
    });
    let address = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("the restarted server prints its address within 30 s");
    Restarted { address, client: reqwest::Client::new(), child }
}

impl Restarted {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("the restarted server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path} after the restart: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The `credit.created` events of an account, oldest first.
    async fn created_events(&self, account: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/v2/events?type=credit.created&accountId={account}&limit=100"))
            .await;
        assert_eq!(page["hasMore"], false, "{page}");
        let mut found = page["data"].as_array().unwrap().clone();
        found.reverse();
        found
    }

    /// Polls the endpoint's deliveries until every listed event has a succeeded attempt.
    async fn all_succeeded(&self, endpoint: &str, events: &BTreeSet<String>) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page =
                self.get(&format!("/v2/webhook-endpoints/{endpoint}/deliveries?limit=100")).await;
            let items = page["data"].as_array().unwrap().clone();
            let done: BTreeSet<String> = items
                .iter()
                .filter(|d| d["status"] == "succeeded")
                .map(|d| d["eventId"].as_str().unwrap().to_string())
                .collect();
            if events.is_subset(&done) {
                return items;
            }
            assert!(Instant::now() < deadline, "deliveries never all succeeded: {items:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits for a 200-answered request of each event id; returns all requests received.
async fn wait_delivered(hooks: &Receiver, events: &BTreeSet<String>) -> Vec<Captured> {
    let delivered = hooks
        .wait_for(events.len(), Duration::from_secs(10), |r| {
            r.answered == 200 && events.contains(r.webhook_id())
        })
        .await;
    let ids: BTreeSet<String> = delivered.iter().map(|r| r.webhook_id().to_string()).collect();
    assert_eq!(&ids, events, "every acknowledged event is delivered after the restart");
    hooks.requests()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_acknowledged_right_before_sigkill_is_delivered_after_restart_with_the_same_id() {
    let mut app = spawn_app_with_env(&WEBHOOK_ENV).await;
    let hooks = receiver::start().await;
    hooks.set_default(500);
    let account = app.create_account().await;
    let (endpoint, secret) =
        create_endpoint(&app, Some(&account), &hooks.url("/crash"), &["credit.created"]).await;

    let credit = app.purchase(&account, 250, json!({"service": "api"})).await;
    app.kill();
    let before_kill = hooks.requests();
    assert!(before_kill.iter().all(|r| r.answered == 500), "{before_kill:?}");
    hooks.set_default(200);

    let restarted = restart(&app.data_dir, &WEBHOOK_ENV);
    let listed = restarted.created_events(&account).await;
    assert_eq!(listed.len(), 1, "the acknowledged purchase's event survived: {listed:#?}");
    assert_eq!(listed[0]["data"]["id"], credit["id"]);
    let event = listed[0]["id"].as_str().unwrap().to_string();

    let requests = wait_delivered(&hooks, &BTreeSet::from([event.clone()])).await;
    for request in &requests {
        assert_eq!(request.webhook_id(), event, "every attempt carries the event id: {request:?}");
        let body = assert_envelope(request, "credit.created", &account);
        assert_eq!(body["data"], credit, "the delivered data is the acknowledged record");
        assert_signed(&secret, request);
    }
    let items = restarted.all_succeeded(&endpoint, &BTreeSet::from([event.clone()])).await;
    assert!(
        items.iter().all(|d| d["eventId"] == event.as_str()),
        "only this event was attempted: {items:#?}"
    );
    eprintln!(
        "attempts before the kill: {}, after the restart: {}",
        before_kill.len(),
        requests.len() - before_kill.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_acknowledged_before_sigkill_reach_a_receiver_that_was_not_yet_listening() {
    // A port with nothing listening on it: every attempt before the kill is refused.
    let address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut app = spawn_app_with_env(&WEBHOOK_ENV).await;
    let account = app.create_account().await;
    let url = format!("http://{address}/late");
    let (endpoint, secret) = create_endpoint(&app, Some(&account), &url, &["credit.created"]).await;

    let mut credits = Vec::new();
    for amount in 1..=10u64 {
        credits.push(app.purchase(&account, amount * 10, json!({})).await);
    }
    app.kill();

    let listener = {
        let mut tries = 0;
        loop {
            match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(error) if tries < 50 => {
                    tries += 1;
                    eprintln!("binding {address} again: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("cannot bind the receiver's port {address}: {error}"),
            }
        }
    };
    let hooks = receiver::serve_on(listener);
    let restarted = restart(&app.data_dir, &WEBHOOK_ENV);

    let listed = restarted.created_events(&account).await;
    let listed_credits: Vec<Value> = listed.iter().map(|e| e["data"]["id"].clone()).collect();
    let acknowledged: Vec<Value> = credits.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(listed_credits, acknowledged, "one stored event per acknowledged purchase");
    let events: BTreeSet<String> =
        listed.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();

    let requests = wait_delivered(&hooks, &events).await;
    for request in &requests {
        assert_eq!(request.path, "/late");
        let body = assert_envelope(request, "credit.created", &account);
        let listed_event = listed.iter().find(|e| e["id"] == body["id"]).unwrap();
        assert_eq!(&body, listed_event, "the delivery is the stored event");
        assert_signed(&secret, request);
    }
    restarted.all_succeeded(&endpoint, &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_in_flight_at_sigterm_is_recorded_before_exit_and_not_sent_again() {
    let mut app = spawn_app_with_env(&WEBHOOK_ENV).await;
    let hooks = receiver::start().await;
    // The receiver takes its time: the SIGTERM comes while the attempt waits for its answer.
    hooks.set_delay(Duration::from_millis(1500));
    let account = app.create_account().await;
    let (endpoint, _secret) =
        create_endpoint(&app, Some(&account), &hooks.url("/slow"), &["credit.created"]).await;
    app.purchase(&account, 40, json!({})).await;
    hooks.wait_for(1, Duration::from_secs(10), |r| r.path == "/slow").await;
    assert!(app.terminate(), "SIGTERM: the process exits successfully");

    let restarted = restart(&app.data_dir, &WEBHOOK_ENV);
    let listed = restarted.created_events(&account).await;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let event = listed[0]["id"].as_str().unwrap().to_string();
    let page = restarted.get(&format!("/v2/webhook-endpoints/{endpoint}/deliveries")).await;
    let items = page["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one delivery: {items:#?}");
    assert_eq!(items[0]["eventId"], event.as_str());
    assert_eq!(items[0]["status"], "succeeded", "the answer came before the exit: {items:#?}");
    assert_eq!(items[0]["responseCode"], 200, "{items:#?}");
    // Longer than the lease (2 s) and the first retry delay: a claim left behind or an attempt
    // left unrecorded would be sent again by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = hooks.requests();
    assert_eq!(requests.len(), 1, "sent once, not again after the restart: {requests:?}");
}
