//! PostgreSQL with several nodes: a node sends the usages of its hot accounts to the leader node
//! (`credits_store::Leadership`), which runs them in its own batches.
//!
//! Goal: one hot account's usages from every node share one writer's batches, so its row lock
//! is taken once per batch by one node, instead of by each node in turn with smaller batches and
//! a wait for the lock in between (3 nodes on one account were slower than 1).
//! Method: a usage is hot when this node has another usage of the same account in flight, and
//! for [`HOT_FOR`] after (counted only while another node leads). Hot usages queue here; sender
//! tasks ([`SENDERS`] by default) each take everything queued and send it to the leader in one
//! signed `POST /internal/forward`, which the leader hands to its store as one job and answers
//! with every stored answer. Anything else (the leader gone or
//! changed, a timeout, an answer that is not one) runs the usages here, as if they had never
//! been sent: a usage always has an idempotency key, so one the leader did run replays its
//! stored answer instead of charging twice. Usages of accounts that are not hot (the spread
//! load), usage batches and every other write stay on the node that received them.
//!
//! The request is signed with HMAC-SHA256 under a key every node derives from the shared
//! webhook key file (`SecretBox::node_key`), over a timestamp and the body; a signature older
//! than [`SIGNATURE_AGE_MAX`] is refused. It names the run of the leader it is meant for, so an
//! address reused by another process is refused too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};

use credits_core::Actor;
use credits_store::{
    Command, Cost, Executed, Idempotency, Leadership, NewUsage, Rendered, Store, StoreError,
    WriteRequest,
};

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

/// How long an account stays hot after two of its usages were in flight here at once.
const HOT_FOR: Duration = Duration::from_secs(1);
/// How many usages one forwarded request carries at most.
const FORWARD_BATCH_MAX: usize = 256;
/// Forwarded requests in flight at once, by default: while the leader runs one, the next fills
/// up.
pub const SENDERS: usize = 1;
/// Idle connections to the leader kept per sender (see [`Forwarder::start`]).
const IDLE_CONNECTIONS_PER_SENDER: usize = 4;
/// How long a forwarded request may take before its usages run here instead.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node runs hot usages itself after a forwarded request to the leader failed (no
/// connection, a timeout, no answer): a leader it cannot reach must not cost every hot usage a
/// timeout. A new leader is tried at once.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// How old a forwarded request's signature may be.
const SIGNATURE_AGE_MAX: Duration = Duration::from_secs(60);
/// The internal path a leader receives forwarded usages at.
pub const FORWARD_PATH: &str = "/internal/forward";

type HmacSha256 = Hmac<Sha256>;

/// Sends hot accounts' usages to the leader; one per node, in [`AppState`].
pub struct Forwarder {
    leadership: Leadership,
    key: [u8; 32],
    client: reqwest::Client,
    queue: mpsc::Sender<Item>,
    hot: HotAccounts,
    /// The leader (its run id) that failed last, and until when it is not sent to.
    paused: Mutex<Option<(String, Instant)>>,
}

/// Usages in flight on this node per account, and until when each account is hot.
#[derive(Default)]
struct HotAccounts {
    accounts: Mutex<HotMap>,
}

#[derive(Default)]
struct HotMap {
    accounts: HashMap<String, Heat>,
    /// The map's size after its last purge: it is purged again when it has doubled.
    purged_at: usize,
}

struct Heat {
    in_flight: u32,
    hot_until: Instant,
}

impl HotAccounts {
    /// A usage of `account` begins: whether the account is hot (another of its usages is in
    /// flight, or was within [`HOT_FOR`]).
    fn enter(&self, account: &str, now: Instant) -> bool {
        let mut map = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.accounts.len() >= 1024 && map.accounts.len() >= 2 * map.purged_at {
            // Accounts that cooled down with nothing in flight: amortized, one pass per doubling.
            map.accounts.retain(|_, heat| heat.in_flight > 0 || heat.hot_until > now);
            map.purged_at = map.accounts.len();
        }
        if !map.accounts.contains_key(account) {
            map.accounts.insert(account.to_string(), Heat { in_flight: 0, hot_until: now });
        }
        let Some(heat) = map.accounts.get_mut(account) else { return false };
        heat.in_flight += 1;
        if heat.in_flight > 1 {
            heat.hot_until = now + HOT_FOR;
        }
        heat.hot_until > now
    }

    /// A usage of `account` ended.
    fn leave(&self, account: &str, now: Instant) {
        let mut map = self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(heat) = map.accounts.get_mut(account) {
            heat.in_flight = heat.in_flight.saturating_sub(1);
            if heat.in_flight == 0 && heat.hot_until <= now {
                map.accounts.remove(account);
            }
        }
    }
}

