//! PostgreSQL: what follows a batch's commit, on two threads with a connection each: the
//! flusher makes the batch durable and answers it, the copier then copies its usage journal into
//! the usage and ledger tables.
//!
//! The writer commits a batch with its usages' rows in one journal row (`bulk::hot_flush_pg`),
//! which releases the batch's account locks, and hands the journal ids and the batch's answers to
//! the flusher; it then takes the next batch. That commit does not wait for the disk
//! (`synchronous_commit = off`), so that its locks go as soon as it is committed. The flusher
//! commits an empty transaction that does wait (`SELECT txid_current()`, with the server's
//! `synchronous_commit`): it comes after the batch's commit in the log, so once it is on disk (or
//! on a synchronous standby) so is the batch, which is answered then. Batches that queued up
//! meanwhile share one such wait. A wait that fails (the database lost, say) leaves the batch's
//! outcome unknown: it is answered 503, as a commit that failed is.
//!
//! The copier then writes the usage rows, the ledger entries and their index entries, off the
//! answer's path (on one node the copy's CPU and its wait for the disk were a third of a hot
//! request's latency). A usage may therefore be answered before it is in `usage`: every read of
//! usage or the ledger first copies the journal rows it can see (`bulk::journal_settle`), which
//! include every batch answered before the read began, so whoever got an answer lists its usage
//! on any node. A copy that fails leaves its rows in the journal for those reads and for
//! `bulk::journal_recover`, which every node's sweep runs on rows older than
//! [`RECOVER_AFTER_MICROS`], and every node runs at start.

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::writer::Backend;
use crate::{Job, StoreError};

/// How old a journal row must be before a sweep copies it: its own node copies it within
/// milliseconds unless that node stopped.
pub(crate) const RECOVER_AFTER_MICROS: i64 = 5_000_000;

/// How many committed batches may wait for the flusher before the writer waits for it.
const QUEUE: usize = 4;

/// How long the copier gathers committed batches before it copies them in one statement: each
/// copy costs PostgreSQL a fixed part (a statement, a commit that waits for the disk) whatever
/// it carries, and a hot account's leader commits hundreds of batches a second. Three nodes on
/// one hot account ran 19% faster with 20 ms than with none (docs/PERFORMANCE.md).
const COPY_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// How many committed batches' journal rows may wait for the copier before the flusher waits
/// for it: more than [`COPY_LINGER`]'s worth at thousands of batches a second.
const COPY_QUEUE: usize = 4096;

/// How often a copy that failed is tried again before it is left to recovery.
const TRIES: usize = 3;

/// A committed batch: its journal rows, and the answers to send once it is on disk.
pub(crate) struct Committed {
    pub(crate) journal: Vec<i64>,
    pub(crate) answers: Answers,
}

/// Each job of a batch with its results.
pub(crate) type Answers = Vec<(Job, Vec<Result<crate::types::Executed, StoreError>>)>;

/// The flusher and copier threads of a PostgreSQL writer, fed by [`Copier::send`].
pub(crate) struct Copier {
    sender: Option<mpsc::SyncSender<Committed>>,
    threads: Vec<JoinHandle<()>>,
}

impl Copier {
    pub(crate) fn start(config: postgres::Config) -> Copier {
        let (sender, receiver) = mpsc::sync_channel::<Committed>(QUEUE);
        // The copier's queue is longer: a slow copy must not hold answers back.
        let (to_copier, copies) = mpsc::sync_channel::<Vec<i64>>(COPY_QUEUE);
        let copier_config = config.clone();
        let copier = std::thread::Builder::new().name("credits-copier".into()).spawn(move || {
            let backend = Backend::Pg { config: Box::new(copier_config), connection: None };
            copy_forever(backend, &copies);
        });
        let copier = match copier {
            Ok(thread) => thread,
            Err(error) => {
                tracing::error!(%error, "the copier thread did not start; the writer copies");
                return Copier { sender: None, threads: Vec::new() };
            }
        };
        let flusher = std::thread::Builder::new().name("credits-flusher".into()).spawn(move || {
            let backend = Backend::Pg { config: Box::new(config), connection: None };
            flush_forever(backend, &receiver, &to_copier);
        });
        match flusher {
            Ok(thread) => Copier { sender: Some(sender), threads: vec![thread, copier] },
            Err(error) => {
                // `to_copier` went with the closure that did not run: the copier stops.
                tracing::error!(%error, "the flusher thread did not start; the writer copies");
                Copier { sender: None, threads: vec![copier] }
            }
        }
    }

