//! The dispatcher: sends due deliveries and records what became of them.
//!
//! Goal: every pending delivery is attempted within a few seconds of being due, at least once,
//! with a bounded number of requests in flight, and no attempt is made twice at once.
//! Method: a loop polls the store for due deliveries every ~250 ms (at once again after a full
//! batch of new work), at its own pace rather than on a signal from the API. Each poll starts a
//! round: its deliveries are sent concurrently (a semaphore bounds sends across rounds), and
//! their results are written with one `RecordAttempts` command, which marks them done and
//! schedules retries. A delivery's id stays in the in-flight set until that write has
//! committed, so later polls, which still see it pending, skip it instead of sending it again.
//! A crash between sending and recording resends: delivery is at least once, and receivers
//! deduplicate on `webhook-id` (the event id, the same for every retry).
//! A graceful stop (SIGTERM) aborts the polls; the rounds in flight still finish and record
//! their attempts before the writer stops, so a rolling restart neither resends nor strands them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credits_core::Timestamp;
use credits_store::{
    AttemptResult, Command, DueDelivery, Event, Store, WriteRequest, DELIVERY_LEASE,
};
use reqwest::header::{HeaderMap, HeaderValue, InvalidHeaderValue};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};
use tracing::Instrument;

use crate::backoff::retry_delay;
use crate::policy::{PolicyResolver, UrlPolicy};
use crate::secret::SecretBox;

/// Deliveries read per poll.
pub const BATCH_SIZE: usize = 100;
/// The pause between polls when there was no full batch of new work.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a receiver has to answer (SPEC section 8).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long resolving a receiver's name may take before the attempt counts as failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!("credits-webhooks/", env!("CARGO_PKG_VERSION"));

pub struct Dispatcher {
    store: Store,
    secrets: Arc<SecretBox>,
    policy: UrlPolicy,
    client: reqwest::Client,
    concurrency: usize,
    retry_scale: f64,
    lease: Duration,
}

impl Dispatcher {
    /// Scales the retry schedule (1.0 in production). Tests shrink it to see several retries in
    /// seconds instead of minutes.
    pub fn with_retry_scale(mut self, scale: f64) -> Dispatcher {
        if scale.is_finite() && scale > 0.0 {
            self.retry_scale = scale;
        }
        self
    }

    /// How long this node's claim on a due delivery lasts with several nodes on PostgreSQL
    /// (default [`DELIVERY_LEASE`], 60 s): another node sends it again only after the lease, so
    /// it must exceed an attempt's longest time (name resolution and the request timeout, 15 s).
    /// Tests shorten it to see a killed node's claims taken over in seconds.
    pub fn with_lease(mut self, lease: Duration) -> Dispatcher {
        if !lease.is_zero() {
            self.lease = lease;
        }
        self
    }

    /// A dispatcher sending at most `concurrency` (at least 1) requests at once.
    pub fn new(
        store: Store,
        secrets: Arc<SecretBox>,
        policy: UrlPolicy,
        concurrency: usize,
    ) -> Result<Dispatcher, reqwest::Error> {
        Ok(Dispatcher {
            store,
            secrets,
            policy,
            client: build_client(policy, concurrency)?,
            concurrency: concurrency.max(1),
            retry_scale: 1.0,
            lease: DELIVERY_LEASE,
        })
    }

    /// Polls and delivers until the task is dropped or aborted. Aborting it stops the polls
    /// only: the rounds in flight are tasks of their own and go on until their attempts are
    /// recorded (each round holds a [`Store`] handle, which keeps the writer running).
    pub async fn run(self) {
        let shared = Arc::new(Shared {
            secrets: self.secrets,
            policy: self.policy,
            client: self.client,
            permits: Semaphore::new(self.concurrency),
            retry_scale: self.retry_scale,
        });
        let mut in_flight: HashSet<String> = HashSet::new();
        let (done_sender, mut done) = mpsc::unbounded_channel::<Vec<String>>();
        tracing::info!(
            concurrency = self.concurrency,
            allow_private = self.policy.allow_private,
            "webhook dispatcher started"
        );
        loop {
            while let Ok(ids) = done.try_recv() {
                for id in ids {
                    in_flight.remove(&id);
                }
            }
            let now = now();
            let lease = self.lease;
            let due = match self
                .store
                .read(move |reader| reader.due_deliveries(now, BATCH_SIZE, lease))
                .await
            {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, "cannot read due webhook deliveries");
                    tokio::time::sleep(POLL_INTERVAL * 4).await;
                    continue;
                }
            };
            let fresh: Vec<DueDelivery> =
                due.into_iter().filter(|d| in_flight.insert(d.delivery.id.clone())).collect();
            let full = fresh.len() >= BATCH_SIZE;
            if !fresh.is_empty() {
                tokio::spawn(round(shared.clone(), self.store.clone(), fresh, done_sender.clone()));
            }
            if !full {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
}

/// What the rounds share.
struct Shared {
    secrets: Arc<SecretBox>,
    policy: UrlPolicy,
    client: reqwest::Client,
    permits: Semaphore,
    retry_scale: f64,
}

/// The HTTP client of the dispatcher: 10 s timeout, no redirects (a redirect could lead past
/// the URL policy), no proxy from the environment, and the policy applied to every address it
/// resolves.
pub fn build_client(
    policy: UrlPolicy,
    pool_size: usize,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(pool_size.clamp(1, 32))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(USER_AGENT)
        .dns_resolver(PolicyResolver { policy })
        .build()
}

/// Sends one round's deliveries concurrently and records the results in one write.
async fn round(
    shared: Arc<Shared>,
    store: Store,
    due: Vec<DueDelivery>,
    done: mpsc::UnboundedSender<Vec<String>>,
) {
    let ids: Vec<String> = due.iter().map(|d| d.delivery.id.clone()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for delivery in due {
        let shared = shared.clone();
        tasks.spawn(async move {
            let Ok(_permit) = shared.permits.acquire().await else {
                // The semaphore is never closed; if it were, try later.
                return None;
            };
            Some(attempt(&shared, &delivery).await)
        });
    }
    let mut results = Vec::with_capacity(ids.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(result)) => results.push(result),
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "a webhook attempt task failed"),
        }
    }
    if !results.is_empty() {
        let count = results.len();
        let request =
            WriteRequest { idempotency: None, command: Command::RecordAttempts { results } };
        if let Err(error) = store.write(request).await {
            // The deliveries stay pending and are sent again: at least once.
            tracing::error!(%error, count, "cannot record webhook attempts");
        }
    }
    // The dispatcher may have stopped; then nothing is in flight any more anyway.
    let _ = done.send(ids);
}

