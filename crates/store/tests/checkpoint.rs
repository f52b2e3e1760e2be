//! The WAL is checkpointed by the store's own checkpoint thread, not inside the writer's commits
//! (`crates/store/src/checkpoint.rs`): it must still happen, or the WAL would grow without end,
//! and every commit must be in the database once the store is closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credits_store::{
    Command, EventData, NewAccount, Outcome, Rendered, Renderer, Store, WriteRequest,
};

struct Plain;

impl Renderer for Plain {
    fn answer(&self, _command: &Command, _outcome: &Outcome) -> Rendered {
        Rendered { status: 201, body: Vec::new() }
    }

    fn event_data(&self, _data: &EventData) -> String {
        String::new()
    }
}

fn wal_bytes(db: &Path) -> u64 {
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// One commit of `accounts` accounts with long names (about 2 KB of row each).
fn commit(runtime: &tokio::runtime::Runtime, store: &Store, accounts: usize) {
    let requests = (0..accounts)
        .map(|i| WriteRequest {
            idempotency: None,
            command: Command::CreateAccount(NewAccount {
                name: Some(format!("{i:02000}")),
                ..NewAccount::default()
            }),
        })
        .collect();
    for result in runtime.block_on(store.write_many(requests)).unwrap() {
        result.unwrap();
    }
}

#[test]
fn the_wal_is_checkpointed_while_writing_and_after_the_last_commit() {
    let dir = std::env::temp_dir().join(format!("credits-checkpoint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("credits.db");
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (store, writer) = Store::open_sqlite(&path, Arc::new(Plain)).unwrap();

    // At least 100 MB of rows over at least 3 s: with no checkpoint the WAL file would hold
    // them all; checkpointed, it is started over past 4096 frames (16 MB) and stays near that.
    let started = Instant::now();
    let mut commits = 0;
    while commits < 2500 || started.elapsed() < Duration::from_secs(3) {
        commit(&runtime, &store, 20);
        commits += 1;
    }
    let written = commits as u64 * 20 * 2000;
    let wal = wal_bytes(&path);
    assert!(
        wal < 40 << 20,
        "WAL is {wal} bytes after {commits} commits of about {written} bytes of rows in all"
    );

    // Once the store is closed the database file alone holds every row.
    drop(store);
    writer.join();
    let copy = dir.join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let connection = rusqlite::Connection::open(&copy).unwrap();
    let accounts: i64 =
        connection.query_row("SELECT count(*) FROM accounts", [], |row| row.get(0)).unwrap();
    assert_eq!(accounts, commits as i64 * 20);
    drop(connection);
    std::fs::remove_dir_all(&dir).unwrap();
}
