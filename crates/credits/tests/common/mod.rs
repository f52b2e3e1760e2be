//! Spawns the real `credits` binary on a free port with a fresh data directory, and offers typed
//! helpers over real HTTP. Set `TEST_LOG=1` to see the server's logs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

pub const ADMIN_KEY: &str = "test_admin_key_0123456789abcdef0123456789";

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

pub fn fresh_dir() -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "credits-test-{}-{}-{n}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct TestApp {
    pub address: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    child: Option<Child>,
    /// Whether dropping this app removes the data directory. A restarted app on the same
    /// directory does not own it; the first app, declared earlier, is dropped last and cleans up.
    owns_dir: bool,
}

/// A response: status, headers and the body parsed as JSON (Null when not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

pub async fn spawn_app() -> TestApp {
    let mut app = spawn_app_in(&fresh_dir()).await;
    app.owns_dir = true;
    app
}

/// Starts the binary on a fresh data directory with extra environment variables.
pub async fn spawn_app_with_env(env: &[(&str, &str)]) -> TestApp {
    let mut app = start(&fresh_dir(), env).await;
    app.owns_dir = true;
    app
}

/// Starts the binary on `data_dir` (which may hold an earlier run's database).
pub async fn spawn_app_in(data_dir: &Path) -> TestApp {
    start(data_dir, &[]).await
}

/// The environment variable that selects PostgreSQL for the black-box suite: a URL of a database
/// the tests may connect to (for example `postgres://postgres@127.0.0.1:5432/test`). Each test
/// server gets its own database, created here and dropped with the server's data directory.
pub const TEST_DATABASE_URL: &str = "CREDITS_TEST_DATABASE_URL";

/// The `CREDITS_DATABASE_URL` for a server on `data_dir`: none on SQLite; on PostgreSQL, the
/// database made for that directory (on its first start), so that a restart finds its data.
pub fn database_url(data_dir: &Path) -> Option<String> {
    let base = std::env::var(TEST_DATABASE_URL).ok().filter(|u| !u.is_empty())?;
    let marker = data_dir.join("test-database");
    let name = match std::fs::read_to_string(&marker) {
        Ok(name) => name,
        Err(_) => {
            let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!("credits_test_{}_{nanos}_{n}", std::process::id());
            let statement = format!("CREATE DATABASE {name}");
            admin_sql(&base, &statement);
            std::fs::write(&marker, &name).unwrap();
            name
        }
    };
    let mut url = url::Url::parse(&base).expect("CREDITS_TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    Some(url.to_string())
}

/// Whether this run of the suite is on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var(TEST_DATABASE_URL).is_ok_and(|u| !u.is_empty())
}

/// Drops the database made for `data_dir`, if any.
pub fn database_drop(data_dir: &Path) {
    let Ok(base) = std::env::var(TEST_DATABASE_URL) else { return };
    if let Ok(name) = std::fs::read_to_string(data_dir.join("test-database")) {
        admin_sql(&base, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// Runs one statement on the test database server, from a thread of its own (the synchronous
/// client cannot run inside the tests' async runtime).
fn admin_sql(base: &str, statement: &str) {
    let (base, statement) = (base.to_string(), statement.to_string());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&base, postgres::NoTls)
            .expect("CREDITS_TEST_DATABASE_URL accepts connections");
        client.batch_execute(&statement).expect("the test database statement runs");
    })
    .join()
    .unwrap();
}

async fn start(data_dir: &Path, env: &[(&str, &str)]) -> TestApp {
    let database = database_url(data_dir);
    launch(data_dir, env, database.as_deref()).listening()
}

/// Starts a node on a fresh data directory (which it owns) against the given PostgreSQL
/// database, rather than on a database made for it: several nodes may share one database.
pub async fn spawn_node(database_url: &str, env: &[(&str, &str)]) -> TestApp {
    launch_node(database_url, env).listening()
}

/// Like [`spawn_node`], but returns as soon as the process is started: launch several, then
/// wait for each with [`Launched::listening`], and they all start at once.
pub fn launch_node(database_url: &str, env: &[(&str, &str)]) -> Launched {
    let mut launched = launch(&fresh_dir(), env, Some(database_url));
    launched.owns_dir = true;
    launched
}

