//! Injected storage failures and an injected clock, for the deterministic simulation
//! (`crates/store/tests/simulation.rs`).
//!
//! Goal: let a test make the writer's storage fail exactly where and when it chooses (a statement,
//! the commit, or the answer after a commit that landed) and run on a clock it advances, so that a
//! seeded workload replays the same operations and the same failures every time.
//!
//! Method: a store opened with [`Hooks`] hands them to its writer thread, which installs the
//! [`Faults`] in a thread-local slot; the statement wrappers of `db.rs` and the commit of
//! `writer.rs` ask that slot before they act. Production opens with `Hooks::default()`: no slot is
//! installed, and each check is one relaxed atomic load that finds nothing armed.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use credits_core::Timestamp;

use crate::db::{DbError, DbResult};
use crate::StoreError;

/// A source of time for the writer, in place of the system clock.
pub type ClockSource = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// What a test may inject into the writer; the default injects nothing.
#[derive(Clone, Default)]
pub struct Hooks {
    /// The writer's clock; `None`: the system clock. Either way the writer's time never goes
    /// backwards.
    pub clock: Option<ClockSource>,
    /// Storage failures armed by the test; `None`: none.
    pub faults: Option<Faults>,
}

/// One storage failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The writer's statement after `after` more succeed fails (a prepared statement: a read or
    /// a write inside the transaction; transaction control is left alone).
    Statement { after: u32 },
    /// The next commit fails before it is made: the transaction rolls back, nothing lands.
    BeforeCommit,
    /// The next commit lands, but the writer is told it failed, so every request of the batch
    /// is answered with an error although its effects are durable: the hard case for exactly
    /// once, which only the idempotency key can resolve.
    AfterCommit,
}

#[derive(Debug, Default)]
struct State {
    armed: Option<Fault>,
    /// Statements counted since `Statement` was armed.
    statements: u32,
    /// The fault that fired since the last [`Faults::arm`].
    fired: Option<Fault>,
}

/// Failures a test arms one at a time; the writer fires each at most once.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<State>>);

/// Whether any store in the process was opened with faults: the fast path of every check.
static ANY_INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The faults of the store whose writer runs on this thread.
    static INSTALLED: RefCell<Option<Faults>> = const { RefCell::new(None) };
}

impl Faults {
    pub fn new() -> Faults {
        Faults::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms one fault for what the writer does next, replacing any armed before.
    pub fn arm(&self, fault: Fault) {
        let mut state = self.state();
        state.armed = Some(fault);
        state.statements = 0;
        state.fired = None;
    }

    /// Disarms, and tells which fault fired since [`Faults::arm`] (if any did).
    pub fn disarm(&self) -> Option<Fault> {
        let mut state = self.state();
        state.armed = None;
        state.fired.take()
    }

    /// Makes these the faults of the writer running on the calling thread.
    pub(crate) fn install(&self) {
        ANY_INSTALLED.store(true, Ordering::Relaxed);
        INSTALLED.with(|slot| *slot.borrow_mut() = Some(self.clone()));
    }

    /// Fires the armed fault if `matches` accepts it.
    fn fire(&self, matches: impl FnOnce(&mut State, Fault) -> bool) -> bool {
        let mut state = self.state();
        let Some(fault) = state.armed else { return false };
        if !matches(&mut state, fault) {
            return false;
        }
        state.armed = None;
        state.fired = Some(fault);
        true
    }
}

/// Runs `f` on the faults installed on this thread, if any.
fn installed(f: impl FnOnce(&Faults) -> bool) -> bool {
    if !ANY_INSTALLED.load(Ordering::Relaxed) {
        return false;
    }
    INSTALLED.with(|slot| slot.borrow().as_ref().is_some_and(f))
}

fn injected(fault: &str) -> String {
    format!("injected fault: {fault}")
}

/// Called before each prepared statement runs.
pub(crate) fn statement() -> DbResult<()> {
    let fired = installed(|faults| {
        faults.fire(|state, fault| match fault {
            Fault::Statement { after } => {
                let due = state.statements >= after;
                state.statements += 1;
                due
            }
            Fault::BeforeCommit | Fault::AfterCommit => false,
        })
    });
    if fired {
        return Err(DbError::Invalid(injected("statement")));
    }
    Ok(())
}

/// Called just before `COMMIT`.
pub(crate) fn before_commit() -> Result<(), StoreError> {
    if installed(|faults| faults.fire(|_, fault| fault == Fault::BeforeCommit)) {
        return Err(StoreError::Unavailable(injected("commit failed")));
    }
    Ok(())
}

/// Called once `COMMIT` succeeded.
pub(crate) fn after_commit() -> Result<(), StoreError> {
    if installed(|faults| faults.fire(|_, fault| fault == Fault::AfterCommit)) {
        return Err(StoreError::Unavailable(injected("commit landed, answer lost")));
    }
    Ok(())
}
