//! The SQLite checkpointer: copies the WAL back into the database file on a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the WAL's size threshold,
//! on the writer's thread: that commit then also copies a thousand pages into the database file
//! and fsyncs it, and every request of the batch waits (about an eighth of the writer's time under
//! load, see docs/PERFORMANCE.md). The writer's connection turns it off (`wal_autocheckpoint = 0`)
//! and this thread runs a `PASSIVE` checkpoint every 25 ms when there were commits, which never
//! blocks the writer or the readers. Such a checkpoint never finds the WAL wholly copied when a
//! busy writer starts its next transaction, so the writer would never start the WAL over and it
//! would grow without end: past 16 MB of WAL this thread asks the writer to run a checkpoint
//! itself after its next commit, which only copies the pages of the commits since this thread's
//! last one (SQLite's own `RESTART` mode would make the writer sleep in its busy handler).
//! Durability does not change: a commit is durable once its WAL frames are fsynced, by the
//! writer, before it is acknowledged.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2_sqlite::rusqlite::Connection;

use crate::StoreError;

/// How often the checkpointer looks for new commits. At the writer's peak (about 100 MB of WAL a
/// second) the WAL grows by a few MB between two checkpoints, about SQLite's own threshold (1000
/// pages); with 100 ms, each checkpoint's fsync of the database file flushed four times as much
/// and held the writer's WAL fsyncs back for longer (hot p99 16 ms against 13 ms).
const INTERVAL: Duration = Duration::from_millis(25);

/// WAL frames (of 4 KB pages) past which the writer is asked to let the WAL start over.
const RESTART_FRAMES: i64 = 4096;

/// Starts the checkpointer of the database at `path`; it runs a last checkpoint and stops once
/// `stop`'s sender is dropped (when the writer stops).
/// `restart` is set when the writer should checkpoint after its next commit.
pub(crate) fn start(
    path: &Path,
    stop: Receiver<()>,
    restart: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, StoreError> {
    let connection = Connection::open(path)?;
    connection.execute_batch("PRAGMA busy_timeout = 5000;")?;
    std::thread::Builder::new()
        .name("credits-checkpoint".into())
        .spawn(move || run(&connection, &stop, &restart))
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn run(connection: &Connection, stop: &Receiver<()>, restart: &AtomicBool) {
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
            // Copies what no reader still needs and never waits for the writer or the readers.
            let frames = connection
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(1));
            match frames {
                Ok(frames) => {
                    seen = version.ok();
                    if frames > RESTART_FRAMES {
                        restart.store(true, Ordering::Relaxed);
                    }
                }
                Err(error) => tracing::warn!(%error, "WAL checkpoint failed; trying again"),
            }
        }
        if last {
            break;
        }
    }
}

/// Run by the writer after a commit when the checkpointer asked for it (see the module's text):
/// the WAL starts over at the next commit unless a reader still reads from it.
pub(crate) fn after_commit(connection: &Connection, restart: &AtomicBool) {
    if restart.swap(false, Ordering::Relaxed) {
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; the checkpointer will ask again");
        }
    }
}
