//! Durable storage of the credits ledger on SQLite.
//!
//! Writes go through one writer thread that owns the only writing connection. It drains every
//! request waiting in its queue, executes each in its own savepoint (idempotency check, load the
//! account's open records, run the core, persist the effects, store the rendered answer), commits
//! them all in one transaction with `synchronous=FULL`, and only then answers. So each answer is
//! durable when sent, and one fsync is shared by every request that arrived meanwhile (group
//! commit). Reads use a pool of read-only connections and see only committed data.

mod backup;
mod bulk;
mod checkpoint;
mod cluster;
mod copier;
mod db;
mod faults;
mod hot;
mod outbox;
mod pg;
mod read;
mod rows;
mod schema;
mod spending;
mod types;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use r2d2_sqlite::SqliteConnectionManager;
use tokio::sync::{mpsc, oneshot};

pub use backup::backup_sqlite;
pub use cluster::{Leader, LeaderAddress, Leadership};
pub use faults::{ClockSource, Fault, Faults, Hooks};
pub use read::{Reader, DELIVERY_LEASE};
pub use types::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed; nothing was acknowledged.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A concurrent write on another node got there first (PostgreSQL): the write was rolled
    /// back and may be retried.
    #[error("concurrent write: {0}")]
    Conflict(String),
}

impl From<r2d2_sqlite::rusqlite::Error> for StoreError {
    fn from(error: r2d2_sqlite::rusqlite::Error) -> StoreError {
        StoreError::Unavailable(error.to_string())
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(error: r2d2::Error) -> StoreError {
        StoreError::Unavailable(error.to_string())
    }
}

/// Turns an outcome into the HTTP answer that is stored for idempotent replay. The API provides
/// it, so that this crate never knows JSON or HTTP.
pub trait Renderer: Send + Sync {
    /// The answer to a write, stored with its idempotency key.
    fn answer(&self, command: &Command, outcome: &Outcome) -> Rendered;
    /// The `data` of an event, stored in the outbox with it.
    fn event_data(&self, data: &EventData) -> String;
}

pub type Render = Arc<dyn Renderer>;

struct Job {
    requests: Vec<WriteRequest>,
    reply: oneshot::Sender<Vec<Result<Executed, StoreError>>>,
}

/// Where the ledger lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file, written by this process alone.
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL; several nodes may share the database.
    Postgres(String),
}

#[derive(Clone)]
enum Readers {
    Sqlite(r2d2::Pool<SqliteConnectionManager>),
    Pg(Arc<PgReaders>),
}

/// The PostgreSQL read pool. Each connection runs a small runtime of its own, which must not be
/// dropped on an async thread: the last handle drops the pool on a plain thread.
struct PgReaders(Option<r2d2::Pool<pg::Manager>>);

impl Drop for PgReaders {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Job>,
    readers: Readers,
    /// PostgreSQL's connection settings, for [`Store::lead`].
    pg: Option<Arc<postgres::Config>>,
}

/// Joins the writer thread once every [`Store`] handle is dropped, so that the last commit is
/// done before the process exits.
pub struct WriterHandle {
    writer: JoinHandle<()>,
    /// SQLite's checkpointer, which stops after the writer.
    checkpointer: Option<JoinHandle<()>>,
}

impl WriterHandle {
    pub fn join(self) {
        if self.writer.join().is_err() {
            tracing::error!("the writer thread panicked");
        }
        if let Some(checkpointer) = self.checkpointer {
            if checkpointer.join().is_err() {
                tracing::error!("the checkpoint thread panicked");
            }
        }
    }
}

impl Store {
    /// Opens the database, runs migrations and starts the writer.
    pub fn open(database: &Database, render: Render) -> Result<(Store, WriterHandle), StoreError> {
        match database {
            Database::Sqlite(path) => Store::open_sqlite(path, render),
            Database::Postgres(url) => Store::open_postgres(url, render),
        }
    }

    /// Connects to PostgreSQL, runs migrations (one node at a time) and starts the writer.
    pub fn open_postgres(url: &str, render: Render) -> Result<(Store, WriterHandle), StoreError> {
        // The synchronous client runs its own small runtime; it must not start inside the
        // caller's async one.
        let url = url.to_string();
        std::thread::spawn(move || Store::open_postgres_blocking(&url, render))
            .join()
            .map_err(|_| StoreError::Unavailable("opening PostgreSQL panicked".into()))?
    }

