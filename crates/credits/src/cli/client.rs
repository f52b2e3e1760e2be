//! Goal: one small HTTP client for the operator CLI, so that every command talks to the service
//! the same way: bearer key, JSON bodies, problem+json errors turned into a [`Failure`].
//!
//! Method: reqwest builds every request and serde_json every body (no hand-written HTTP or JSON).
//! Paths are built segment by segment on the base URL, so ids are percent-encoded and a base URL
//! with a path prefix (a reverse proxy) keeps it. A non-2xx answer becomes [`Failure::Api`] with
//! the problem's `code` and `detail`; an answer that is not problem+json still says its status.

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Url};
use serde_json::Value;

/// How long to wait for a TCP connection to the service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a JSON request may take in all; CSV exports stream and have no overall limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an answer that is not problem+json is quoted in an error.
const BODY_QUOTE_CHARS_MAX: usize = 300;

/// Why a command failed; each kind has its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The command line cannot be turned into a request (exit 2, like clap's own errors).
    Usage(String),
    /// The service answered 4xx or 5xx (exit 1).
    Api { status: u16, code: String, detail: String },
    /// The service could not be reached, or answered something unreadable (exit 1).
    Transport(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Api { .. } => 1,
            Failure::Transport(_) => 1,
        }
    }

    /// The one line printed to stderr.
    pub fn message(&self) -> String {
        match self {
            Failure::Usage(message) => format!("error: {message}"),
            Failure::Api { status, code, detail } => {
                format!("error: {code}: {detail} (HTTP {status})")
            }
            Failure::Transport(message) => format!("error: {message}"),
        }
    }
}

/// A successful JSON answer.
pub struct Answer {
    /// The body exactly as the service sent it, for `--json`.
    pub text: String,
    pub json: Value,
    /// Whether the service replayed the first answer to this idempotency key.
    pub replayed: bool,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: String,
}

impl Client {
    /// Checks the base URL and the key before any request is made, so that a missing key is a
    /// usage error rather than a 401.
    pub fn new(url: &str, key: Option<&str>) -> Result<Client, Failure> {
        let base = Url::parse(url)
            .map_err(|error| Failure::Usage(format!("--url {url:?} is not a URL: {error}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Failure::Usage(format!(
                "--url {url:?} must be an http:// or https:// URL"
            )));
        }
        let key = match key {
            Some(key) if !key.trim().is_empty() => key.trim().to_string(),
            _ => {
                return Err(Failure::Usage("no API key: pass --key or set CREDITS_KEY".to_string()))
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("credits-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                Failure::Transport(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(Client { http, base, key })
    }

    /// The URL of `segments` under the base URL, with the query pairs whose value is given.
    pub fn url(&self, segments: &[&str], query: &[(&str, Option<String>)]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                if let Some(value) = value {
                    pairs.append_pair(name, value);
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.key)
    }

    pub async fn get(&self, url: Url) -> Result<Answer, Failure> {
        let request = self.request(Method::GET, url).timeout(REQUEST_TIMEOUT);
        json_answer(request).await
    }

    pub async fn delete(&self, url: Url) -> Result<Answer, Failure> {
        let request = self.request(Method::DELETE, url).timeout(REQUEST_TIMEOUT);
        json_answer(request).await
    }

    pub async fn post(
        &self,
        url: Url,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut request = self.request(Method::POST, url).timeout(REQUEST_TIMEOUT).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        json_answer(request).await
    }

    /// A GET answered as text in the given media type (the ledger's CSV export).
    pub async fn get_text(&self, url: Url, accept: &'static str) -> Result<String, Failure> {
        let request =
            self.request(Method::GET, url).header(ACCEPT, HeaderValue::from_static(accept));
        let response = send(request).await?;
        let response = success(response).await?;
        response
            .text()
            .await
            .map_err(|error| Failure::Transport(format!("cannot read the answer: {error}")))
    }
}

async fn send(request: RequestBuilder) -> Result<reqwest::Response, Failure> {
    request.send().await.map_err(|error| {
        let url =
            error.url().map(|url| url.to_string()).unwrap_or_else(|| "the service".to_string());
        Failure::Transport(format!("cannot reach {url}: {}", error_causes(&error)))
    })
}

/// The causes of an error on one line. reqwest's own message only repeats the URL; what failed
/// (refused, timed out, DNS) is in its causes.
fn error_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        causes.push(error.to_string());
    }
    causes.join(": ")
}

/// Passes a 2xx answer through; turns any other into [`Failure::Api`].
async fn success(response: reqwest::Response) -> Result<reqwest::Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.unwrap_or_default();
    let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = problem["code"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let mut detail = match (problem["detail"].as_str(), problem["title"].as_str()) {
        (Some(detail), _) => detail.to_string(),
        (None, Some(title)) => title.to_string(),
        (None, None) if text.trim().is_empty() => {
            status.canonical_reason().unwrap_or("no detail").to_string()
        }
        (None, None) => text.trim().chars().take(BODY_QUOTE_CHARS_MAX).collect(),
    };
    if let Some(seconds) = retry_after {
        detail.push_str(&format!(" (retry after {seconds} s)"));
    }
    Err(Failure::Api { status: status.as_u16(), code, detail })
}

async fn json_answer(request: RequestBuilder) -> Result<Answer, Failure> {
    let response = success(send(request).await?).await?;
    let replayed = response
        .headers()
        .get("Idempotent-Replayed")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let text = response
        .text()
        .await
        .map_err(|error| Failure::Transport(format!("cannot read the answer: {error}")))?;
    let json = serde_json::from_str(&text).map_err(|error| {
        Failure::Transport(format!("the service answered something other than JSON: {error}"))
    })?;
    Ok(Answer { text, json, replayed })
}