/// A usage queued for the leader, and where its answer goes: the leader's stored answer, or the
/// request itself back, to run here.
struct Item {
    request: WriteRequest,
    reply: oneshot::Sender<Result<Executed, WriteRequest>>,
}

impl Forwarder {
    /// Starts the sender tasks on the current runtime.
    pub fn start(
        leadership: Leadership,
        key: [u8; 32],
        senders: usize,
    ) -> Result<Arc<Forwarder>, reqwest::Error> {
        let senders = senders.max(1);
        let client = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            // Room for more idle connections than senders: a request that finds none idle (its
            // sender's last one not yet handed back to the pool) opens another, and a pool held
            // to one connection per sender closed that one again right after. Three nodes on one
            // hot account opened and closed about 100 connections a second that way.
            .pool_max_idle_per_host(senders * IDLE_CONNECTIONS_PER_SENDER)
            .build()?;
        let (queue, receiver) = mpsc::channel(FORWARD_BATCH_MAX * senders);
        let forwarder = Arc::new(Forwarder {
            leadership,
            key,
            client,
            queue,
            hot: HotAccounts::default(),
            paused: Mutex::new(None),
        });
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..senders {
            tokio::spawn(send_forever(receiver.clone(), forwarder.clone()));
        }
        Ok(forwarder)
    }

    /// Runs a write: a hot account's usage at the leader when another node leads, anything else
    /// (and whatever the leader did not answer) in this node's store.
    pub async fn write(
        &self,
        store: &Store,
        request: WriteRequest,
    ) -> Result<Executed, StoreError> {
        let account = match (&request.command, &request.idempotency) {
            (Command::RecordUsage(new), Some(_)) if self.leader_reachable() => {
                new.account_id.clone()
            }
            // The leader itself, and every node while no leader can be sent to, take the
            // store's path with nothing counted.
            _ => return store.write(request).await,
        };
        let heat = HeatGuard::enter(&self.hot, account);
        if !heat.hot {
            return store.write(request).await;
        }
        let (reply, answer) = oneshot::channel();
        let request = match self.queue.send(Item { request, reply }).await {
            Ok(()) => match answer.await {
                Ok(Ok(executed)) => {
                    metrics::counter!("credits_forwarded_usages", "outcome" => "answered")
                        .increment(1);
                    return Ok(executed);
                }
                Ok(Err(request)) => request,
                // The sender task dropped the usage unanswered (it panicked): nothing to run.
                Err(_) => return Err(StoreError::Unavailable("forwarding stopped".into())),
            },
            Err(mpsc::error::SendError(item)) => item.request,
        };
        metrics::counter!("credits_forwarded_usages", "outcome" => "ran_here").increment(1);
        store.write(request).await
    }

    /// Whether another node leads and was not found unreachable within [`PAUSE_AFTER_FAILURE`].
    fn leader_reachable(&self) -> bool {
        self.leadership.current().other.as_ref().is_some_and(|leader| {
            let paused = self.paused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            !paused.as_ref().is_some_and(|(id, until)| *id == leader.id && Instant::now() < *until)
        })
    }
}

/// A usage of an account counted in flight, until it drops.
struct HeatGuard<'h> {
    hot_accounts: &'h HotAccounts,
    account: String,
    /// Whether the account was hot when the usage began.
    hot: bool,
}

impl<'h> HeatGuard<'h> {
    fn enter(hot_accounts: &'h HotAccounts, account: String) -> HeatGuard<'h> {
        let hot = hot_accounts.enter(&account, Instant::now());
        HeatGuard { hot_accounts, account, hot }
    }
}

impl Drop for HeatGuard<'_> {
    fn drop(&mut self) {
        self.hot_accounts.leave(&self.account, Instant::now());
    }
}

