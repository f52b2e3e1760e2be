//! The load: setup of funded accounts, time-bounded scenarios and the balance check.
//!
//! Goal: numbers a client of the service would see, and proof that every acknowledged usage was
//! charged exactly once. Method: one task per connection (each with its own HTTP/1.1 keep-alive
//! client, so C tasks are C connections), closed loop (a task sends its next request when the
//! previous answer is read). Each task sends until the deadline and then waits for its last
//! answer; only answers that arrive inside the measured window (after the warm-up, before the
//! deadline) count for throughput and latency, as wrk does, but every answer of the scenario is
//! classified and every charged event is counted per account (warm-up included) for the final
//! balance check. With several nodes (processes sharing one database), connection `i` talks to
//! node `i % N`; setup goes through node 0 and the balance check is spread over the nodes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{json, Value};

/// What one scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /v2/usage`, every request on account 0.
    Hot,
    /// `POST /v2/usage`, a random account per request.
    Spread,
    /// `POST /v2/usage/batch` with this many events, each on a random account.
    Batch(usize),
    /// `GET /healthz`: the HTTP ceiling of this box (no database).
    Healthz,
    /// `GET /v2/balance` of a random account: the read path.
    Balance,
    /// `GET` of the plan's path (a list page), named by this label.
    Get(&'static str),
}

impl Kind {
    pub fn name(self) -> String {
        match self {
            Kind::Hot => "hot".into(),
            Kind::Spread => "spread".into(),
            Kind::Batch(size) => format!("batch{size}"),
            Kind::Healthz => "healthz".into(),
            Kind::Balance => "balance".into(),
            Kind::Get(label) => label.into(),
        }
    }

    pub fn events_per_request(self) -> usize {
        match self {
            Kind::Batch(size) => size,
            _ => 1,
        }
    }

    /// Whether each event is a usage that charges an account.
    pub fn charges(self) -> bool {
        matches!(self, Kind::Hot | Kind::Spread | Kind::Batch(_))
    }
}

/// The service as the load sees it.
pub struct Target {
    /// `http://ADDR` of each node.
    pub bases: Vec<String>,
    pub authorization: String,
    pub accounts: Vec<String>,
}

impl Target {
    /// The node that connection `index` talks to (round robin).
    pub fn base(&self, index: usize) -> &str {
        &self.bases[index % self.bases.len().max(1)]
    }
}

/// How long a request may take before the load counts it a transport error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An HTTP/1.1 client that holds one keep-alive connection to the loopback service (setup,
/// seeding and the balance check; the measured load uses a [`Connection`] per task).
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1)
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")
}

/// The answer of one request, read whole.
async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), String> {
    match request.send().await {
        Err(error) => Err(transport_error(&error)),
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) => Ok((status, body.to_vec())),
                Err(error) => Err(transport_error(&error)),
            }
        }
    }
}

fn transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "transport: timeout".into()
    } else if error.is_connect() {
        "transport: connect".into()
    } else if error.is_body() || error.is_decode() {
        "transport: body".into()
    } else {
        "transport: request".into()
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

/// xorshift64*: enough randomness to pick accounts, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

/// One task's counts.
pub struct Tally {
    /// Latency of each request answered in the measured window, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Requests answered (any answer) in the measured window.
    pub requests: u64,
    /// Events of those requests that succeeded.
    pub events_ok: u64,
    /// Every request of the scenario, warm-up included.
    pub sent_total: u64,
    /// Failures over the whole scenario (warm-up included), by kind, and one body of each.
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    /// Per account: usages acknowledged 201, and usages whose outcome is unknown (a transport
    /// error or a 5xx: they may or may not have been charged). Warm-up included.
    pub charged: Vec<u32>,
    pub unknown: Vec<u32>,
}

impl Tally {
    fn new(accounts: usize) -> Tally {
        Tally {
            latencies_us: Vec::new(),
            requests: 0,
            events_ok: 0,
            sent_total: 0,
            errors: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            charged: vec![0; accounts],
            unknown: vec![0; accounts],
        }
    }

    fn error(&mut self, kind: String, sample: String) {
        *self.errors.entry(kind.clone()).or_insert(0) += 1;
        self.error_samples.entry(kind).or_insert(sample);
    }

    /// Adds another task's counts to these.
    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.requests += other.requests;
        self.events_ok += other.events_ok;
        self.sent_total += other.sent_total;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_insert(0) += count;
        }
        for (kind, sample) in other.error_samples {
            self.error_samples.entry(kind).or_insert(sample);
        }
        for (mine, theirs) in self.charged.iter_mut().zip(other.charged) {
            *mine += theirs;
        }
        for (mine, theirs) in self.unknown.iter_mut().zip(other.unknown) {
            *mine += theirs;
        }
    }

    pub fn empty(accounts: usize) -> Tally {
        Tally::new(accounts)
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    data: Vec<BatchEvent>,
}