/// A server process started but maybe not listening yet.
pub struct Launched {
    data_dir: PathBuf,
    child: Option<Child>,
    address: std::sync::mpsc::Receiver<String>,
    /// The server's log lines so far, shown when it fails to start.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    owns_dir: bool,
}

impl Launched {
    /// Waits until the server prints its address (30 s at most); panics with its log if it
    /// exits or does not.
    pub fn listening(mut self) -> TestApp {
        let address = match self.address.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(error) => {
                // Let the reader thread collect what the server wrote before it stopped.
                std::thread::sleep(Duration::from_millis(200));
                let log = self.log.lock().unwrap().join("\n");
                panic!("the server prints its address within 30 s ({error}); its log:\n{log}")
            }
        };
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        TestApp {
            address,
            data_dir: std::mem::take(&mut self.data_dir),
            client,
            child: self.child.take(),
            owns_dir: std::mem::replace(&mut self.owns_dir, false),
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Starts the binary on `data_dir`, on PostgreSQL when `database_url` is given.
fn launch(data_dir: &Path, env: &[(&str, &str)], database_url: Option<&str>) -> Launched {
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
    if let Some(url) = database_url {
        command.env("CREDITS_DATABASE_URL", url);
    }
    if std::env::var_os("TEST_LOG").is_none() {
        command.env("CREDITS_LOG", "warn");
    }
    let mut child = command.spawn().expect("the credits binary starts");
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("[server] {line}");
            }
            if !sent {
                kept.lock().unwrap().push(line.clone());
                if let Some(address) = line.strip_prefix("credits listening on ") {
                    let _ = sender.send(address.to_string());
                    sent = true;
                }
            }
        }
    });
    Launched {
        data_dir: data_dir.to_path_buf(),
        child: Some(child),
        address: receiver,
        log,
        owns_dir: false,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.owns_dir {
            database_drop(&self.data_dir);
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

pub fn usage_body(account: &str, service: &str, quantity: u64) -> Value {
    json!({"accountId": account, "service": service, "quantity": quantity})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        assert!(status.unwrap().success());
        child.wait().unwrap().success()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, headers, text, json }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(reqwest::Method::GET, path, Some(ADMIN_KEY), &[], None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_raw(path, &body.to_string(), None).await
    }

    pub async fn post_raw(&self, path: &str, body: &str, idempotency_key: Option<&str>) -> Answer {
        let headers: Vec<(&str, &str)> =
            idempotency_key.map(|k| vec![("idempotency-key", k)]).unwrap_or_default();
        self.request(reqwest::Method::POST, path, Some(ADMIN_KEY), &headers, Some(body.to_string()))
            .await
    }

    pub async fn post_idempotent(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.post_raw(path, &body.to_string(), Some(key)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.request(reqwest::Method::PATCH, path, Some(ADMIN_KEY), &[], Some(body.to_string()))
            .await
    }

    /// Creates an account and returns its id.
    pub async fn create_account(&self) -> String {
        let answer = self.post("/v2/accounts", &json!({"name": "Acme"})).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.json["id"].as_str().unwrap().to_string()
    }

    /// Records a purchase with the given extra fields and returns the credit record.
    pub async fn purchase(&self, account: &str, amount: u64, extra: Value) -> Value {
        let mut body = json!({"accountId": account, "amount": amount});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = self.post("/v2/credits", &body).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.json
    }

    /// Records usage with a fresh idempotency key.
    pub async fn use_credits(&self, account: &str, service: &str, quantity: u64) -> Answer {
        let key = format!("k-{}", NEXT_DIR.fetch_add(1, Ordering::SeqCst));
        self.post_idempotent("/v2/usage", &key, &usage_body(account, service, quantity)).await
    }

    pub async fn credit(&self, id: &str) -> Value {
        let answer = self.get(&format!("/v2/credits/{id}")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json
    }

    pub async fn balance(&self, account: &str) -> Value {
        let answer = self.get(&format!("/v2/balance?accountId={account}")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json
    }
}
