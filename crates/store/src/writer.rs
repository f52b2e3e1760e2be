//! The single writer: group commit of every waiting request, one savepoint each.
//!
//! Each request runs in three steps (after TigerBeetle's prefetch, execute, commit): load the
//! account's open records, let the core decide, persist exactly the effects it reports. Checks
//! all come before the first write, so a rejected request writes nothing but its stored answer.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{params, Conn, Optional, PgConn};
use tokio::sync::mpsc;

use credits_core::{
    book::HoldRequest, Book, CreditRecord, Effects, Rejection, Timestamp, COMMIT_BATCH_SIZE_MAX,
    IDEMPOTENCY_TTL_SECONDS, SERVICE_ANY,
};

use crate::outbox;
use crate::read::{account_find, api_key_find};
use crate::rows::{self, book_load};
use crate::spending::Spending;
use crate::types::*;
use crate::{Job, Render, StoreError};

/// Wall-clock time that never goes backwards, so that records keep their order.
struct Clock {
    last_micros: i64,
    /// A clock injected by a test (see `faults.rs`); `None`: the system clock.
    source: Option<crate::faults::ClockSource>,
}

impl Clock {
    fn now(&mut self) -> Timestamp {
        let micros = match &self.source {
            Some(source) => source().0,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        };
        self.last_micros = self.last_micros.max(micros);
        Timestamp(self.last_micros)
    }
}

/// The id of the operator admin key the binary bootstraps.
pub(crate) const ADMIN_KEY_ID: &str = "key_admin";

pub(crate) struct Writer {
    clock: Clock,
    ids: ulid::Generator,
    pub(crate) render: Render,
    /// Every webhook endpoint not deleted: the writer is their only writer, so this stays true.
    pub(crate) endpoints: Vec<WebhookEndpoint>,
    /// Whether `endpoints` must be read again.
    endpoints_loaded: bool,
    /// The service catalog as read so far: on SQLite the writer is its only writer, so a debit
    /// need not read the service and its operations again; on PostgreSQL, per batch.
    services: std::collections::HashMap<String, Service>,
    /// Whether other nodes write to the same database (PostgreSQL).
    shared: bool,
    /// The ledger's next places, on SQLite (see [`rows::LedgerSeq`]).
    pub(crate) ledger_seq: rows::LedgerSeq,
    /// On PostgreSQL, `catalog_epoch` when `endpoints` and `services` were read (`None`: read
    /// them again); `seen_epoch`, the number this batch's first lock read with its account.
    catalog_epoch: Option<i64>,
    seen_epoch: Option<i64>,
    /// The accounts this transaction has locked (PostgreSQL).
    locked: std::collections::HashSet<String>,
    /// Rows of locked accounts as the lock read them, until a command of the batch reads one.
    locked_rows: std::collections::HashMap<String, Account>,
    /// The state of locked accounts (open records, held reservations, budgets) as their lock
    /// statement read it (PostgreSQL), until the batch's first usage on the account takes it;
    /// dropped with `locked_rows`.
    pub(crate) locked_state:
        std::collections::HashMap<String, (credits_core::Book, Vec<credits_core::budget::Budget>)>,
    /// What the batch's usages changed, not written yet.
    pub(crate) hot: crate::hot::Hot,
    /// Idempotency keys of the batch's usages read at its start (PostgreSQL): `None` for a key
    /// not stored. Keys absent from the map are read when needed.
    pub(crate) known: std::collections::HashMap<(String, String), Option<StoredAnswer>>,
    /// The usage journal rows this batch wrote (PostgreSQL), copied after its commit.
    pub(crate) journal: Vec<i64>,
    /// When the writer's connection last discarded its plans (PostgreSQL, see [`PLANS_KEPT`]).
    plans_discarded: std::time::Instant,
}

/// How long the PostgreSQL writer's connection keeps the plans it caches before it discards
/// them (`DISCARD PLANS`, sent with a batch's `BEGIN`). Some are generic plans kept on purpose
/// (the state function's, `rows::account_state_function`), and a plan chosen while a table was
/// small (a sequential scan) must not outlive the table's growth: without `ANALYZE`, which
/// invalidates plans itself, nothing else would replace it. Planning again every 10 seconds
/// costs a handful of plans.
const PLANS_KEPT: std::time::Duration = std::time::Duration::from_secs(10);

impl Writer {
    /// The place in the ledger of the next entry written: on SQLite the writer's count, on
    /// PostgreSQL `None` (the table's sequence gives it).
    pub(crate) fn ledger_place(
        &mut self,
        connection: &Conn<'_>,
    ) -> Result<Option<i64>, StoreError> {
        if connection.is_pg() {
            return Ok(None);
        }
        Ok(Some(self.ledger_seq.take(connection)?))
    }

    pub(crate) fn service(
        &mut self,
        connection: &Conn<'_>,
        id: &str,
    ) -> Result<Option<&Service>, StoreError> {
        if !self.services.contains_key(id) {
            match crate::read::service_find(connection, id)? {
                Some(service) => self.services.insert(id.to_string(), service),
                None => return Ok(None),
            };
        }
        Ok(self.services.get(id))
    }

    /// Locks an account's row until the transaction ends, on PostgreSQL, where other nodes may
    /// write the same account: everything a command reads of the account after this is current
    /// and stays so. (SQLite has one writer; nothing to do.)
    pub(crate) fn lock(
        &mut self,
        connection: &Conn<'_>,
        account_id: &str,
    ) -> Result<(), StoreError> {
        self.lock_rows(connection, &[account_id], true, &[]).map(|_| ())
    }

    /// Locks the rows of those `accounts` this transaction has not locked yet, in one statement
    /// (one round trip, however many accounts a batch names), in id order as bytes (the order
    /// every batch locks in, so that two nodes' batches never wait on each other in a cycle):
    /// waiting for each, or, without `wait`, skipping those another transaction holds. Each row
    /// comes with its lock, for the account's first reader in the batch; the accounts in
    /// `charged` (those the batch's usages charge) bring their state too, read by a function
    /// that runs after the account's lock is granted, with a snapshot of its own (see
    /// `rows::account_state_function`). The catalog's epoch comes along, as of the statement's
    /// start (as the catalog was read before locks were: a change racing with a batch may land
    /// after it). A missing account is "locked" too when waited for: nothing can be written to
    /// it. Returns the accounts not locked: skipped, or missing, without `wait`.
    fn lock_rows(
        &mut self,
        connection: &Conn<'_>,
        accounts: &[&str],
        wait: bool,
        charged: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut wanted: Vec<&str> =
            accounts.iter().copied().filter(|a| self.shared && !self.locked.contains(*a)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let mut charged: Vec<&str> =
            charged.iter().copied().filter(|a| wanted.binary_search(a).is_ok()).collect();
        charged.sort_unstable();
        charged.dedup();
        let lock = format!(
            "SELECT {}, (SELECT n FROM catalog_epoch WHERE id = 1) AS catalog_epoch \
             FROM accounts WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(?1::text::jsonb))) \
             ORDER BY id COLLATE \"C\" FOR UPDATE OF accounts{}",
            rows::ACCOUNT_COLUMNS,
            if wait { "" } else { " SKIP LOCKED" },
        );
        // The function's argument reads the whole of `l`, so it runs once every lock is taken.
        let sql = if charged.is_empty() {
            lock
        } else {
            format!(
                "WITH l AS MATERIALIZED ({lock}) \
                 SELECT l.*, s.o_credits, s.o_holds, s.o_budgets FROM l LEFT JOIN {}(ARRAY( \
                     SELECT id FROM l \
                     WHERE id = ANY(ARRAY(SELECT jsonb_array_elements_text(?2::text::jsonb))))) \
                 AS s ON s.o_account = l.id",
                rows::account_state_function().0
            )
        };
        let ids = serde_json::json!(wanted).to_string();
        let charged_ids = serde_json::json!(charged).to_string();
        let epoch_column = rows::ACCOUNT_COLUMNS.split(',').count();
        let map = |row: &crate::db::Row<'_>| {
            let (_, account) = rows::account_from_row(row)?;
            let state = if charged.binary_search(&account.id.as_str()).is_ok() {
                Some(rows::account_state_of(
                    &account.id,
                    row.get::<Option<String>>(epoch_column + 1)?.as_deref(),
                    row.get::<Option<String>>(epoch_column + 2)?.as_deref(),
                    row.get::<Option<String>>(epoch_column + 3)?.as_deref(),
                )?)
            } else {
                None
            };
            Ok((account, row.get::<Option<i64>>(epoch_column)?, state))
        };
        let mut statement = connection.prepare_cached(&sql)?;
        let found = if charged.is_empty() {
            statement.query_map(params![ids], map)?
        } else {
            statement.query_map(params![ids, charged_ids], map)?
        };
        let mut refused: std::collections::HashSet<String> =
            wanted.iter().map(|a| a.to_string()).collect();
        for row in found {
            let (account, epoch, state) = row?;
            self.seen_epoch = self.seen_epoch.or(epoch);
            refused.remove(&account.id);
            self.locked.insert(account.id.clone());
            if let Some(state) = state {
                self.locked_state.insert(account.id.clone(), state);
            }
            self.locked_rows.insert(account.id.clone(), account);
        }
        if wait {
            self.locked.extend(refused.drain());
        }
        Ok(refused)
    }