    fn open_postgres_blocking(
        url: &str,
        render: Render,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let config = pg::config(url)?;
        let mut connection = pg::connect(&config)?;
        schema::migrate_pg(&mut connection.client)?;
        // The journal a node left when it stopped between a commit and its copy (any node's:
        // copying one another's is harmless, each row is copied once). Rows written from now on
        // are their live nodes' to copy, so that a start under load ends.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(i64::MAX, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        while crate::bulk::journal_recover(&db::Conn::pg(&mut connection), started)? > 0 {}
        let readers = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(3))
            .build(pg::Manager(config.clone()))?;
        let backend = writer::Backend::Pg {
            config: Box::new(config.clone()),
            connection: Some(Box::new(connection)),
        };
        let readers = Readers::Pg(Arc::new(PgReaders(Some(readers))));
        let (mut store, handle) = Store::start(backend, readers, render, Hooks::default(), None)?;
        store.pg = Some(Arc::new(config));
        Ok((store, handle))
    }

    fn start(
        backend: writer::Backend,
        readers: Readers,
        render: Render,
        hooks: Hooks,
        checkpointer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let (sender, receiver) = mpsc::channel(credits_core::COMMIT_BATCH_SIZE_MAX * 4);
        let (stop, checkpointer) = checkpointer.unzip();
        let writer = std::thread::Builder::new()
            .name("credits-writer".into())
            .spawn(move || {
                writer::run(backend, receiver, render, hooks);
                // The checkpointer's last checkpoint follows the writer's last commit.
                drop(stop);
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok((Store { writer: sender, readers, pg: None }, WriterHandle { writer, checkpointer }))
    }

    /// Opens (creating if needed) the database at `path`, runs migrations and starts the writer.
    pub fn open_sqlite(path: &Path, render: Render) -> Result<(Store, WriterHandle), StoreError> {
        Store::open_sqlite_with(path, render, Hooks::default())
    }

    /// [`Store::open_sqlite`] with a clock and storage failures injected into the writer: for
    /// the deterministic simulation (`tests/simulation.rs`), never used by the service.
    pub fn open_sqlite_with(
        path: &Path,
        render: Render,
        hooks: Hooks,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let mut connection = schema::open_writer(path)?;
        schema::migrate(&mut connection)?;
        // Checkpoints run on a thread of their own, not inside the writer's commits.
        connection.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpointer = checkpoint::start(path, stopped, restart.clone())?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.execute_batch(
                "PRAGMA busy_timeout = 5000; PRAGMA query_only = 1; PRAGMA cache_size = -16000;",
            )
        });
        let readers = r2d2::Pool::builder().max_size(8).min_idle(Some(2)).build(manager)?;
        let backend = writer::Backend::Sqlite { connection, restart };
        Store::start(backend, Readers::Sqlite(readers), render, hooks, Some((stop, checkpointer)))
    }

    /// On PostgreSQL, starts taking part in the nodes' leadership (see `cluster.rs`): campaigning
    /// for it when `advertise` (the URL other nodes reach this one at) is given, and following
    /// who holds it. `None` on SQLite, which has one node.
    pub fn lead(&self, advertise: Option<String>) -> Result<Option<Leadership>, StoreError> {
        match &self.pg {
            Some(config) => Leadership::start((**config).clone(), advertise).map(Some),
            None => Ok(None),
        }
    }

    /// Executes one write and answers once it is durable.
    pub async fn write(&self, request: WriteRequest) -> Result<Executed, StoreError> {
        let mut results = self.write_many(vec![request]).await?;
        results.pop().unwrap_or_else(|| Err(StoreError::Unavailable("no answer".into())))
    }

    /// Executes independent writes in one commit; each has its own result.
    pub async fn write_many(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<Result<Executed, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { requests, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer has stopped".into()))
    }

    /// Runs a read on a pooled read-only connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || match readers {
            Readers::Sqlite(pool) => {
                let connection = pool.get()?;
                f(&Reader::new(&db::Conn::Sqlite(&connection)))
            }
            Readers::Pg(readers) => {
                let pool =
                    readers.0.as_ref().ok_or_else(|| StoreError::Unavailable("closed".into()))?;
                let mut connection = pool.get()?;
                f(&Reader::new(&db::Conn::pg(&mut connection)))
            }
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}
