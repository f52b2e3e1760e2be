//! A real webhook receiver for the black-box webhook tests, and a Standard Webhooks signature
//! check written from the SPEC text, independent of `credits-webhooks`.
//!
//! Goal: see exactly what the service sends (method, path, headers, raw body) and answer it
//! with a status the test chooses, then verify each signature without the signing code.
//! Method: an axum server on 127.0.0.1:0 whose fallback handler records every request and
//! answers the next status of a programmable script, else a default status. The signature check
//! is HMAC-SHA256 (crates `hmac` + `sha2`) of `"<webhook-id>.<webhook-timestamp>.<body>"`, keyed
//! with the base64-decoded part of the secret after `whsec_`, compared with each `v1,` entry of
//! `webhook-signature`. Python's `standardwebhooks` package (PyPI), when it can be imported or
//! installed, verifies captured deliveries as a third, foreign implementation. Included with
//! `#[path = "common/receiver.rs"] mod receiver;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// Header names lowercased; a repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub answered: u16,
    pub at: Instant,
}

impl Captured {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("header {name} missing in {self:?}"))
    }
    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_text()))
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Captured>,
    script: VecDeque<u16>,
    default_status: u16,
    /// How long each answer waits after the request is recorded.
    delay: Duration,
}

/// A running receiver; it stops when the test's runtime ends.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    state: Arc<Mutex<State>>,
}

/// Starts a receiver on 127.0.0.1 with a free port, answering 200 unless told otherwise.
pub async fn start() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener)
}

/// Starts a receiver on an already bound listener.
pub fn serve_on(listener: tokio::net::TcpListener) -> Receiver {
    let address = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(State { default_status: 200, ..State::default() }));
    let shared = state.clone();
    let app =
        Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move {
                let (answered, delay) = record(&shared, method, uri, headers, body);
                tokio::time::sleep(delay).await;
                StatusCode::from_u16(answered).unwrap()
            }
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { base: format!("http://{address}"), state }
}

/// Records a request; returns the status to answer and how long to wait before answering.
fn record(
    shared: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (u16, Duration) {
    let mut state = shared.lock().unwrap();
    let answered = state.script.pop_front().unwrap_or(state.default_status);
    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    state.requests.push(Captured {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
        answered,
        at: Instant::now(),
    });
    (answered, state.delay)
}

impl Receiver {
    /// The URL of a path on this receiver (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answer these statuses to the next requests, in order, then the default again.
    pub fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses.iter().copied());
    }

    /// Wait this long before each answer (the request is recorded on arrival).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// The status answered once the script is used up.
    pub fn set_default(&self, status: u16) {
        self.state.lock().unwrap().default_status = status;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Captured> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests so far on one path.
    pub fn on_path(&self, path: &str) -> Vec<Captured> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// Polls (every 25 ms, up to `timeout`) until `count` requests match `matches`; returns
    /// them, oldest first. Panics with what did arrive on timeout.
    pub async fn wait_for(
        &self,
        count: usize,
        timeout: Duration,
        matches: impl Fn(&Captured) -> bool,
    ) -> Vec<Captured> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Captured> = self.requests().into_iter().filter(|r| matches(r)).collect();
            if found.len() >= count {
                return found;
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| {
                        format!("{} {} -> {}: {}", r.method, r.path, r.answered, r.body_text())
                    })
                    .collect();
                panic!(
                    "expected {count} matching webhook requests within {timeout:?}, found {}; \
                     every request received: {seen:#?}",
                    found.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for `count` requests whose event has this type.
    pub async fn wait_type(&self, count: usize, event_type: &str) -> Vec<Captured> {
        self.wait_for(count, Duration::from_secs(10), |r| r.event_type() == event_type).await
    }
}

/// The HMAC key of a `whsec_` secret, as the SPEC words it: the base64-decoded part after the
/// prefix.
pub fn secret_key(secret: &str) -> Vec<u8> {
    let encoded = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("secret {secret:?} does not start with whsec_"));
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|e| panic!("secret {secret:?} is not whsec_ + base64 ({e})"))
}

/// `v1,` + base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>").
pub fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret_key(secret)).unwrap();
    let mut content = Vec::with_capacity(body.len() + id.len() + timestamp.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    mac.update(&content);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether the `webhook-signature` header of a captured request holds a valid `v1` signature
/// for its `webhook-id`, `webhook-timestamp` and raw body under `secret`.
pub fn signature_valid(secret: &str, request: &Captured) -> bool {
    signature_valid_for(secret, request, &request.body)
}

/// The same check against another body (to show a tampered body fails).
pub fn signature_valid_for(secret: &str, request: &Captured, body: &[u8]) -> bool {
    let expected =
        expected_signature(secret, request.webhook_id(), request.header("webhook-timestamp"), body);
    request.header("webhook-signature").split(' ').any(|candidate| candidate == expected)
}

/// Asserts the Standard Webhooks headers and a valid signature on a delivery.
pub fn assert_signed(secret: &str, request: &Captured) {
    assert_eq!(request.method, "POST", "{request:?}");
    let signature = request.header("webhook-signature");
    assert!(
        signature.split(' ').any(|s| s.starts_with("v1,")),
        "webhook-signature {signature:?} has no v1 entry"
    );
    let timestamp = request.header("webhook-timestamp");
    assert!(
        !timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit()),
        "webhook-timestamp {timestamp:?} is not unix seconds"
    );
    assert!(
        signature_valid(secret, request),
        "signature {signature:?} does not verify with the independent HMAC \
         (id {}, timestamp {timestamp}, body {})",
        request.webhook_id(),
        request.body_text()
    );
}

