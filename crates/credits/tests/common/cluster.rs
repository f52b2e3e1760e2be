//! Several `credits serve` nodes on one PostgreSQL database, for the multi-node and outage tests:
//! finding a PostgreSQL server (or skipping), a database made for one test and dropped with it
//! (also when the test panics), and nodes sharing the admin key and the webhook key file.
//! Included with `#[path = "common/cluster.rs"] mod cluster;` next to `mod common;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{self, TestApp, TEST_DATABASE_URL};

/// Where the tests look for PostgreSQL when `CREDITS_TEST_DATABASE_URL` is not set.
pub const DEFAULT_BASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL server to test on: `CREDITS_TEST_DATABASE_URL` when set, else the default
/// local server if it accepts connections, else `None` (the caller skips, saying so).
pub fn base_url() -> Option<String> {
    if let Some(url) = std::env::var(TEST_DATABASE_URL).ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let reachable = std::thread::spawn(|| {
        let mut config: postgres::Config = DEFAULT_BASE_URL.parse().unwrap();
        config.connect_timeout(Duration::from_secs(2));
        config.connect(postgres::NoTls).is_ok()
    })
    .join()
    .unwrap_or(false);
    reachable.then(|| DEFAULT_BASE_URL.to_string())
}

/// Runs statements on `url` from a thread of its own (the synchronous client cannot run inside
/// the tests' async runtime).
pub fn sql(url: &str, statements: &str) -> Result<(), String> {
    let (url, statements) = (url.to_string(), statements.to_string());
    std::thread::spawn(move || {
        let mut client =
            postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
        client.batch_execute(&statements).map_err(|e| e.to_string())
    })
    .join()
    .unwrap_or_else(|_| Err("the SQL thread panicked".into()))
}

/// Runs one query on `url` and returns the first column of every row, as text.
pub fn query_texts(url: &str, query: &str) -> Vec<String> {
    let (url, query) = (url.to_string(), query.to_string());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .simple_query(&query)
            .unwrap()
            .into_iter()
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or("").to_string())
                }
                _ => None,
            })
            .collect()
    })
    .join()
    .unwrap()
}

/// A database made for one test on the server at `base`; dropped (with any connection still on
/// it) when this guard drops, so also when the test panics.
pub struct TestDatabase {
    base: String,
    pub name: String,
    /// The URL of this database.
    pub url: String,
}

impl TestDatabase {
    pub fn create(base: &str) -> TestDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("credits_test_nodes_{}_{nanos}_{n}", std::process::id());
        sql(base, &format!("CREATE DATABASE {name}")).expect("the test database is created");
        let mut url = url::Url::parse(base).expect("the PostgreSQL URL is a URL");
        url.set_path(&name);
        TestDatabase { base: base.to_string(), name, url: url.to_string() }
    }

    /// This database's URL with another host and port (a proxy in front of the server).
    pub fn url_via(&self, host: &str, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_host(Some(host)).unwrap();
        url.set_port(Some(port)).unwrap();
        url.to_string()
    }

    /// The server's host and port, as in the base URL (default port 5432).
    pub fn server(&self) -> (String, u16) {
        let url = url::Url::parse(&self.base).unwrap();
        (url.host_str().unwrap_or("127.0.0.1").to_string(), url.port().unwrap_or(5432))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = sql(&self.base, &statement) {
            eprintln!("could not drop the test database {}: {error}", self.name);
        }
    }
}

/// Nodes sharing one database, one admin key and one webhook key file. Fields drop in order:
/// the nodes are killed before their database is dropped.
pub struct Cluster {
    pub nodes: Vec<TestApp>,
    pub database: TestDatabase,
    /// Holds the shared webhook key file.
    shared_dir: PathBuf,
}

impl Cluster {
    /// A fresh database on `base` and `count` nodes on it, started at the same instant.
    pub fn start(base: &str, count: usize) -> Cluster {
        let database = TestDatabase::create(base);
        let shared_dir = common::fresh_dir();
        let mut cluster = Cluster { nodes: Vec::new(), database, shared_dir };
        let url = cluster.database.url.clone();
        let key_file = cluster.webhook_key_file();
        let env = [("CREDITS_WEBHOOK_KEY_FILE", key_file.to_str().unwrap())];
        // Every process first, then wait for each: they start, and migrate, at once.
        let launched: Vec<_> = (0..count).map(|_| common::launch_node(&url, &env)).collect();
        cluster.nodes = launched.into_iter().map(common::Launched::listening).collect();
        cluster
    }

    /// The webhook secret key every node reads, provisioned once as an operator would (32
    /// random bytes, mode 0600) so that no node has to create it.
    pub fn webhook_key_file(&self) -> PathBuf {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.shared_dir.join("webhook-key");
        if !path.exists() {
            let key: [u8; 32] = rand::random();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            file.write_all(&key).unwrap();
            file.sync_all().unwrap();
        }
        path
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kill the nodes before the database goes (fields would drop in this order too).
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.shared_dir);
    }
}