#[derive(Deserialize)]
struct BatchEvent {
    status: u16,
    error: Option<Value>,
}

/// The fixed part of one scenario run.
pub struct Plan {
    pub kind: Kind,
    pub tag: String,
    pub measure_from: Instant,
    pub end: Instant,
    /// What a `Kind::Get` scenario reads (path and query).
    pub path: String,
}

/// `POST /v2/usage/batch` of one `smartcheck` x 1 usage per `(idempotency key, account index)`;
/// the account indexes are pushed to `picked`, in order, for the answer's classification.
fn batch_request(
    client: &reqwest::Client,
    base: &str,
    target: &Target,
    events: impl ExactSizeIterator<Item = (String, usize)>,
    picked: &mut Vec<usize>,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/v2/usage/batch"))
        .header("authorization", &target.authorization)
        .header("content-type", "application/json")
        .body(batch_body(target, events, picked))
}

/// The body of [`batch_request`].
fn batch_body(
    target: &Target,
    events: impl ExactSizeIterator<Item = (String, usize)>,
    picked: &mut Vec<usize>,
) -> String {
    let mut body = String::with_capacity(events.len() * 128 + 16);
    body.push_str(r#"{"events":["#);
    for (event, (key, account)) in events.enumerate() {
        picked.push(account);
        if event > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"idempotencyKey":"{key}","accountId":"{}","service":"smartcheck","quantity":1}}"#,
            target.accounts[account]
        );
    }
    body.push_str("]}");
    body
}

fn usage_body(account: &str) -> String {
    format!(r#"{{"accountId":"{account}","service":"smartcheck","quantity":1}}"#)
}

/// One connection's closed loop until the plan's end.
pub async fn worker(index: usize, target: Arc<Target>, plan: Arc<Plan>) -> Tally {
    let accounts = target.accounts.len();
    let mut tally = Tally::new(accounts);
    let mut rng = Rng::new(
        0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index as u64 + 1).wrapping_add(plan.tag.len() as u64),
    );
    let name = plan.kind.name();
    let mut sequence: u64 = 0;
    let mut picked: Vec<usize> = Vec::new();
    let mut connection = Connection::new(target.base(index));
    let authorization = target.authorization.as_str();
    loop {
        let started = Instant::now();
        if started >= plan.end {
            break;
        }
        sequence += 1;
        picked.clear();
        let request = match plan.kind {
            Kind::Hot | Kind::Spread => {
                let account = if plan.kind == Kind::Hot { 0 } else { rng.below(accounts) };
                picked.push(account);
                let key = format!("{}-{name}-{index}-{sequence}", plan.tag);
                Connection::post("/v2/usage", authorization, Some(&key))
                    .body(usage_body(&target.accounts[account]))
            }
            Kind::Batch(size) => {
                let events = (0..size).map(|event| {
                    (format!("{}-{name}-{index}-{sequence}-{event}", plan.tag), rng.below(accounts))
                });
                Connection::post("/v2/usage/batch", authorization, None).body(batch_body(
                    &target,
                    events,
                    &mut picked,
                ))
            }
            Kind::Healthz => Connection::get("/healthz", None),
            Kind::Balance => {
                let account = rng.below(accounts);
                // Account ids are URL-safe (`acct_` + ULID).
                let path = format!("/v2/balance?accountId={}", target.accounts[account]);
                Connection::get(&path, Some(authorization))
            }
            Kind::Get(_) => Connection::get(&plan.path, Some(authorization)),
        };
        let answer = match request {
            Ok(request) => connection.send(request).await,
            Err(error) => Err(format!("request: {error}")),
        };
        let answered = Instant::now();
        tally.sent_total += 1;
        let events_ok = classify(plan.kind, &picked, answer, &mut tally);
        if answered >= plan.measure_from && answered <= plan.end {
            let micros = answered.duration_since(started).as_micros();
            tally.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
            tally.requests += 1;
            tally.events_ok += events_ok;
        }
    }
    tally
}