/// One sender: takes everything queued (up to [`FORWARD_BATCH_MAX`]), sends it to the leader,
/// answers each usage with the leader's answer or gives it back (run it here).
async fn send_forever(
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Item>>>,
    forwarder: Arc<Forwarder>,
) {
    loop {
        let items = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else { return };
            let mut items = vec![first];
            while items.len() < FORWARD_BATCH_MAX {
                match receiver.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
            items
        };
        metrics::histogram!("credits_forward_batch_usages").record(items.len() as f64);
        let answers = match &forwarder.leadership.current().other {
            Some(leader) => match send(&forwarder.client, leader, &forwarder.key, &items).await {
                Ok(answers) => answers,
                Err(error) => {
                    // At most once per pause: the usages run here meanwhile.
                    tracing::warn!(%error, url = %leader.url, "could not forward to the leader; \
                        running hot usages here for {PAUSE_AFTER_FAILURE:?}");
                    let until = Instant::now() + PAUSE_AFTER_FAILURE;
                    *forwarder.paused.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((leader.id.clone(), until));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let mut answers = answers.into_iter();
        for item in items {
            let _ = item.reply.send(answers.next().flatten().ok_or(item.request));
        }
    }
}

async fn send(
    client: &reqwest::Client,
    leader: &credits_store::LeaderAddress,
    key: &[u8; 32],
    items: &[Item],
) -> Result<Vec<Option<Executed>>, String> {
    let usages = items.iter().filter_map(|item| ForwardedUsage::of(&item.request)).collect();
    let body = serde_json::to_vec(&Forwarded { leader: leader.id.clone(), usages })
        .map_err(|e| e.to_string())?;
    let timestamp = unix_seconds();
    let signature = encode(&sign(key, timestamp, &body));
    let url = format!("{}{FORWARD_PATH}", leader.url.trim_end_matches('/'));
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the leader answered {}", response.status()));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let answered: Answered = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if answered.answers.len() != items.len() {
        return Err("the leader answered another number of usages".into());
    }
    Ok(answered.answers.into_iter().map(|answer| answer.map(Answer::executed)).collect())
}

const TIMESTAMP_HEADER: &str = "credits-node-timestamp";
const SIGNATURE_HEADER: &str = "credits-node-signature";

fn sign(key: &[u8; 32], timestamp: u64, body: &[u8]) -> Vec<u8> {
    mac(key, timestamp, body).finalize().into_bytes().to_vec()
}

fn mac(key: &[u8; 32], timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Bytes as text in a header or a JSON string: unpadded URL-safe base64.
fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

/// Whether the request carries a fresh signature of its body under `key` (compared in constant
/// time).
fn verified(key: &[u8; 32], headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(timestamp), Some(signature)) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER))
    else {
        return false;
    };
    let (Ok(timestamp), Some(signature)) = (timestamp.parse::<u64>(), decode(signature)) else {
        return false;
    };
    if unix_seconds().abs_diff(timestamp) > SIGNATURE_AGE_MAX.as_secs() {
        return false;
    }
    mac(key, timestamp, body).verify_slice(&signature).is_ok()
}

/// `POST /internal/forward`: the usages another node forwarded, run here as one job.
pub(crate) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(forwarder) = &state.forward else {
        return Err(ApiError::not_found("no route for POST /internal/forward"));
    };
    if !verified(&forwarder.key, &headers, &body) {
        return Err(ApiError::new(ErrorCode::Unauthorized, "not signed by a node of this cluster"));
    }
    let forwarded: Forwarded = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("not a forwarded batch: {e}")))?;
    if forwarded.leader != forwarder.leadership.id() {
        return Err(ApiError::new(ErrorCode::InvalidState, "meant for another node's run"));
    }
    let requests: Vec<WriteRequest> = forwarded
        .usages
        .into_iter()
        .map(ForwardedUsage::request)
        .collect::<Option<_>>()
        .ok_or_else(|| ApiError::bad_request("a forwarded usage is malformed"))?;
    let results = state.store.write_many(requests).await?;
    let answers = results.into_iter().map(|result| result.ok().map(Answer::of)).collect();
    Ok(axum::Json(Answered { answers }).into_response())
}

#[derive(Serialize, Deserialize)]
struct Forwarded {
    /// The run id of the leader this is meant for.
    leader: String,
    usages: Vec<ForwardedUsage>,
}

/// A usage as the receiving node authenticated and parsed it, with its idempotency key.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ForwardedUsage {
    scope: String,
    key: String,
    request_hash: String,
    account_id: String,
    service: String,
    operation: Option<String>,
    quantity: u64,
    /// The cost given with the usage, if any (else the catalog's, for `catalog`).
    explicit_cost: Option<u64>,
    catalog_operation: Option<String>,
    catalog_quantity: u64,
    member_id: Option<String>,
    api_key_id: Option<String>,
    metadata: Option<String>,
}

impl ForwardedUsage {
    fn of(request: &WriteRequest) -> Option<ForwardedUsage> {
        let (Command::RecordUsage(new), Some(idempotency)) =
            (&request.command, &request.idempotency)
        else {
            return None;
        };
        let (explicit_cost, catalog_operation, catalog_quantity) = match &new.cost {
            Cost::Explicit(credits) => (Some(*credits), None, 0),
            Cost::Catalog { operation, quantity } => (None, operation.clone(), *quantity),
        };
        Some(ForwardedUsage {
            scope: idempotency.scope.clone(),
            key: idempotency.key.clone(),
            request_hash: encode(&idempotency.request_hash),
            account_id: new.account_id.clone(),
            service: new.service.clone(),
            operation: new.operation.clone(),
            quantity: new.quantity,
            explicit_cost,
            catalog_operation,
            catalog_quantity,
            member_id: new.actor.member_id.clone(),
            api_key_id: new.actor.api_key_id.clone(),
            metadata: new.metadata.clone(),
        })
    }

