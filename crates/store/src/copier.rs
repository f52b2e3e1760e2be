//! PostgreSQL: copying a committed batch's usage journal into the usage and ledger tables, on a
//! connection and thread of its own, then answering the batch.
//!
//! The writer commits a batch with its usages' rows in one journal row (`bulk::hot_flush_pg`),
//! which releases the batch's account locks, and hands the journal ids and the batch's answers to
//! the copier; it then takes the next batch while the copier writes the rows and their index
//! entries. A request is answered once its rows are in their tables, so whoever got an answer
//! reads its usage and ledger entries like any other.
//!
//! The batch's commit does not wait for the disk (`synchronous_commit = off`), so that its locks
//! go as soon as it is committed; the copy's commit does, and since it comes after the batch's in
//! the log, the batch is on disk when the copy is. A batch is answered only then. A copy that
//! fails (the database lost, say) leaves the batch's outcome unknown: it is answered 503, as a
//! commit that failed is, and its journal row (if the commit reached the disk) is left for
//! `bulk::journal_recover`, which every node's sweep runs on rows older than
//! [`RECOVER_AFTER_MICROS`], and every node runs at start.

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::writer::Backend;
use crate::{Job, StoreError};

/// How old a journal row must be before a sweep copies it: its own node copies it within
/// milliseconds unless that node stopped.
pub(crate) const RECOVER_AFTER_MICROS: i64 = 5_000_000;

/// How many committed batches may wait for the copier before the writer waits for it.
const QUEUE: usize = 4;

/// How often a copy that failed is tried again before it is left to recovery.
const TRIES: usize = 3;

/// A committed batch: its journal rows, and the answers to send once they are copied.
pub(crate) struct Committed {
    pub(crate) journal: Vec<i64>,
    pub(crate) answers: Answers,
}

/// Each job of a batch with its results.
pub(crate) type Answers = Vec<(Job, Vec<Result<crate::types::Executed, StoreError>>)>;

pub(crate) struct Copier {
    sender: Option<mpsc::SyncSender<Committed>>,
    thread: Option<JoinHandle<()>>,
}

impl Copier {
    pub(crate) fn start(config: postgres::Config) -> Copier {
        let (sender, receiver) = mpsc::sync_channel::<Committed>(QUEUE);
        let spawned = std::thread::Builder::new().name("credits-copier".into()).spawn(move || {
            let backend = Backend::Pg { config: Box::new(config), connection: None };
            copy_forever(backend, &receiver);
        });
        match spawned {
            Ok(thread) => Copier { sender: Some(sender), thread: Some(thread) },
            Err(error) => {
                tracing::error!(%error, "the copier thread did not start; the writer copies");
                Copier { sender: None, thread: None }
            }
        }
    }

    /// Queues a committed batch (waiting while the queue is full). A copier that is gone (it
    /// panicked, or never started) gives the batch back, for the writer to copy and answer.
    pub(crate) fn send(&self, committed: Committed) -> Result<(), Committed> {
        match &self.sender {
            Some(sender) => sender.send(committed).map_err(|mpsc::SendError(c)| c),
            None => Err(committed),
        }
    }
}

impl Drop for Copier {
    /// Copies and answers everything queued before the writer stops.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the copier thread panicked");
            }
        }
    }
}

/// Copies each committed batch, together with the batches that queued up meanwhile: one
/// statement and one wait for the disk for all of them.
fn copy_forever(mut backend: Backend, receiver: &mpsc::Receiver<Committed>) {
    while let Ok(first) = receiver.recv() {
        let mut journal = first.journal;
        let mut answers = first.answers;
        while let Ok(more) = receiver.try_recv() {
            journal.extend(more.journal);
            answers.extend(more.answers);
        }
        let started = std::time::Instant::now();
        let mut failure = None;
        for tries in 1..=TRIES {
            match copy(&mut backend, &journal) {
                Ok(()) => {
                    failure = None;
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, tries, "copying the usage journal failed");
                    failure = Some(error);
                }
            }
        }
        metrics::histogram!("credits_writer_copy_seconds").record(started.elapsed().as_secs_f64());
        answer(answers, failure);
    }
}

/// Sends a batch's answers, or 503 to all of them when its copy failed.
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