/// The measured load's HTTP/1.1 keep-alive connection, made with hyper's connection-level client
/// rather than reqwest's pooled one: the load generator shares the box's two cores with the
/// service and PostgreSQL, so it should cost as little per request as pgbench does for the
/// baseline (reqwest's pool, URL parsing and boxed futures cost about a third of a core at
/// 10,000 requests/s). A connection that fails is made again for the next request.
struct Connection {
    /// `host:port` of the node.
    authority: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(base: &str) -> Connection {
        let authority = base.trim_start_matches("http://").trim_end_matches('/').to_string();
        Connection { authority, sender: None }
    }

    fn post(
        path: &str,
        authorization: &str,
        idempotency_key: Option<&str>,
    ) -> http::request::Builder {
        let builder = http::Request::post(path)
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, "application/json");
        match idempotency_key {
            Some(key) => builder.header("idempotency-key", key),
            None => builder,
        }
    }

    fn get(path: &str, authorization: Option<&str>) -> Result<http::Request<String>, http::Error> {
        let builder = http::Request::get(path);
        match authorization {
            Some(authorization) => builder.header(http::header::AUTHORIZATION, authorization),
            None => builder,
        }
        .body(String::new())
    }

    /// Sends one request and reads its whole answer, within [`REQUEST_TIMEOUT`].
    async fn send(&mut self, request: http::Request<String>) -> Result<(u16, Vec<u8>), String> {
        let (mut parts, body) = request.into_parts();
        parts.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_str(&self.authority).map_err(|e| format!("host: {e}"))?,
        );
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await;
        let answer = answer.unwrap_or_else(|_| Err("transport: timeout".into()));
        if answer.is_err() {
            self.sender = None;
        }
        answer
    }

    async fn exchange(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<(u16, Vec<u8>), String> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(self.connect().await?),
        };
        sender.ready().await.map_err(|_| "transport: request".to_string())?;
        let response =
            sender.send_request(request).await.map_err(|_| "transport: request".to_string())?;
        let status = response.status().as_u16();
        let body =
            response.into_body().collect().await.map_err(|_| "transport: body".to_string())?;
        Ok((status, body.to_bytes().to_vec()))
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|_| "transport: connect".to_string())?;
        stream.set_nodelay(true).map_err(|_| "transport: connect".to_string())?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|_| "transport: connect".to_string())?;
        // Drives the connection; it ends when the sender is dropped or the peer closes.
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// Counts one answer; returns how many of its events succeeded.
fn classify(
    kind: Kind,
    picked: &[usize],
    answer: Result<(u16, Vec<u8>), String>,
    tally: &mut Tally,
) -> u64 {
    let (status, body) = match answer {
        Err(kind_of_failure) => {
            for &account in picked {
                tally.unknown[account] += 1;
            }
            tally.error(kind_of_failure.clone(), kind_of_failure);
            return 0;
        }
        Ok(answer) => answer,
    };
    match kind {
        Kind::Healthz | Kind::Balance | Kind::Get(_) => {
            if status == 200 {
                1
            } else {
                tally.error(format!("HTTP {status}"), excerpt(&body));
                0
            }
        }
        Kind::Hot | Kind::Spread => {
            let account = picked[0];
            if status == 201 {
                tally.charged[account] += 1;
                1
            } else {
                if status >= 500 {
                    tally.unknown[account] += 1;
                }
                tally.error(format!("HTTP {status}"), excerpt(&body));
                0
            }
        }
        Kind::Batch(_) => {
            if status != 200 {
                if status >= 500 {
                    for &account in picked {
                        tally.unknown[account] += 1;
                    }
                }
                tally.error(format!("HTTP {status}"), excerpt(&body));
                return 0;
            }
            let parsed: Result<BatchAnswer, _> = serde_json::from_slice(&body);
            let events = match parsed {
                Ok(answer) if answer.data.len() == picked.len() => answer.data,
                _ => {
                    for &account in picked {
                        tally.unknown[account] += 1;
                    }
                    tally.error("batch: malformed answer".into(), excerpt(&body));
                    return 0;
                }
            };
            let mut ok = 0;
            for (event, &account) in events.iter().zip(picked) {
                if event.status == 201 {
                    tally.charged[account] += 1;
                    ok += 1;
                } else {
                    if event.status >= 500 {
                        tally.unknown[account] += 1;
                    }
                    let problem = event.error.as_ref().map(Value::to_string);
                    tally.error(
                        format!("event {}", event.status),
                        excerpt(problem.unwrap_or_default().as_bytes()),
                    );
                }
            }
            ok
        }
    }
}