/// Makes one attempt and says what became of it.
async fn attempt(shared: &Shared, due: &DueDelivery) -> AttemptResult {
    let delivery = &due.delivery;
    // The endpoint's id, never its URL (which may carry a token) nor its secret.
    let span = tracing::info_span!(
        "webhook_attempt",
        delivery = %delivery.id,
        endpoint = %due.endpoint.id,
        event = %due.event.id,
        attempt = delivery.attempt,
    );
    let started = Instant::now();
    let outcome = send(shared, due).instrument(span.clone()).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (succeeded, response_code, disable_endpoint, retries) = match &outcome {
        Sent::Answered(status) if (200..300).contains(status) => {
            (true, Some(*status), false, false)
        }
        Sent::Answered(410) => (false, Some(410), true, false),
        Sent::Answered(status) => (false, Some(*status), false, true),
        Sent::Refused(_) | Sent::NoAnswer(_) => (false, None, false, true),
        Sent::Dropped(_) => (false, None, false, false),
    };
    let result = match (succeeded, disable_endpoint) {
        (true, _) => "succeeded",
        (false, true) => "gone",
        (false, false) => "failed",
    };
    metrics::counter!("credits_webhook_attempts_total", "result" => result).increment(1);
    metrics::histogram!("credits_webhook_attempt_seconds").record(duration_ms as f64 / 1000.0);
    if let Some(due) = delivery.next_attempt_at {
        let lag_seconds = (now().0 - due.0).max(0) as f64 / 1_000_000.0;
        metrics::histogram!("credits_webhook_delivery_lag_seconds").record(lag_seconds);
    }
    let retry_at = if retries {
        retry_delay(delivery.attempt).map(|delay| delay.mul_f64(shared.retry_scale)).map(|delay| {
            let micros = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2);
            Timestamp(now().0.saturating_add(micros))
        })
    } else {
        None
    };
    span.in_scope(|| match &outcome {
        Sent::Answered(status) if succeeded => {
            tracing::info!(status, duration_ms, "webhook delivered");
        }
        Sent::Answered(status) => tracing::warn!(
            status,
            duration_ms,
            retry = retry_at.is_some(),
            disable_endpoint,
            "webhook refused by the receiver"
        ),
        Sent::Refused(reason) | Sent::NoAnswer(reason) | Sent::Dropped(reason) => tracing::warn!(
            reason = reason.as_str(),
            duration_ms,
            retry = retry_at.is_some(),
            "webhook attempt failed"
        ),
    });
    AttemptResult {
        delivery_id: delivery.id.clone(),
        succeeded,
        response_code,
        duration_ms,
        disable_endpoint,
        retry_at,
    }
}

/// What came of sending.
enum Sent {
    /// The receiver answered with this status.
    Answered(u16),
    /// The policy or the secret stopped it before any request was made; retried.
    Refused(String),
    /// A timeout or connection error; retried.
    NoAnswer(String),
    /// The endpoint is disabled: recorded as failed, not retried.
    Dropped(String),
}