    fn request(self) -> Option<WriteRequest> {
        let request_hash = decode(&self.request_hash)?.try_into().ok()?;
        let cost = match self.explicit_cost {
            Some(credits) => Cost::Explicit(credits),
            None => {
                Cost::Catalog { operation: self.catalog_operation, quantity: self.catalog_quantity }
            }
        };
        Some(WriteRequest {
            idempotency: Some(Idempotency { scope: self.scope, key: self.key, request_hash }),
            command: Command::RecordUsage(NewUsage {
                account_id: self.account_id,
                service: self.service,
                operation: self.operation,
                quantity: self.quantity,
                cost,
                actor: Actor { member_id: self.member_id, api_key_id: self.api_key_id },
                metadata: self.metadata,
            }),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Answered {
    /// Each usage's stored answer, in order; `null` for one the leader could not run.
    answers: Vec<Option<Answer>>,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    status: u16,
    body: String,
    replayed: bool,
}

impl Answer {
    fn of(executed: Executed) -> Answer {
        Answer {
            status: executed.rendered.status,
            body: String::from_utf8_lossy(&executed.rendered.body).into_owned(),
            replayed: executed.replayed,
        }
    }

    fn executed(self) -> Executed {
        Executed {
            rendered: Rendered { status: self.status, body: self.body.into_bytes() },
            replayed: self.replayed,
            outcome: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signed(key: &[u8; 32], timestamp: u64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, timestamp.to_string().parse().unwrap());
        headers.insert(SIGNATURE_HEADER, encode(&sign(key, timestamp, body)).parse().unwrap());
        headers
    }

    #[test]
    fn only_a_fresh_signature_of_the_body_under_the_key_is_accepted() {
        let key = [7u8; 32];
        let now = unix_seconds();
        assert!(verified(&key, &signed(&key, now, b"{}"), b"{}"));
        assert!(!verified(&key, &signed(&key, now, b"{}"), b"{ }"), "another body");
        assert!(!verified(&[8u8; 32], &signed(&key, now, b"{}"), b"{}"), "another key");
        let old = now - SIGNATURE_AGE_MAX.as_secs() - 1;
        assert!(!verified(&key, &signed(&key, old, b"{}"), b"{}"), "too old");
        assert!(!verified(&key, &HeaderMap::new(), b"{}"), "unsigned");
    }

    #[test]
    fn an_account_is_hot_while_two_of_its_usages_overlap_and_for_a_while_after() {
        let hot = HotAccounts::default();
        let t0 = Instant::now();
        assert!(!hot.enter("a", t0), "one usage alone");
        assert!(hot.enter("a", t0), "a second one while the first is in flight");
        assert!(!hot.enter("b", t0), "another account is not");
        hot.leave("a", t0);
        hot.leave("a", t0);
        assert!(hot.enter("a", t0 + HOT_FOR / 2), "still hot a moment after");
        hot.leave("a", t0 + HOT_FOR / 2);
        assert!(!hot.enter("a", t0 + HOT_FOR * 2), "cold once the heat has passed");
    }

    #[test]
    fn accounts_that_cooled_down_are_forgotten() {
        let hot = HotAccounts::default();
        let t0 = Instant::now();
        // 10,000 accounts, each hot once (two usages overlapping), then left alone.
        for i in 0..10_000 {
            let account = format!("acc_{i}");
            hot.enter(&account, t0);
            hot.enter(&account, t0);
            hot.leave(&account, t0);
            hot.leave(&account, t0);
        }
        let later = t0 + HOT_FOR * 2;
        for i in 0..10_000 {
            hot.enter(&format!("new_{i}"), later);
        }
        let kept = hot.accounts.lock().unwrap().accounts.len();
        assert!(kept < 15_000, "{kept} accounts kept: the cooled ones were not purged");
    }

    #[test]
    fn a_forwarded_usage_is_the_same_request_on_arrival() {
        for cost in
            [Cost::Explicit(5), Cost::Catalog { operation: Some("scan".into()), quantity: 3 }]
        {
            let request = WriteRequest {
                idempotency: Some(Idempotency {
                    scope: "acc_1".into(),
                    key: "k-1".into(),
                    request_hash: [9u8; 32],
                }),
                command: Command::RecordUsage(NewUsage {
                    account_id: "acc_1".into(),
                    service: "smartcheck".into(),
                    operation: Some("scan".into()),
                    quantity: 3,
                    cost,
                    actor: Actor { member_id: Some("mem_1".into()), api_key_id: None },
                    metadata: Some("{\"a\":1}".into()),
                }),
            };
            let wire = serde_json::to_vec(&ForwardedUsage::of(&request).unwrap()).unwrap();
            let arrived: ForwardedUsage = serde_json::from_slice(&wire).unwrap();
            assert_eq!(format!("{:?}", arrived.request().unwrap()), format!("{request:?}"));
        }
    }
}