/// Sends the usages `events` (one `smartcheck` x 1 each; event `i` on account `i % modulo` of
/// the target, with the idempotency key `{tag}-{label}-{i}`) in batches of `size`, over the
/// clients at once (closed loop, each client takes the next batch). Every answer is classified
/// as in the `batch` scenarios; returns the tally (no latencies) and the time it took.
pub async fn sweep(
    clients: &[reqwest::Client],
    target: Arc<Target>,
    label: &str,
    tag: &str,
    events: std::ops::Range<usize>,
    modulo: usize,
    size: usize,
) -> anyhow::Result<(Tally, Duration)> {
    let size = size.clamp(1, 1000);
    let modulo = modulo.clamp(1, target.accounts.len().max(1));
    let batches = events.len().div_ceil(size);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (client, next, target) = (client.clone(), Arc::clone(&next), Arc::clone(&target));
        let (label, tag, events) = (label.to_string(), tag.to_string(), events.clone());
        tasks.spawn(async move {
            let mut tally = Tally::new(target.accounts.len());
            let mut picked = Vec::with_capacity(size);
            loop {
                let batch = next.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    break;
                }
                let first = events.start + batch * size;
                let last = (first + size).min(events.end);
                picked.clear();
                let events = (first..last).map(|i| (format!("{tag}-{label}-{i}"), i % modulo));
                let request = batch_request(&client, target.base(0), &target, events, &mut picked);
                let answer = send(request).await;
                tally.sent_total += 1;
                tally.requests += 1;
                tally.events_ok += classify(Kind::Batch(size), &picked, answer, &mut tally);
            }
            tally
        });
    }
    let mut tally = Tally::new(target.accounts.len());
    while let Some(joined) = tasks.join_next().await {
        tally.merge(joined.context("a sweep task panicked")?);
    }
    Ok((tally, started.elapsed()))
}

