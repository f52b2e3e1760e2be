//! The SQLite checkpointer: copies the WAL back into the database file on a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the WAL's size threshold,
//! on the writer's thread: that commit then also copies a thousand pages into the database file
//! and fsyncs it, and every request of the batch waits (about an eighth of the writer's time under
//! load, see docs/PERFORMANCE.md). The writer's connection turns it off (`wal_autocheckpoint = 0`)
//! and this thread runs a `PASSIVE` checkpoint every 100 ms when there were commits, which never
//! blocks the writer or the readers; past 16 MB of WAL it runs a `RESTART` one, which holds the
//! writer back only while it copies the last commits' pages, so that the WAL starts over.
//! Durability does not change: a commit is durable once its WAL frames are fsynced, by the
//! writer, before it is acknowledged.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2_sqlite::rusqlite::Connection;

use crate::StoreError;

/// How often the checkpointer looks for new commits. At the writer's peak (about 150 MB of WAL a
/// second) the WAL grows by some 15 MB between two checkpoints: SQLite's own threshold (1000
/// pages) would checkpoint about four times as often, each time inside a commit.
const INTERVAL: Duration = Duration::from_millis(100);

/// WAL frames (of 4 KB pages) past which the WAL is restarted.
const RESTART_FRAMES: i64 = 4096;

/// Starts the checkpointer of the database at `path`; it runs a last checkpoint and stops once
/// `stop`'s sender is dropped (when the writer stops).
pub(crate) fn start(path: &Path, stop: Receiver<()>) -> Result<JoinHandle<()>, StoreError> {
    let connection = Connection::open(path)?;
    connection.execute_batch("PRAGMA busy_timeout = 5000;")?;
    std::thread::Builder::new()
        .name("credits-checkpoint".into())
        .spawn(move || run(&connection, &stop))
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn run(connection: &Connection, stop: &Receiver<()>) {
    // `data_version` changes whenever another connection (the writer) has committed.
    let mut seen: Option<i64> = None;
    loop {
        let last = match stop.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => false,
            // The writer stopped: one last checkpoint, so that the next start reads a short WAL.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        };
        let version = connection.query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0));
        let changed = match &version {
            Ok(version) => seen != Some(*version),
            Err(_) => true,
        };
        if changed || last {
            if let Err(error) = checkpoint(connection) {
                tracing::warn!(%error, "WAL checkpoint failed; trying again");
            } else {
                seen = version.ok();
            }
        }
        if last {
            break;
        }
    }
}

/// Copies the WAL into the database file without waiting for anyone. A checkpoint that runs
/// beside a busy writer never finds the WAL wholly copied when the writer starts its next
/// transaction, so the writer never starts the WAL over and it would grow without end: past
/// [`RESTART_FRAMES`] the checkpointer makes the writer wait (briefly: the frames left to copy
/// are the last few commits') while it copies the rest, so that the next commit starts the WAL
/// from its beginning.
fn checkpoint(connection: &Connection) -> Result<(), StoreError> {
    let frames: i64 =
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))?;
    if frames > RESTART_FRAMES {
        connection.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}