/// Python's `standardwebhooks` package: Some(python3) when importable (installing it with pip
/// if needed), else None after printing why.
pub fn python_standardwebhooks() -> Option<&'static str> {
    let importable = || {
        std::process::Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if importable() {
        return Some("python3");
    }
    let installed = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--timeout",
            "10",
            "--retries",
            "1",
            "standardwebhooks",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if installed && importable() {
        return Some("python3");
    }
    eprintln!(
        "NOTE: Python's standardwebhooks package cannot be imported or installed; the \
         cross-check with it is skipped (the independent Rust HMAC check still ran)"
    );
    None
}

/// Verifies a captured delivery with `standardwebhooks.Webhook(secret).verify(body, headers)`
/// in a python3 subprocess; returns Ok(parsed payload as JSON) or Err(the Python error).
pub fn python_verify(
    python: &str,
    secret: &str,
    request: &Captured,
    body: &[u8],
) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!(
        "credits-swh-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let body_path = dir.join("body");
    let headers_path = dir.join("headers.json");
    std::fs::write(&body_path, body).unwrap();
    let headers = serde_json::json!({
        "webhook-id": request.webhook_id(),
        "webhook-timestamp": request.header("webhook-timestamp"),
        "webhook-signature": request.header("webhook-signature"),
    });
    std::fs::write(&headers_path, headers.to_string()).unwrap();
    let script = "import json, sys\n\
                  from standardwebhooks.webhooks import Webhook\n\
                  body = open(sys.argv[2], 'rb').read()\n\
                  headers = json.load(open(sys.argv[3]))\n\
                  try:\n\
                  \x20   payload = Webhook(sys.argv[1]).verify(body, headers)\n\
                  except Exception as e:\n\
                  \x20   print(type(e).__name__ + ': ' + str(e), file=sys.stderr)\n\
                  \x20   sys.exit(3)\n\
                  print(json.dumps(payload))\n";
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(secret)
        .arg(&body_path)
        .arg(&headers_path)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    if output.status.success() {
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(serde_json::from_str(text.trim()).unwrap())
    } else {
        Err(format!(
            "exit {:?}: {}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ))
    }
}

/// Creates a webhook endpoint as the admin and returns (endpoint id, secret).
pub async fn create_endpoint(
    app: &crate::common::TestApp,
    account: Option<&str>,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let mut body = serde_json::json!({"url": url, "events": events});
    if let Some(account) = account {
        body["accountId"] = Value::String(account.to_string());
    }
    let answer = app.post("/v2/webhook-endpoints", &body).await;
    assert_eq!(answer.status, 201, "creating endpoint {body}: {answer:?}");
    let id = answer.json["id"].as_str().unwrap().to_string();
    let secret = answer.json["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("the create answer has no secret: {answer:?}"))
        .to_string();
    (id, secret)
}

/// Every delivery attempt of an endpoint (pages followed), newest first.
pub async fn deliveries(app: &crate::common::TestApp, endpoint: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v2/webhook-endpoints/{endpoint}/deliveries?limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        all.extend(page.json["data"].as_array().unwrap().iter().cloned());
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

/// Polls the deliveries of an endpoint (up to 10 s) until `done` holds for them; returns them.
pub async fn deliveries_until(
    app: &crate::common::TestApp,
    endpoint: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = deliveries(app, endpoint).await;
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the deliveries of {endpoint} never reached the expected state: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event of `GET /v2/events?<query>` (pages followed), newest first.
pub async fn events(app: &crate::common::TestApp, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v2/events?limit=100&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "GET {path}: {page:?}");
        all.extend(page.json["data"].as_array().unwrap().iter().cloned());
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return all,
        }
    }
}

/// Asserts the Standard Webhooks envelope `{id, type, createdAt, accountId, data}` (exactly
/// those keys), that `id` is the `webhook-id` header, and returns the parsed body.
pub fn assert_envelope(request: &Captured, event_type: &str, account: &str) -> Value {
    let body = request.json();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec!["accountId", "createdAt", "data", "id", "type"],
        "envelope keys: {}",
        request.body_text()
    );
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("evt_"), "event id {id:?} does not start with evt_");
    assert_eq!(request.webhook_id(), id, "webhook-id must be the event id");
    assert_eq!(body["type"], event_type, "{}", request.body_text());
    assert_eq!(body["accountId"], account, "{}", request.body_text());
    let created = body["createdAt"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.contains('T'),
        "createdAt {created:?} not RFC 3339 Z"
    );
    assert!(body["data"].is_object(), "data is not an object: {}", request.body_text());
    body
}