/// Sends `body` to `path` of node 0 as the operator; any status but `expect` is an error naming
/// it.
pub async fn post_json(
    client: &reqwest::Client,
    target: &Target,
    path: &str,
    body: &Value,
    expect: u16,
) -> anyhow::Result<Value> {
    let response = client
        .post(format!("{}{path}", target.base(0)))
        .header("authorization", &target.authorization)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.with_context(|| format!("POST {path}"))?;
    if status != expect {
        bail!("POST {path} answered {status}, expected {expect}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("POST {path} answered non-JSON: {text}"))
}

/// `GET path_and_query` of node `node % N` as the operator: the status and the JSON body.
pub async fn get_json(
    client: &reqwest::Client,
    target: &Target,
    node: usize,
    path_and_query: &str,
) -> anyhow::Result<(u16, Value)> {
    let response = client
        .get(format!("{}{path_and_query}", target.base(node)))
        .header("authorization", &target.authorization)
        .send()
        .await
        .with_context(|| format!("GET {path_and_query}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Creates `count` accounts and funds each with one never-expiring `any` purchase of `fund`,
/// `connections` at a time, through node 0. Returns the account ids in order.
pub async fn setup_accounts(
    clients: &[reqwest::Client],
    target: &Target,
    count: usize,
    fund: u64,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let client = client.clone();
        let next = Arc::clone(&next);
        let target = Target {
            bases: target.bases.clone(),
            authorization: target.authorization.clone(),
            accounts: Vec::new(),
        };
        tasks.spawn(async move {
            let mut made = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                let account = post_json(
                    &client,
                    &target,
                    "/v2/accounts",
                    &json!({"name": format!("bench account {index}")}),
                    201,
                )
                .await?;
                let id = account["id"].as_str().context("an account without id")?.to_string();
                post_json(
                    &client,
                    &target,
                    "/v2/credits",
                    &json!({"accountId": id, "amount": fund, "description": "bench funding"}),
                    201,
                )
                .await?;
                made.push((index, id));
            }
            anyhow::Ok(made)
        });
    }
    let mut ids = vec![String::new(); count];
    while let Some(joined) = tasks.join_next().await {
        for (index, id) in joined.context("a setup task panicked")?? {
            ids[index] = id;
        }
    }
    if ids.iter().any(String::is_empty) {
        bail!("setup left some accounts without an id");
    }
    Ok(ids)
}

/// The outcome of the final balance check.
pub struct Check {
    pub checked: usize,
    pub exact: usize,
    /// Within the range that unknown-outcome requests allow, but not exact.
    pub within_unknown: usize,
    pub mismatches: Vec<String>,
    pub charged_total: u64,
    pub unknown_total: u64,
}

/// For `sample` accounts (account 0, the hot one, always among them): available must equal
/// `fund - cost * charged`, give or take the usages whose outcome is unknown, and nothing may
/// stay reserved. Checker `i` reads through node `i % N`.
pub async fn check_balances(
    clients: &[reqwest::Client],
    target: Arc<Target>,
    totals: &Tally,
    fund: u64,
    cost: u64,
    sample: usize,
) -> anyhow::Result<Check> {
    let accounts = target.accounts.len();
    let sample = sample.clamp(1, accounts);
    let step = (accounts / sample).max(1);
    let chosen: Vec<usize> = (0..sample).map(|i| i * step).collect();
    let chosen = Arc::new(chosen);
    let next = Arc::new(AtomicUsize::new(0));
    let expected: Arc<Vec<(u64, u64)>> = Arc::new(
        totals
            .charged
            .iter()
            .zip(&totals.unknown)
            .map(|(&c, &u)| (u64::from(c), u64::from(u)))
            .collect(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for (checker, client) in clients.iter().enumerate() {
        let client = client.clone();
        let (chosen, next, expected, target) =
            (Arc::clone(&chosen), Arc::clone(&next), Arc::clone(&expected), Arc::clone(&target));
        tasks.spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&account) = chosen.get(i) else {
                    break;
                };
                let id = &target.accounts[account];
                let (status, balance) =
                    get_json(&client, &target, checker, &format!("/v2/balance?accountId={id}"))
                        .await?;
                let (charged, unknown) = expected[account];
                let high = fund.saturating_sub(cost * charged);
                let low = high.saturating_sub(cost * unknown);
                let available = balance["available"].as_u64();
                let reserved = balance["reserved"].as_u64();
                let verdict = match (status, available, reserved) {
                    (200, Some(a), Some(0)) if a == high => Ok(true),
                    (200, Some(a), Some(0)) if a >= low && a <= high => Ok(false),
                    _ => Err(format!(
                        "account {account} ({id}): GET /v2/balance {status} available={available:?} \
                         reserved={reserved:?}, expected available {low}..={high} \
                         (funded {fund}, {charged} usages acknowledged, {unknown} unknown)"
                    )),
                };
                results.push(verdict);
            }
            anyhow::Ok(results)
        });
    }
    let mut check = Check {
        checked: 0,
        exact: 0,
        within_unknown: 0,
        mismatches: Vec::new(),
        charged_total: totals.charged.iter().map(|&c| u64::from(c)).sum(),
        unknown_total: totals.unknown.iter().map(|&u| u64::from(u)).sum(),
    };
    while let Some(joined) = tasks.join_next().await {
        for verdict in joined.context("a check task panicked")?? {
            check.checked += 1;
            match verdict {
                Ok(true) => check.exact += 1,
                Ok(false) => check.within_unknown += 1,
                Err(mismatch) => check.mismatches.push(mismatch),
            }
        }
    }
    Ok(check)
}