    /// Queues a committed batch (waiting while the queue is full). A flusher that is gone (it
    /// panicked, or never started) gives the batch back, for the writer to copy and answer.
    pub(crate) fn send(&self, committed: Committed) -> Result<(), Committed> {
        match &self.sender {
            Some(sender) => sender.send(committed).map_err(|mpsc::SendError(c)| c),
            None => Err(committed),
        }
    }
}

impl Drop for Copier {
    /// Answers and copies everything queued before the writer stops: the flusher ends when the
    /// writer's sender is dropped, the copier when the flusher's is.
    fn drop(&mut self) {
        drop(self.sender.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a thread after the writer (flusher or copier) panicked");
            }
        }
    }
}

/// Makes each committed batch durable, together with the batches that queued up meanwhile (one
/// wait for the disk for all of them), answers them, and hands their journal rows to the copier.
fn flush_forever(
    mut backend: Backend,
    receiver: &mpsc::Receiver<Committed>,
    copier: &mpsc::SyncSender<Vec<i64>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut journal = first.journal;
        let mut answers = first.answers;
        while let Ok(more) = receiver.try_recv() {
            journal.extend(more.journal);
            answers.extend(more.answers);
        }
        let started = std::time::Instant::now();
        let durable = backend.conn().and_then(|connection| Ok(durable(&connection)?));
        metrics::histogram!("credits_writer_durable_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &durable {
            tracing::warn!(%error, "waiting for a batch to reach the disk failed");
        }
        answer(answers, durable.err());
        // Copied even when the wait failed: the rows are there if the batch committed.
        if copier.send(journal).is_err() {
            tracing::error!("the copier is gone; the journal waits for reads and the sweep");
        }
    }
}

/// Returns once everything committed before it is durable: an empty transaction that takes a
/// transaction id commits with a record of its own, and waits for the log up to it.
fn durable(connection: &crate::db::Conn<'_>) -> Result<(), crate::db::DbError> {
    connection.batch("SELECT txid_current()")
}

/// Copies each batch's journal rows, together with those of the batches committed within
/// [`COPY_LINGER`] after it, in one statement; a copy that still fails after [`TRIES`] leaves
/// them to reads and to recovery.
fn copy_forever(mut backend: Backend, receiver: &mpsc::Receiver<Vec<i64>>) {
    while let Ok(mut journal) = receiver.recv() {
        let until = std::time::Instant::now() + COPY_LINGER;
        let left = || until.saturating_duration_since(std::time::Instant::now());
        while let Ok(more) = receiver.recv_timeout(left()) {
            journal.extend(more);
        }
        let started = std::time::Instant::now();
        for tries in 1..=TRIES {
            match copy(&mut backend, &journal) {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, tries, "copying the usage journal failed");
                }
            }
        }
        metrics::histogram!("credits_writer_copy_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// Sends a batch's answers, or 503 to all of them when its outcome is unknown.
pub(crate) fn answer(answers: Answers, failure: Option<StoreError>) {
    for (job, results) in answers {
        let results = match &failure {
            None => results,
            Some(error) => results
                .iter()
                .map(|_| Err(StoreError::Unavailable(format!("outcome unknown: {error}"))))
                .collect(),
        };
        // A caller that went away still had its write committed; nothing to do.
        let _ = job.reply.send(results);
    }
}

/// Copies journal rows on the backend's connection, opened again when it was lost.
pub(crate) fn copy(backend: &mut Backend, journal: &[i64]) -> Result<(), StoreError> {
    crate::bulk::journal_materialize(&backend.conn()?, journal)
}