    /// The account, locked (see [`Writer::lock`]).
    pub(crate) fn account(
        &mut self,
        connection: &Conn<'_>,
        account_id: &str,
    ) -> Result<Option<Account>, StoreError> {
        self.lock(connection, account_id)?;
        // Read at lock time and not changed since: this batch has not used it yet.
        if let Some(account) = self.locked_rows.remove(account_id) {
            return Ok(Some(account));
        }
        account_find(connection, account_id)
    }

    pub(crate) fn id(&mut self, prefix: &str) -> String {
        // The generator only fails when more than 2^80 ids share one millisecond.
        let ulid = self.ids.generate().unwrap_or_else(|_| ulid::Ulid::generate());
        format!("{prefix}_{ulid}")
    }
}

/// The writer's connection: SQLite's own, or PostgreSQL's, opened again whenever it is lost.
pub(crate) enum Backend {
    /// `restart`: set by the checkpointer when the writer should checkpoint after a commit.
    Sqlite {
        connection: r2d2_sqlite::rusqlite::Connection,
        restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
    },
    Pg {
        config: Box<postgres::Config>,
        connection: Option<Box<PgConn>>,
    },
}

impl Backend {
    pub(crate) fn conn(&mut self) -> Result<Conn<'_>, StoreError> {
        match self {
            Backend::Sqlite { connection, .. } => Ok(Conn::Sqlite(connection)),
            Backend::Pg { config, connection } => {
                if connection.as_ref().is_some_and(|c| c.client.is_closed()) {
                    *connection = None;
                }
                let connection = match connection {
                    Some(connection) => connection,
                    None => connection.insert(Box::new(crate::pg::connect(config)?)),
                };
                Ok(Conn::pg(connection))
            }
        }
    }
}

/// How often a batch that lost a race with another node (deadlock, an idempotency key stored
/// meanwhile) is run again before its requests are answered 503.
const BATCH_TRIES: usize = 8;