async fn send(shared: &Shared, due: &DueDelivery) -> Sent {
    if due.endpoint.disabled_at.is_some() {
        return Sent::Dropped("the endpoint is disabled".into());
    }
    let url = match shared.policy.check_url(&due.endpoint.url) {
        Ok(url) => url,
        Err(reason) => return Sent::Refused(reason),
    };
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    match tokio::time::timeout(RESOLVE_TIMEOUT, shared.policy.check_resolved(host, port)).await {
        Ok(Ok(_)) => {}
        Ok(Err(reason)) => return Sent::Refused(reason),
        Err(_) => return Sent::Refused(format!("resolving {host} timed out")),
    }
    let Some(secret) = shared.secrets.open(&due.endpoint.secret_sealed) else {
        return Sent::Refused("the endpoint's secret cannot be opened with this key".into());
    };
    let body = build_envelope(&due.event);
    let timestamp = now().0.div_euclid(1_000_000);
    let headers = match signed_headers(&secret, &due.event.id, timestamp, &body) {
        Ok(headers) => headers,
        Err(_) => return Sent::Refused("the event id is not a valid header value".into()),
    };
    drop(secret);
    let request = shared.client.post(url).headers(headers).body(body);
    match request.send().await {
        Ok(response) => Sent::Answered(response.status().as_u16()),
        Err(error) if error.is_timeout() => Sent::NoAnswer("timed out".into()),
        // Without the URL, which may carry a token.
        Err(error) => Sent::NoAnswer(error_chain(&error.without_url())),
    }
}

/// An error and its causes on one line (reqwest's own message is only the outermost).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The request body of an event: `{"id", "type", "createdAt", "accountId", "data"}`, where
/// `data` is the event's stored JSON as is (a string if it is not JSON, which the store never
/// holds).
pub fn build_envelope(event: &Event) -> Vec<u8> {
    let data = event.data.trim();
    let data = if serde_json::from_str::<serde_json::Value>(data).is_ok() {
        data.to_string()
    } else {
        serde_json::Value::String(event.data.clone()).to_string()
    };
    let text = |value: &str| serde_json::Value::String(value.to_string()).to_string();
    format!(
        r#"{{"id":{},"type":{},"createdAt":{},"accountId":{},"data":{}}}"#,
        text(&event.id),
        text(&event.event_type),
        text(&format_time(event.created_at)),
        text(&event.account_id),
        data
    )
    .into_bytes()
}

/// The headers of a delivery: content type, user agent and the Standard Webhooks trio.
pub fn signed_headers(
    secret: &str,
    event_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<HeaderMap, InvalidHeaderValue> {
    let signature = crate::sign::sign(secret, event_id, timestamp, body);
    let mut headers = HeaderMap::new();
    headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(reqwest::header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert("webhook-id", HeaderValue::from_str(event_id)?);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert("webhook-signature", HeaderValue::from_str(&signature)?);
    Ok(headers)
}

fn now() -> Timestamp {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    Timestamp(i64::try_from(nanos / 1000).unwrap_or(i64::MAX))
}

/// RFC 3339 in UTC with `Z`, as the API writes times.
fn format_time(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn event(data: &str) -> Event {
        Event {
            id: "evt_01J0000000000000000000000".into(),
            event_type: "credit.created".into(),
            account_id: "acc_1".into(),
            data: data.into(),
            // 2024-01-02T03:04:05.5Z
            created_at: Timestamp(1_704_164_645_500_000),
        }
    }

    #[test]
    fn the_envelope_has_the_spec_fields_in_order() {
        let body = build_envelope(&event(r#"{"id":"crd_1","amount":5,"b":{"z":1,"a":2}}"#));
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"id":"evt_01J0000000000000000000000","type":"credit.created","createdAt":"2024-01-02T03:04:05.5Z","accountId":"acc_1","data":{"id":"crd_1","amount":5,"b":{"z":1,"a":2}}}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["data"]["amount"], 5);
    }

    #[test]
    fn the_envelope_escapes_text_and_keeps_non_json_data_as_a_string() {
        let mut odd = event("not json");
        odd.account_id = "acc_\"quoted\"\n".into();
        let parsed: serde_json::Value = serde_json::from_slice(&build_envelope(&odd)).unwrap();
        assert_eq!(parsed["data"], "not json");
        assert_eq!(parsed["accountId"], "acc_\"quoted\"\n");
    }

    #[test]
    fn created_at_is_utc_with_z() {
        assert_eq!(format_time(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(Timestamp(1_704_164_645_000_000)), "2024-01-02T03:04:05Z");
    }

    #[test]
    fn signed_headers_verify() {
        let secret = crate::generate_secret();
        let body = build_envelope(&event("{}"));
        let headers = signed_headers(&secret, "evt_1", 1_700_000_000, &body).unwrap();
        let get = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
        assert_eq!(get("content-type"), "application/json");
        assert_eq!(get("user-agent"), USER_AGENT);
        assert!(USER_AGENT.starts_with("credits-webhooks/"));
        assert_eq!(get("webhook-id"), "evt_1");
        assert_eq!(get("webhook-timestamp"), "1700000000");
        let signature = get("webhook-signature");
        assert!(signature.starts_with("v1,"));
        assert!(crate::verify(&secret, "evt_1", 1_700_000_000, &body, &signature));
        assert!(!crate::verify(&secret, "evt_1", 1_700_000_001, &body, &signature));
        assert!(signed_headers(&secret, "evt\n1", 1, &body).is_err());
    }

    #[test]
    fn the_client_builds() {
        build_client(UrlPolicy::default(), 8).unwrap();
        build_client(UrlPolicy { allow_private: true }, 0).unwrap();
    }
}