pub(crate) fn run(
    mut backend: Backend,
    mut receiver: mpsc::Receiver<Job>,
    render: Render,
    hooks: crate::faults::Hooks,
) {
    let shared = matches!(backend, Backend::Pg { .. });
    let copier = match &backend {
        Backend::Pg { config, .. } => Some(crate::copier::Copier::start((**config).clone())),
        Backend::Sqlite { .. } => None,
    };
    if let Some(faults) = &hooks.faults {
        faults.install();
    }
    let mut writer = Writer {
        clock: Clock { last_micros: 0, source: hooks.clock },
        ids: ulid::Generator::new(),
        render,
        endpoints: Vec::new(),
        endpoints_loaded: false,
        services: std::collections::HashMap::new(),
        shared,
        catalog_epoch: None,
        seen_epoch: None,
        locked: std::collections::HashSet::new(),
        locked_rows: std::collections::HashMap::new(),
        locked_state: std::collections::HashMap::new(),
        hot: crate::hot::Hot::default(),
        known: std::collections::HashMap::new(),
        journal: Vec::new(),
        plans_discarded: std::time::Instant::now(),
        ledger_seq: rows::LedgerSeq::default(),
    };
    // Jobs a batch could not take (their accounts were locked by another node): first in the next.
    let mut deferred: Vec<Job> = Vec::new();
    loop {
        let mut jobs = std::mem::take(&mut deferred);
        if jobs.is_empty() {
            match receiver.blocking_recv() {
                Some(first) => jobs.push(first),
                None => break,
            }
        }
        let mut count: usize = jobs.iter().map(|job| job.requests.len()).sum();
        while count < COMMIT_BATCH_SIZE_MAX {
            match receiver.try_recv() {
                Ok(job) => {
                    count += job.requests.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let committed = match backend.conn() {
            Ok(connection) => {
                let mut tries = 1;
                loop {
                    let mut late = Late { receiver: &mut receiver, deferred: &mut deferred };
                    // The first try takes the usages' keys as new (see `batch_execute`).
                    let read_keys = tries > 1;
                    match commit_batch(&connection, &mut writer, &mut jobs, &mut late, read_keys) {
                        Err(StoreError::Conflict(cause)) if tries < BATCH_TRIES => {
                            tracing::debug!(%cause, tries, "batch lost a race; running it again");
                            metrics::counter!("credits_writer_batch_retries").increment(1);
                            tries += 1;
                        }
                        result => break result,
                    }
                }
            }
            Err(error) => Err(error),
        };
        // Counted after the batch ran: requests that joined it while it waited for its locks
        // (`join_late`) are in `jobs` now.
        let ran: usize = jobs.iter().map(|job| job.requests.len()).sum();
        metrics::histogram!("credits_writer_batch_requests").record(ran as f64);
        metrics::histogram!("credits_writer_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        // A rolled-back write may have changed the writer's copies (endpoints, services):
        // after any failure, read them again from what is committed.
        let failed = match &committed {
            Ok(results) => results.iter().flatten().any(Result::is_err),
            Err(_) => true,
        };
        if failed {
            writer.services.clear();
            writer.endpoints_loaded = false;
            writer.catalog_epoch = None;
        }
        match committed {
            Ok(results) => {
                let answers: Vec<_> = jobs.into_iter().zip(results).collect();
                let journal = std::mem::take(&mut writer.journal);
                match &copier {
                    Some(copier) if !journal.is_empty() => {
                        if let Err(committed) =
                            copier.send(crate::copier::Committed { journal, answers })
                        {
                            // No copier: the writer copies (its commit waits for the disk).
                            let copied = crate::copier::copy(&mut backend, &committed.journal);
                            crate::copier::answer(committed.answers, copied.err());
                        }
                    }
                    _ => crate::copier::answer(answers, None),
                }
                // After the answers, so that nobody waits for it.
                if let Backend::Sqlite { connection, restart } = &backend {
                    crate::checkpoint::after_commit(connection, restart);
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; answering 503 to the whole batch");
                for job in jobs {
                    let results = job
                        .requests
                        .iter()
                        .map(|_| Err(StoreError::Unavailable(error.to_string())));
                    let _ = job.reply.send(results.collect());
                }
            }
        }
    }
    tracing::info!("writer stopped: every handle was dropped");
}

type BatchResults = Vec<Vec<Result<Executed, StoreError>>>;

/// The account a command writes to, when the command names it: on PostgreSQL these are locked
/// first, in id order, so that two nodes' batches never wait on each other in a cycle.
fn account_of(command: &Command) -> Option<&str> {
    match command {
        Command::RecordUsage(new) => Some(&new.account_id),
        Command::CreateCredit(new) => Some(&new.account_id),
        Command::CreateReservation(new) => Some(&new.account_id),
        Command::CreateBudget(new) => Some(&new.account_id),
        Command::CreateMember { account_id, .. } => Some(account_id),
        Command::UpdateAccount { id, .. } => Some(id),
        _ => None,
    }
}

/// While a batch waited for its accounts' locks (held by another node's batch), more requests
/// arrived; those whose accounts it holds, or can lock without waiting, join it, so a hot
/// account's lock serves every request waiting for it. Others wait for the next batch (locking
/// them now could deadlock with the node holding them).
fn join_late(
    connection: &Conn<'_>,
    writer: &mut Writer,
    jobs: &mut Vec<Job>,
    late: &mut Late<'_>,
) -> Result<(), StoreError> {
    let mut count: usize = jobs.iter().map(|job| job.requests.len()).sum();
    let mut arrived = Vec::new();
    while count < COMMIT_BATCH_SIZE_MAX {
        let Ok(job) = late.receiver.try_recv() else { break };
        count += job.requests.len();
        arrived.push(job);
    }
    let mut joined = Vec::new();
    if !arrived.is_empty() {
        // One statement for all of them, waiting for none.
        let accounts: Vec<&str> = arrived
            .iter()
            .flat_map(|job| &job.requests)
            .filter_map(|r| account_of(&r.command))
            .collect();
        let charged: Vec<&str> = charged_accounts(&arrived).into_iter().collect();
        let refused = writer.lock_rows(connection, &accounts, false, &charged)?;
        for job in arrived {
            let all = job
                .requests
                .iter()
                .filter_map(|r| account_of(&r.command))
                .all(|account| !refused.contains(account));
            if all {
                joined.push(job);
            } else {
                late.deferred.push(job);
            }
        }
    }
    // Their keys are taken as new without reading them, which would cost the locked batch a
    // round trip: a key that is stored after all (a retry, a replay) makes the batch's write fail
    // with a unique violation (`bulk::hot_flush_pg`), and the batch runs again, reading every
    // key first.
    let keys = joined
        .iter()
        .flat_map(|job| &job.requests)
        .filter(|r| matches!(r.command, Command::RecordUsage(_)))
        .filter_map(|r| r.idempotency.as_ref());
    for key in keys {
        writer.known.entry((key.scope.clone(), key.key.clone())).or_insert(None);
    }
    jobs.extend(joined);
    Ok(())
}

/// The accounts that the jobs' usages charge.
fn charged_accounts(jobs: &[Job]) -> std::collections::HashSet<&str> {
    jobs.iter()
        .flat_map(|job| &job.requests)
        .filter_map(|r| match &r.command {
            Command::RecordUsage(new) => Some(new.account_id.as_str()),
            _ => None,
        })
        .collect()
}

/// Whether a command may take rights away from a key that another node has cached.
fn changes_access(command: &Command) -> bool {
    matches!(
        command,
        Command::UpdateMember { .. }
            | Command::DeleteMember { .. }
            | Command::RevokeApiKey { .. }
            | Command::SetAdminKey { .. }
    )
}

/// Where a batch on PostgreSQL finds the requests that arrived while it waited for its locks.
struct Late<'r> {
    receiver: &'r mut mpsc::Receiver<Job>,
    deferred: &'r mut Vec<Job>,
}

fn commit_batch(
    connection: &Conn<'_>,
    writer: &mut Writer,
    jobs: &mut Vec<Job>,
    late: &mut Late<'_>,
    read_keys: bool,
) -> Result<BatchResults, StoreError> {
    let begin = if !connection.is_pg() {
        "BEGIN IMMEDIATE"
    } else if writer.plans_discarded.elapsed() >= PLANS_KEPT {
        writer.plans_discarded = std::time::Instant::now();
        "DISCARD PLANS; BEGIN"
    } else {
        "BEGIN"
    };
    connection.batch(begin)?;
    let result = batch_execute(connection, writer, jobs, late, read_keys);
    if result.is_err() {
        if let Err(error) = connection.batch("ROLLBACK") {
            tracing::warn!(%error, "rollback failed");
        }
    }
    // An injected fault (simulation only) may lose the answer of a commit that landed.
    result.and_then(|results| crate::faults::after_commit().map(|()| results))
}

/// On PostgreSQL, a first try (`read_keys` false) takes the idempotency keys of its usages as
/// new without reading them, as it does the keys of requests that join it late: a key stored
/// after all (a client's retry, a replay, a key reused past its retention) fails the batch's
/// write with a unique violation, and the batch runs again reading every key first. Most batches
/// hold no such key, and save a round trip before their locks and a probe per key; one that does
/// runs twice.
fn batch_execute(
    connection: &Conn<'_>,
    writer: &mut Writer,
    jobs: &mut Vec<Job>,
    late: &mut Late<'_>,
    read_keys: bool,
) -> Result<BatchResults, StoreError> {
    writer.locked.clear();
    writer.locked_rows.clear();
    writer.locked_state.clear();
    writer.hot = crate::hot::Hot::default();
    writer.known.clear();
    writer.journal.clear();
    if writer.shared {
        let keys = jobs
            .iter()
            .flat_map(|job| &job.requests)
            .filter(|r| matches!(r.command, Command::RecordUsage(_)))
            .filter_map(|r| r.idempotency.as_ref());
        writer.known = if read_keys {
            crate::bulk::idempotency_prefetch(connection, keys)?
        } else {
            keys.map(|k| ((k.scope.clone(), k.key.clone()), None)).collect()
        };
        writer.seen_epoch = None;
        let mut accounts: Vec<&str> = jobs
            .iter()
            .flat_map(|job| &job.requests)
            .filter_map(|r| account_of(&r.command))
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        let waited = std::time::Instant::now();
        // The state comes with the lock only for accounts a usage charges: other commands
        // read what they need themselves.
        let charged: Vec<&str> = charged_accounts(jobs).into_iter().collect();
        writer.lock_rows(connection, &accounts, true, &charged)?;
        metrics::histogram!("credits_writer_lock_seconds").record(waited.elapsed().as_secs_f64());
        // Other nodes write too: the endpoints and services this writer holds are read again
        // when the catalog's epoch moved since (rarely: almost every batch keeps them).
        let epoch = match writer.seen_epoch {
            Some(epoch) => epoch,
            None => connection
                .prepare_cached("SELECT n FROM catalog_epoch WHERE id = 1")?
                .query_row(params![], |row| row.get(0))?,
        };
        if writer.catalog_epoch != Some(epoch) {
            writer.endpoints_loaded = false;
            writer.services.clear();
            writer.catalog_epoch = Some(epoch);
        }
        join_late(connection, writer, jobs, late)?;
    }
    if !writer.endpoints_loaded {
        writer.endpoints = endpoints_load(connection)?;
        writer.endpoints_loaded = true;
    }
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut job_results = Vec::with_capacity(job.requests.len());
        for request in &job.requests {
            let now = writer.clock.now();
            if let Command::RecordUsage(new) = &request.command {
                // A failure here fails the batch: memory may be ahead of the database.
                job_results
                    .push(Ok(crate::hot::execute_usage(connection, writer, request, new, now)?));
                continue;
            }
            crate::hot::flush(connection, writer, now)?;
            // Other commands may change accounts: rows read at lock time are stale from here.
            writer.locked_rows.clear();
            writer.locked_state.clear();
            connection.batch("SAVEPOINT request")?;
            match execute(connection, writer, request, now) {
                Ok(executed) => {
                    if writer.shared && changes_access(&request.command) {
                        connection
                            .prepare_cached("UPDATE auth_epoch SET n = n + 1 WHERE id = 1")?
                            .execute(params![])?;
                    }
                    connection.batch("RELEASE request")?;
                    job_results.push(Ok(executed));
                }
                // Lost a race with another node: the whole batch runs again.
                Err(error @ StoreError::Conflict(_)) => return Err(error),
                Err(error) => {
                    tracing::error!(%error, "write failed; rolled back to its savepoint");
                    connection.batch("ROLLBACK TO request; RELEASE request")?;
                    job_results.push(Err(error));
                }
            }
        }
        results.push(job_results);
    }
    let now = writer.clock.now();
    let replays = writer.shared && results.iter().flatten().flatten().any(|e| e.replayed);
    crate::faults::before_commit()?;
    let flushed = std::time::Instant::now();
    // On PostgreSQL, a batch with journal rows is committed with its last write.
    let committed_with_write = crate::hot::flush_and_commit(connection, writer, now)?;
    metrics::histogram!("credits_writer_flush_seconds").record(flushed.elapsed().as_secs_f64());
    let committed = std::time::Instant::now();
    if !committed_with_write {
        if !writer.journal.is_empty() {
            connection.batch(crate::hot::ASYNC_COMMIT)?;
        } else {
            if replays {
                // A replayed answer may be another node's not yet on disk (committed without
                // waiting, above): a transaction id makes this commit wait for the log up to
                // here.
                connection.batch("SELECT txid_current()")?;
            }
            connection.batch("COMMIT")?;
        }
    }
    metrics::histogram!("credits_writer_commit_statement_seconds")
        .record(committed.elapsed().as_secs_f64());
    Ok(results)
}

fn execute(
    connection: &Conn<'_>,
    writer: &mut Writer,
    request: &WriteRequest,
    now: Timestamp,
) -> Result<Executed, StoreError> {
    if let Some(idempotency) = &request.idempotency {
        if let Some(executed) = idempotency_lookup(connection, writer, request, idempotency, now)? {
            return Ok(executed);
        }
    }
    let outcome = apply(connection, writer, &request.command, now)?;
    let rendered = writer.render.answer(&request.command, &outcome);
    if let Some(idempotency) = &request.idempotency {
        if rendered.status < 500 {
            let answer = StoredAnswer::of(idempotency, &outcome, &rendered, now);
            crate::bulk::idempotency_store(connection, std::slice::from_ref(&answer), now)?;
            if !writer.known.is_empty() {
                writer.known.insert((answer.scope.clone(), answer.key.clone()), Some(answer));
            }
        }
    }
    Ok(Executed { rendered, replayed: false, outcome: Some(outcome) })
}

/// The answer stored for a key still fresh: a replay when the request is the same, a conflict
/// when it differs. Answers of this batch not yet written are looked at first.
pub(crate) fn idempotency_lookup(
    connection: &Conn<'_>,
    writer: &mut Writer,
    request: &WriteRequest,
    idempotency: &Idempotency,
    now: Timestamp,
) -> Result<Option<Executed>, StoreError> {
    let fresh_after = now.0 - IDEMPOTENCY_TTL_SECONDS * 1_000_000;
    let pending = writer.hot.answer(&idempotency.scope, &idempotency.key);
    let known = || {
        if writer.known.is_empty() {
            return None;
        }
        writer.known.get(&(idempotency.scope.clone(), idempotency.key.clone()))
    };
    let stored = match pending.or_else(|| known().and_then(Option::as_ref)) {
        Some(answer) => Some((
            answer.request_hash.to_vec(),
            answer.rendered.status,
            answer.rendered.body.clone(),
            answer.created_at,
            answer.usage_id.clone(),
        )),
        None if known().is_some() => None,
        None => connection
            .prepare_cached(
                "SELECT request_hash, status, body, created_at, usage_id FROM idempotency \
                 WHERE scope = ?1 AND key = ?2",
            )?
            .query_row(params![idempotency.scope, idempotency.key], |row| {
                Ok((
                    row.get::<Vec<u8>>(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get::<i64>(3)?,
                    row.get::<Option<String>>(4)?,
                ))
            })
            .optional()?,
    };
    let Some((hash, status, body, created_at, usage_id)) = stored else { return Ok(None) };
    if created_at <= fresh_after {
        return Ok(None);
    }
    if hash == idempotency.request_hash {
        let body = match usage_id {
            Some(usage_id) if body.is_empty() => {
                usage_answer(connection, writer, &request.command, &usage_id)?
            }
            _ => body,
        };
        let rendered = Rendered { status, body };
        return Ok(Some(Executed { rendered, replayed: true, outcome: None }));
    }
    let outcome = Outcome::IdempotencyConflict;
    let rendered = writer.render.answer(&request.command, &outcome);
    Ok(Some(Executed { rendered, replayed: false, outcome: Some(outcome) }))
}

/// An answer to store with its idempotency key.
#[derive(Debug, Clone)]
pub(crate) struct StoredAnswer {
    pub(crate) scope: String,
    pub(crate) key: String,
    pub(crate) request_hash: [u8; 32],
    pub(crate) rendered: Rendered,
    pub(crate) created_at: i64,
    /// The usage this answer renders, when it is stored by reference rather than as its body
    /// (see `bulk::answer_row`); an answer read back so is rendered again ([`usage_answer`]).
    pub(crate) usage_id: Option<String>,
}

impl StoredAnswer {
    /// The answer `rendered` from `outcome`; a usage's answer names its usage too, so that
    /// PostgreSQL stores the reference rather than the body.
    pub(crate) fn of(
        idempotency: &Idempotency,
        outcome: &Outcome,
        rendered: &Rendered,
        now: Timestamp,
    ) -> Self {
        StoredAnswer {
            scope: idempotency.scope.clone(),
            key: idempotency.key.clone(),
            request_hash: idempotency.request_hash,
            rendered: rendered.clone(),
            created_at: now.0,
            usage_id: match outcome {
                Outcome::Usage(usage) => Some(usage.id.clone()),
                _ => None,
            },
        }
    }
}

/// The body of an answer stored by reference to its usage: the usage rendered again, exactly as
/// it was (the usage row holds everything its answer shows, and rows are never changed). The
/// usage may still be in the usage journal, which is copied first, as reads do.
fn usage_answer(
    connection: &Conn<'_>,
    writer: &Writer,
    command: &Command,
    usage_id: &str,
) -> Result<Vec<u8>, StoreError> {
    let find = || {
        connection
            .prepare_cached(&format!("SELECT {} FROM usage WHERE id = ?1", rows::USAGE_COLUMNS))?
            .query_row(params![usage_id], rows::usage_from_row)
            .optional()
    };
    let usage = match find()? {
        Some(found) => found,
        None => {
            crate::bulk::journal_settle(connection)?;
            find()?.ok_or_else(|| {
                StoreError::Unavailable(format!("usage {usage_id} of a stored answer is missing"))
            })?
        }
    };
    Ok(writer.render.answer(command, &Outcome::Usage(usage.1)).body)
}

fn rejected(rejection: Rejection) -> Result<Outcome, StoreError> {
    Ok(Outcome::Rejected(rejection))
}

/// Writes what an operation changed, with the events its transitions cause.
fn persist(
    connection: &Conn<'_>,
    writer: &mut Writer,
    account: Option<&mut Account>,
    book: &Book,
    before: &[(credits_core::CreditStatus, bool)],
    effects: &Effects,
    now: Timestamp,
) -> Result<(), StoreError> {
    outbox::book_events(connection, writer, account, book, before, effects, now)?;
    for &index in &effects.records_changed {
        rows::credit_save(connection, &book.records[index])?;
    }
    for &index in &effects.holds_changed {
        rows::reservation_save(connection, &book.holds[index])?;
    }
    for entry in &effects.entries {
        let seq = writer.ledger_place(connection)?;
        rows::entry_insert(connection, entry, seq)?;
    }
    Ok(())
}

/// A member named as the actor must exist in the account (another account's is not found).
fn member_check(
    connection: &Conn<'_>,
    account_id: &str,
    actor: &credits_core::Actor,
) -> Result<Option<Rejection>, StoreError> {
    let Some(member_id) = &actor.member_id else {
        return Ok(None);
    };
    match crate::read::member_find(connection, member_id)? {
        Some(member) if member.account_id == account_id => Ok(None),
        _ => Ok(Some(Rejection::NotFound(format!("member {member_id}")))),
    }
}

fn in_scope(scope: &AccountScope, account_id: &str) -> bool {
    scope.as_deref().is_none_or(|scope| scope == account_id)
}

fn apply(
    connection: &Conn<'_>,
    writer: &mut Writer,
    command: &Command,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    match command {
        Command::CreateAccount(new) => {
            let account = Account {
                id: writer.id("acct"),
                name: new.name.clone(),
                external_id: new.external_id.clone(),
                low_balance_threshold: new.low_balance_threshold,
                expiring_soon_days: new.expiring_soon_days.unwrap_or(7),
                auto_top_up: new.auto_top_up.clone(),
                created_at: now,
                updated_at: now,
                low_balance_fired: false,
                top_up_fired: false,
            };
            rows::account_save(connection, &account)?;
            Ok(Outcome::Account(account))
        }
        Command::UpdateAccount { id, patch, scope } => {
            let Some(mut account) =
                writer.account(connection, id)?.filter(|a| in_scope(scope, &a.id))
            else {
                return rejected(Rejection::NotFound(format!("account {id}")));
            };
            if let Some(name) = &patch.name {
                account.name = name.clone();
            }
            if let Some(external_id) = &patch.external_id {
                account.external_id = external_id.clone();
            }
            if let Some(threshold) = patch.low_balance_threshold {
                account.low_balance_threshold = threshold;
            }
            if let Some(days) = patch.expiring_soon_days {
                account.expiring_soon_days = days;
            }
            if let Some(auto_top_up) = &patch.auto_top_up {
                account.auto_top_up = auto_top_up.clone();
            }
            account.updated_at = now;
            rows::account_save(connection, &account)?;
            Ok(Outcome::Account(account))
        }
        Command::CreateService { id, name, unit_cost, operations } => {
            if writer.service(connection, id)?.is_some() || id == SERVICE_ANY {
                return rejected(Rejection::Validation(format!("service {id} already exists")));
            }
            let service = Service {
                id: id.clone(),
                name: name.clone(),
                unit_cost: *unit_cost,
                operations: operations.clone(),
                created_at: now,
                updated_at: now,
            };
            service_save(connection, &service)?;
            writer.services.insert(service.id.clone(), service.clone());
            Ok(Outcome::Service(service))
        }
        Command::UpdateService { id, patch } => {
            let Some(mut service) = writer.service(connection, id)?.cloned() else {
                return rejected(Rejection::NotFound(format!("service {id}")));
            };
            if let Some(name) = &patch.name {
                service.name = name.clone();
            }
            if let Some(unit_cost) = patch.unit_cost {
                service.unit_cost = unit_cost;
            }
            if let Some(operations) = &patch.operations {
                service.operations = operations.clone();
            }
            service.updated_at = now;
            service_save(connection, &service)?;
            writer.services.insert(service.id.clone(), service.clone());
            Ok(Outcome::Service(service))
        }
        Command::CreateCredit(new) => credit_create(connection, writer, new, now),
        Command::VoidCredit { credit_id, scope, actor } => {
            let record = crate::read::credit_find(connection, credit_id)?
                .filter(|record| in_scope(scope, &record.account_id));
            let Some(mut record) = record else {
                return rejected(Rejection::NotFound(format!("credit {credit_id}")));
            };
            if writer.shared {
                writer.lock(connection, &record.account_id)?;
                record = crate::read::credit_find(connection, credit_id)?.unwrap_or(record);
            }
            let mut book = book_load(connection, &record.account_id)?;
            let before = outbox::statuses(&book);
            if !book.records.iter().any(|r| r.id == record.id) {
                book.records.push(record);
            }
            let mut effects = Effects::default();
            match book.void(credit_id, actor, now, &mut effects) {
                Ok(index) => {
                    persist(connection, writer, None, &book, &before, &effects, now)?;
                    let record = book.records[index].clone();
                    let data = EventData::Credit(record.clone());
                    outbox::emit(
                        connection,
                        writer,
                        "credit.voided",
                        &record.account_id,
                        || data,
                        now,
                    )?;
                    Ok(Outcome::Credit(record))
                }
                Err(rejection) => rejected(rejection),
            }
        }
        Command::RecordUsage(new) => {
            let outcome = crate::hot::usage(connection, writer, new, now)?;
            crate::hot::flush(connection, writer, now)?;
            Ok(outcome)
        }
        Command::CreateReservation(new) => reservation_create(connection, writer, new, now),
        Command::CaptureReservation { id, credits, scope, actor } => {
            reservation_settle(connection, writer, id, Some(*credits), scope, actor, now)
        }
        Command::ReleaseReservation { id, scope, actor } => {
            reservation_settle(connection, writer, id, None, scope, actor, now)
        }
        Command::Sweep => sweep(connection, writer, now),
        Command::CreateMember { account_id, email, name, role } => {
            member_create(connection, writer, account_id, email, name, *role, now)
        }
        Command::UpdateMember { id, patch, scope } => {
            member_update(connection, writer, id, patch, scope, now)
        }
        Command::DeleteMember { id, scope } => {
            let member = crate::read::member_find(connection, id)?
                .filter(|member| in_scope(scope, &member.account_id));
            if member.is_none() {
                return rejected(Rejection::NotFound(format!("member {id}")));
            }
            connection
                .prepare_cached(
                    "UPDATE members SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1",
                )?
                .execute(params![id, now.0])?;
            connection
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE member_id = ?1 AND revoked_at IS NULL",
                )?
                .execute(params![id, now.0])?;
            Ok(Outcome::Deleted { id: id.clone() })
        }
        Command::CreateApiKey(new) => api_key_create(connection, writer, new, now),
        Command::RevokeApiKey { id, scope } => {
            let key = api_key_find(connection, id)?.filter(|key| match (scope, &key.account_id) {
                (None, _) => true,
                (Some(scope), Some(account_id)) => scope == account_id,
                (Some(_), None) => false,
            });
            let Some(mut key) = key else {
                return rejected(Rejection::NotFound(format!("api key {id}")));
            };
            if key.id == ADMIN_KEY_ID {
                // The bootstrap key is set by CREDITS_ADMIN_KEY at start; revoking it through the
                // API could lock every operator out. (Account keys never get here: not found.)
                return rejected(Rejection::InvalidState(
                    "the admin key is set by CREDITS_ADMIN_KEY at start and cannot be revoked here"
                        .into(),
                ));
            }
            if key.revoked_at.is_none() {
                connection
                    .prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1")?
                    .execute(params![id, now.0])?;
                key.revoked_at = Some(now);
            }
            Ok(Outcome::ApiKey(key))
        }
        Command::TouchApiKeys { used } => {
            let sql = format!(
                "UPDATE api_keys SET last_used_at = {}(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
                connection.greatest()
            );
            for (id, at) in used {
                connection.prepare_cached(&sql)?.execute(params![id, at.0])?;
            }
            Ok(Outcome::Touched)
        }
        Command::CreateBudget(new) => budget_create(connection, writer, new, now),
        Command::UpdateBudget { id, patch, scope } => {
            let budget = crate::read::budget_find(connection, id)?
                .filter(|budget| in_scope(scope, &budget.account_id));
            let Some(mut budget) = budget else {
                return rejected(Rejection::NotFound(format!("budget {id}")));
            };
            if writer.shared {
                writer.lock(connection, &budget.account_id)?;
                budget = crate::read::budget_find(connection, id)?.unwrap_or(budget);
            }
            if let Some(name) = &patch.name {
                budget.name = name.clone();
            }
            if let Some(limit) = patch.limit {
                budget.limit = limit;
            }
            if let Some(enforcement) = patch.enforcement {
                budget.enforcement = enforcement;
            }
            if let Some(thresholds) = &patch.thresholds {
                budget.thresholds = thresholds.clone();
            }
            budget.updated_at = now;
            rows::budget_save(connection, &budget)?;
            Ok(Outcome::Budget(budget))
        }
        Command::DeleteBudget { id, scope } => {
            let budget = crate::read::budget_find(connection, id)?
                .filter(|budget| in_scope(scope, &budget.account_id));
            let Some(budget) = budget else {
                return rejected(Rejection::NotFound(format!("budget {id}")));
            };
            // A usage on another node saves the account's budgets under the account's lock.
            writer.lock(connection, &budget.account_id)?;
            connection.prepare_cached("DELETE FROM budgets WHERE id = ?1")?.execute([id])?;
            Ok(Outcome::Deleted { id: id.clone() })
        }
        Command::CreateWebhookEndpoint { account_id, url, events, secret_sealed } => {
            if let Some(account_id) = account_id {
                if account_find(connection, account_id)?.is_none() {
                    return rejected(Rejection::NotFound(format!("account {account_id}")));
                }
            }
            let endpoint = WebhookEndpoint {
                id: writer.id("whe"),
                account_id: account_id.clone(),
                url: url.clone(),
                events: events.clone(),
                secret_sealed: secret_sealed.clone(),
                disabled_at: None,
                created_at: now,
            };
            connection
                .prepare_cached(
                    "INSERT INTO webhook_endpoints (id, account_id, url, events, secret_sealed, \
                     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    endpoint.id,
                    endpoint.account_id,
                    endpoint.url,
                    endpoint.events.join(" "),
                    endpoint.secret_sealed,
                    now.0
                ])?;
            writer.endpoints.push(endpoint.clone());
            Ok(Outcome::WebhookEndpoint(endpoint))
        }
        Command::DeleteWebhookEndpoint { id, scope } => {
            let found = writer.endpoints.iter().position(|e| {
                e.id == *id
                    && match (scope, &e.account_id) {
                        (None, _) => true,
                        (Some(scope), Some(account_id)) => scope == account_id,
                        (Some(_), None) => false,
                    }
            });
            let Some(index) = found else {
                return rejected(Rejection::NotFound(format!("webhook endpoint {id}")));
            };
            connection
                .prepare_cached("UPDATE webhook_endpoints SET deleted_at = ?2 WHERE id = ?1")?
                .execute(params![id, now.0])?;
            connection
                .prepare_cached(
                    "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL \
                     WHERE endpoint_id = ?1 AND status = 'pending'",
                )?
                .execute([id])?;
            writer.endpoints.remove(index);
            Ok(Outcome::Deleted { id: id.clone() })
        }
        Command::RecordAttempts { results } => {
            attempts_record(connection, writer, results, now)?;
            Ok(Outcome::AttemptsRecorded)
        }
        Command::Redeliver { endpoint_id, event_id, scope } => {
            let endpoint = writer.endpoints.iter().find(|e| {
                e.id == *endpoint_id
                    && scope.as_deref().is_none_or(|s| e.account_id.as_deref() == Some(s))
            });
            let event = crate::read::event_find(connection, event_id)?;
            let (Some(endpoint), Some(event)) = (endpoint, event) else {
                return rejected(Rejection::NotFound(format!(
                    "event {event_id} of endpoint {endpoint_id}"
                )));
            };
            if endpoint.account_id.as_deref().is_some_and(|a| a != event.account_id) {
                return rejected(Rejection::NotFound(format!("event {event_id}")));
            }
            let attempt: u32 = connection
                .prepare_cached(
                    "SELECT coalesce(max(attempt), 0) FROM deliveries WHERE endpoint_id = ?1 \
                     AND event_id = ?2",
                )?
                .query_row(params![endpoint_id, event_id], |row| row.get(0))?;
            let delivery = Delivery {
                id: writer.id("dlv"),
                endpoint_id: endpoint_id.clone(),
                event_id: event_id.clone(),
                attempt: attempt + 1,
                status: DeliveryStatus::Pending,
                response_code: None,
                duration_ms: None,
                created_at: now,
                next_attempt_at: Some(now),
            };
            rows::delivery_save(connection, &delivery)?;
            Ok(Outcome::Delivery(delivery))
        }
        Command::CreateSession { id_hash, key_hash, csrf_token, expires_at } => {
            connection
                .prepare_cached(
                    "INSERT INTO sessions (id_hash, key_hash, csrf_token, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    id_hash.as_slice(),
                    key_hash.as_slice(),
                    csrf_token,
                    now.0,
                    expires_at.0
                ])?;
            Ok(Outcome::SessionCreated)
        }
        Command::DeleteSession { id_hash } => {
            connection
                .prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
                .execute([id_hash.as_slice()])?;
            Ok(Outcome::SessionDeleted)
        }
        Command::SetAdminKey { secret_hash, prefix } => {
            connection
                .prepare_cached(
                    "INSERT INTO api_keys (id, account_id, member_id, name, prefix, secret_hash, \
                     scopes, created_at) VALUES (?4, NULL, NULL, 'admin', ?1, ?2, '*', ?3) \
                     ON CONFLICT(id) DO UPDATE SET prefix = ?1, secret_hash = ?2, revoked_at = NULL",
                )?
                .execute(params![prefix, secret_hash.as_slice(), now.0, ADMIN_KEY_ID])?;
            Ok(Outcome::AdminKeySet)
        }
    }
}

fn service_save(connection: &Conn<'_>, service: &Service) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO services (id, name, unit_cost, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET name = ?2, \
             unit_cost = ?3, updated_at = ?5",
        )?
        .execute(params![
            service.id,
            service.name,
            service.unit_cost,
            service.created_at.0,
            service.updated_at.0
        ])?;
    connection
        .prepare_cached("DELETE FROM service_operations WHERE service_id = ?1")?
        .execute([&service.id])?;
    for (name, cost) in &service.operations {
        connection
            .prepare_cached(
                "INSERT INTO service_operations (service_id, name, cost) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![service.id, name, cost])?;
    }
    Ok(())
}

fn credit_create(
    connection: &Conn<'_>,
    writer: &mut Writer,
    new: &NewCredit,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let Some(mut account) = writer.account(connection, &new.account_id)? else {
        return rejected(Rejection::NotFound(format!("account {}", new.account_id)));
    };
    if new.service != SERVICE_ANY && writer.service(connection, &new.service)?.is_none() {
        return rejected(Rejection::Validation(format!("unknown service {}", new.service)));
    }
    if let Some(reference) = &new.reference {
        let exists = connection
            .prepare_cached("SELECT 1 FROM credits WHERE account_id = ?1 AND reference = ?2")?
            .exists(params![new.account_id, reference])?;
        if exists {
            return rejected(Rejection::DuplicateReference(reference.clone()));
        }
    }
    let record = CreditRecord {
        id: writer.id("credit"),
        account_id: new.account_id.clone(),
        amount: new.amount,
        used: 0,
        reserved: 0,
        remaining: new.amount,
        expired_amount: 0,
        voided_amount: 0,
        expires_at: new.expires_at,
        service: new.service.clone(),
        description: new.description.clone(),
        kind: new.kind,
        priority: new.priority,
        reference: new.reference.clone(),
        expired: false,
        voided: false,
        created_at: now,
        updated_at: now,
    };
    let mut book = book_load(connection, &new.account_id)?;
    let before = outbox::statuses(&book);
    let mut effects = Effects::default();
    match book.create_credit(record, now, &mut effects) {
        Ok(index) => {
            for entry in &mut effects.entries {
                if entry.credit_id == book.records[index].id {
                    entry.actor = new.actor.clone();
                }
            }
            persist(connection, writer, Some(&mut account), &book, &before, &effects, now)?;
            let data = EventData::Credit(book.records[index].clone());
            outbox::emit(connection, writer, "credit.created", &new.account_id, || data, now)?;
            Ok(Outcome::Credit(book.records[index].clone()))
        }
        Err(rejection) => rejected(rejection),
    }
}

/// The price of a usage: explicit, the operation's cost, or the service's unit cost, times the
/// quantity. Overflow or more than 2^53 - 1 is a validation error.
pub(crate) fn usage_cost(service: &Service, new: &NewUsage) -> Result<u64, Rejection> {
    let cost = match &new.cost {
        Cost::Explicit(credits) => Some(*credits),
        Cost::Catalog { operation, quantity } => {
            let unit = match operation {
                None => service.unit_cost,
                Some(name) => *service.operations.get(name).ok_or_else(|| {
                    Rejection::Validation(format!("unknown operation {name} of {}", service.id))
                })?,
            };
            unit.checked_mul(*quantity)
        }
    };
    match cost {
        Some(cost) if cost <= credits_core::CREDITS_MAX => Ok(cost),
        _ => Err(Rejection::Validation("the cost exceeds 9007199254740991 credits".into())),
    }
}

fn reservation_create(
    connection: &Conn<'_>,
    writer: &mut Writer,
    new: &NewReservation,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let Some(mut account) = writer.account(connection, &new.account_id)? else {
        return rejected(Rejection::NotFound(format!("account {}", new.account_id)));
    };
    if writer.service(connection, &new.service)?.is_none() {
        return rejected(Rejection::Validation(format!("unknown service {}", new.service)));
    }
    let request = HoldRequest {
        reservation_id: writer.id("res"),
        service: new.service.clone(),
        credits: new.credits,
        ttl_seconds: new.ttl_seconds,
        actor: new.actor.clone(),
    };
    if let Some(rejection) = member_check(connection, &new.account_id, &new.actor)? {
        return rejected(rejection);
    }
    let mut book = book_load(connection, &new.account_id)?;
    let before = outbox::statuses(&book);
    let mut effects = Effects::default();
    book.settle(now, &mut effects);
    let mut spending = Spending::load(connection, &new.account_id)?;
    spending.holds_settled(&book, &effects.holds_changed, now);
    if let Err(rejection) = spending.check(&new.actor, &new.service, new.credits, now) {
        if let Rejection::BudgetExceeded { budget_id, .. } = &rejection {
            spending.refused(budget_id, connection, writer, now)?;
        }
        return rejected(rejection);
    }
    match book.hold(&request, now, &mut effects) {
        Ok(index) => {
            spending.charge(&new.actor, &new.service, new.credits, now);
            persist(connection, writer, Some(&mut account), &book, &before, &effects, now)?;
            spending.announce(connection, writer, now)?;
            spending.save(connection)?;
            Ok(Outcome::Reservation(book.holds[index].clone()))
        }
        Err(rejection) => rejected(rejection),
    }
}

/// Captures (`capture` is `Some`, with an optional amount) or releases a held reservation.
fn reservation_settle(
    connection: &Conn<'_>,
    writer: &mut Writer,
    id: &str,
    capture: Option<Option<u64>>,
    scope: &AccountScope,
    actor: &credits_core::Actor,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let hold = crate::read::reservation_find(connection, id)?
        .filter(|hold| in_scope(scope, &hold.account_id));
    let Some(mut hold) = hold else {
        return rejected(Rejection::NotFound(format!("reservation {id}")));
    };
    if writer.shared {
        writer.lock(connection, &hold.account_id)?;
        hold = crate::read::reservation_find(connection, id)?.unwrap_or(hold);
    }
    let mut book = book_load(connection, &hold.account_id)?;
    let before = outbox::statuses(&book);
    if !book.holds.iter().any(|h| h.id == hold.id) {
        book.holds.push(hold.clone());
    }
    let mut effects = Effects::default();
    let usage_id = writer.id("use");
    let result = match capture {
        Some(credits) => book.capture(id, credits, &usage_id, actor, now, &mut effects).map(Some),
        None => book.release(id, now, &mut effects).map(|()| None),
    };
    let captured = match result {
        Ok(captured) => captured,
        Err(rejection) => return rejected(rejection),
    };
    let mut spending = Spending::load(connection, &hold.account_id)?;
    spending.holds_settled(&book, &effects.holds_changed, now);
    persist(connection, writer, None, &book, &before, &effects, now)?;
    spending.save(connection)?;
    if let Some(allocations) = captured {
        let credits = allocations.iter().map(|a| a.credits).sum();
        let usage = UsageRecord {
            id: usage_id,
            account_id: hold.account_id.clone(),
            service: hold.service.clone(),
            operation: None,
            quantity: 1,
            credits,
            allocations,
            actor: hold.actor.clone(),
            metadata: None,
            balance_after: book.available(&hold.service),
            reservation_id: Some(hold.id.clone()),
            created_at: now,
            // A capture's entries are `capture` entries in the ledger.
            remaining_after: None,
        };
        rows::usage_insert(connection, &usage)?;
        let data = || EventData::Usage(usage.clone());
        outbox::emit(connection, writer, "usage.recorded", &usage.account_id, data, now)?;
    }
    let updated = book.holds.iter().find(|h| h.id == id).cloned().unwrap_or(hold);
    Ok(Outcome::Reservation(updated))
}

/// Applies due expiries of a bounded number of accounts and forgets old idempotency keys.
fn sweep(
    connection: &Conn<'_>,
    writer: &mut Writer,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    if connection.is_pg() {
        // Planned for the tables as they are now: a prepared statement's generic plan, made
        // while a table was empty, would scan the whole table on every sweep once it is large
        // (a server without autovacuum never analyzes it, and so never plans it again).
        connection.batch("SET LOCAL plan_cache_mode = force_custom_plan")?;
    }
    let mut accounts: Vec<String> = Vec::new();
    for sql in [
        "SELECT DISTINCT account_id FROM reservations WHERE status = 'held' AND expires_at <= ?1 \
         LIMIT 256",
        "SELECT DISTINCT account_id FROM credits WHERE open = 1 AND expired = 0 AND voided = 0 \
         AND expires_at IS NOT NULL AND expires_at <= ?1 LIMIT 256",
    ] {
        let mut statement = connection.prepare_cached(sql)?;
        for account in statement.query_map([now.0], |row| row.get::<String>(0))? {
            let account = account?;
            if !accounts.contains(&account) {
                accounts.push(account);
            }
        }
    }
    let (mut expired_holds, mut expired_credits) = (0, 0);
    for account_id in accounts {
        writer.lock(connection, &account_id)?;
        let mut book = book_load(connection, &account_id)?;
        let before = outbox::statuses(&book);
        let mut effects = Effects::default();
        book.settle(now, &mut effects);
        if !effects.holds_changed.is_empty() {
            let mut spending = Spending::load(connection, &account_id)?;
            spending.holds_settled(&book, &effects.holds_changed, now);
            spending.save(connection)?;
        }
        expired_holds += effects.holds_changed.len();
        expired_credits +=
            effects.records_changed.iter().filter(|&&i| book.records[i].expired).count();
        persist(connection, writer, None, &book, &before, &effects, now)?;
    }
    outbox::expiring_soon(connection, writer, now)?;
    connection.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?.execute([now.0])?;
    let forget_before = now.0 - IDEMPOTENCY_TTL_SECONDS * 1_000_000;
    let forget = if connection.is_pg() {
        // Rows by their `ctid`, the oldest first: PostgreSQL joins the `IN` form to a scan of
        // the whole table, and without the order it may scan it for old keys where none are.
        "DELETE FROM idempotency WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency \
         WHERE created_at <= ?1 ORDER BY created_at LIMIT 10000))"
    } else {
        "DELETE FROM idempotency WHERE (scope, key) IN (SELECT scope, key FROM idempotency \
         WHERE created_at <= ?1 LIMIT 10000)"
    };
    connection.prepare_cached(forget)?.execute([forget_before])?;
    if connection.is_pg() {
        // The journal of a node that stopped between a commit and its copy.
        let before = now.0 - crate::copier::RECOVER_AFTER_MICROS;
        let copied = crate::bulk::journal_recover(connection, before)?;
        if copied > 0 {
            tracing::info!(copied, "copied usage journal rows left by a stopped node");
        }
        connection.batch("RESET plan_cache_mode")?;
    }
    Ok(Outcome::Swept { expired_holds, expired_credits })
}

fn email_taken(
    connection: &Conn<'_>,
    account_id: &str,
    email: &str,
    except: Option<&str>,
) -> Result<bool, StoreError> {
    let taken: Option<String> = connection
        .prepare_cached(
            "SELECT id FROM members WHERE account_id = ?1 AND email = ?2 AND deleted_at IS NULL",
        )?
        .query_row(params![account_id, email], |row| row.get(0))
        .optional()?;
    Ok(taken.is_some_and(|id| Some(id.as_str()) != except))
}

fn member_create(
    connection: &Conn<'_>,
    writer: &mut Writer,
    account_id: &str,
    email: &str,
    name: &Option<String>,
    role: credits_core::access::Role,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    if writer.account(connection, account_id)?.is_none() {
        return rejected(Rejection::NotFound(format!("account {account_id}")));
    }
    if email_taken(connection, account_id, email, None)? {
        return rejected(Rejection::Validation(format!("a member with email {email} exists")));
    }
    let member = Member {
        id: writer.id("mem"),
        account_id: account_id.to_string(),
        email: email.to_string(),
        name: name.clone(),
        role,
        created_at: now,
        updated_at: now,
    };
    rows::member_save(connection, &member)?;
    Ok(Outcome::Member(member))
}

fn member_update(
    connection: &Conn<'_>,
    writer: &mut Writer,
    id: &str,
    patch: &MemberPatch,
    scope: &AccountScope,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let member =
        crate::read::member_find(connection, id)?.filter(|m| in_scope(scope, &m.account_id));
    let Some(mut member) = member else {
        return rejected(Rejection::NotFound(format!("member {id}")));
    };
    if writer.shared {
        writer.lock(connection, &member.account_id)?;
        member = crate::read::member_find(connection, id)?.unwrap_or(member);
    }
    if let Some(email) = &patch.email {
        if email_taken(connection, &member.account_id, email, Some(id))? {
            return rejected(Rejection::Validation(format!("a member with email {email} exists")));
        }
        member.email = email.clone();
    }
    if let Some(name) = &patch.name {
        member.name = name.clone();
    }
    if let Some(role) = patch.role {
        member.role = role;
    }
    member.updated_at = now;
    rows::member_save(connection, &member)?;
    Ok(Outcome::Member(member))
}

fn api_key_create(
    connection: &Conn<'_>,
    writer: &mut Writer,
    new: &NewApiKey,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    if let Some(account_id) = &new.account_id {
        if account_find(connection, account_id)?.is_none() {
            return rejected(Rejection::NotFound(format!("account {account_id}")));
        }
    }
    use credits_core::access::{ACCOUNT_SCOPES, SCOPES};
    let mut ceiling: &[&str] = if new.account_id.is_some() { &ACCOUNT_SCOPES } else { &SCOPES };
    if let Some(member_id) = &new.member_id {
        let member = crate::read::member_find(connection, member_id)?;
        let Some(member) = member.filter(|m| Some(&m.account_id) == new.account_id.as_ref()) else {
            return rejected(Rejection::NotFound(format!("member {member_id}")));
        };
        // A member-bound key never carries more than its member's role allows.
        ceiling = member.role.scopes();
        let requested = new.scopes.iter().flatten();
        if let Some(scope) = requested.into_iter().find(|s| !ceiling.contains(&s.as_str())) {
            return rejected(Rejection::Validation(format!(
                "scope {scope} is above the {} role of member {member_id}",
                member.role.as_str()
            )));
        }
    }
    let scopes: Vec<String> = match &new.scopes {
        Some(scopes) => scopes.clone(),
        None => ceiling
            .iter()
            .filter(|s| new.ceiling.as_ref().is_none_or(|c| c.iter().any(|c| c == *s)))
            .map(|s| s.to_string())
            .collect(),
    };
    if scopes.is_empty() {
        return rejected(Rejection::Validation("the key would have no scope".into()));
    }
    let key = ApiKey {
        id: writer.id("key"),
        account_id: new.account_id.clone(),
        member_id: new.member_id.clone(),
        name: new.name.clone(),
        prefix: new.prefix.clone(),
        scopes,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    connection
        .prepare_cached(
            "INSERT INTO api_keys (id, account_id, member_id, name, prefix, secret_hash, scopes, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            key.id,
            key.account_id,
            key.member_id,
            key.name,
            key.prefix,
            new.secret_hash.as_slice(),
            key.scopes.join(" "),
            now.0
        ])?;
    Ok(Outcome::ApiKey(key))
}

/// A new budget counts what was already spent in its scope during the current period: usage,
/// and credits still held.
fn budget_create(
    connection: &Conn<'_>,
    writer: &mut Writer,
    new: &NewBudget,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    use credits_core::budget::{period_bounds, BudgetScope};
    if writer.account(connection, &new.account_id)?.is_none() {
        return rejected(Rejection::NotFound(format!("account {}", new.account_id)));
    }
    let (column, value) = match &new.scope {
        BudgetScope::Account => ("account_id", new.account_id.as_str()),
        BudgetScope::Member(id) => ("member_id", id.as_str()),
        BudgetScope::ApiKey(id) => ("api_key_id", id.as_str()),
        BudgetScope::Service(id) => ("service", id.as_str()),
    };
    if let BudgetScope::Member(id) = &new.scope {
        let member = crate::read::member_find(connection, id)?;
        if member.filter(|m| m.account_id == new.account_id).is_none() {
            return rejected(Rejection::NotFound(format!("member {id}")));
        }
    }
    let (period_start, _) = period_bounds(new.period, now);
    // On PostgreSQL, usage committed but not yet copied out of the journal counts too; one
    // statement reads both, so a copy committing meanwhile is counted once.
    let usage = if connection.is_pg() {
        "(SELECT credits, created_at, account_id, service, member_id, api_key_id FROM usage \
         WHERE account_id = ?1 AND created_at >= ?2 UNION ALL \
         SELECT (r->>5)::bigint, (r->>12)::bigint, r->>1, r->>2, r->>7, r->>8 FROM usage_journal \
         CROSS JOIN LATERAL jsonb_array_elements(usage_journal.usage::jsonb) AS r) AS usage"
    } else {
        "usage"
    };
    let used: i64 = connection
        .prepare_cached(&format!(
            "SELECT CAST(coalesce(sum(credits), 0) AS BIGINT) FROM {usage} WHERE account_id = ?1 \
             AND created_at >= ?2 AND {column} = ?3"
        ))?
        .query_row(params![new.account_id, period_start.0, value], |row| row.get(0))?;
    let held: i64 = connection
        .prepare_cached(&format!(
            "SELECT CAST(coalesce(sum(credits), 0) AS BIGINT) FROM reservations WHERE account_id = ?1 \
             AND status = 'held' AND expires_at > ?4 AND created_at >= ?2 AND {column} = ?3"
        ))?
        .query_row(params![new.account_id, period_start.0, value, now.0], |row| row.get(0))?;
    let budget = credits_core::budget::Budget {
        id: writer.id("bud"),
        account_id: new.account_id.clone(),
        name: new.name.clone(),
        scope: new.scope.clone(),
        period: new.period,
        limit: new.limit,
        enforcement: new.enforcement,
        thresholds: new.thresholds.clone(),
        spent: u64::try_from(used.saturating_add(held)).unwrap_or(0),
        period_start,
        fired_percent: 0,
        exceeded_fired: false,
        created_at: now,
        updated_at: now,
    };
    rows::budget_save(connection, &budget)?;
    Ok(Outcome::Budget(budget))
}

fn endpoints_load(connection: &Conn<'_>) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let sql = format!(
        "SELECT {} FROM webhook_endpoints WHERE deleted_at IS NULL",
        rows::ENDPOINT_COLUMNS
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let endpoints = statement
        .query_map(params![], rows::endpoint_from_row)?
        .map(|row| row.map(|(_, endpoint)| endpoint))
        .collect::<Result<_, _>>()?;
    Ok(endpoints)
}

/// Records the dispatcher's attempts: each pending attempt becomes succeeded or failed; a failure
/// with a retry left schedules the next attempt as a new pending row; `410 Gone` disables the
/// endpoint.
fn attempts_record(
    connection: &Conn<'_>,
    writer: &mut Writer,
    results: &[AttemptResult],
    now: Timestamp,
) -> Result<(), StoreError> {
    for result in results {
        let sql = format!("SELECT {} FROM deliveries WHERE id = ?1", rows::DELIVERY_COLUMNS);
        let found = connection
            .prepare_cached(&sql)?
            .query_row([&result.delivery_id], rows::delivery_from_row)
            .optional()?;
        let Some((_, mut delivery)) = found else { continue };
        if delivery.status != DeliveryStatus::Pending {
            continue;
        }
        delivery.status =
            if result.succeeded { DeliveryStatus::Succeeded } else { DeliveryStatus::Failed };
        delivery.response_code = result.response_code;
        delivery.duration_ms = Some(result.duration_ms);
        delivery.next_attempt_at = if result.succeeded { None } else { result.retry_at };
        rows::delivery_save(connection, &delivery)?;
        if result.disable_endpoint {
            connection
                .prepare_cached("UPDATE webhook_endpoints SET disabled_at = ?2 WHERE id = ?1")?
                .execute(params![delivery.endpoint_id, now.0])?;
            if let Some(endpoint) =
                writer.endpoints.iter_mut().find(|e| e.id == delivery.endpoint_id)
            {
                endpoint.disabled_at = Some(now);
            }
            continue;
        }
        if let (false, Some(retry_at)) = (result.succeeded, result.retry_at) {
            let next = Delivery {
                id: writer.id("dlv"),
                endpoint_id: delivery.endpoint_id.clone(),
                event_id: delivery.event_id.clone(),
                attempt: delivery.attempt + 1,
                status: DeliveryStatus::Pending,
                response_code: None,
                duration_ms: None,
                created_at: now,
                next_attempt_at: Some(retry_at),
            };
            rows::delivery_save(connection, &next)?;
        }
    }
    Ok(())
}
