//! The hot path: the usages of one batch run against accounts held in memory for the batch, and
//! their rows are written once, at the end of the batch (or before the next command that is not
//! a usage), instead of statement by statement.
//!
//! An account is read (and on PostgreSQL locked) once per batch however many usages it gets:
//! its open records, held reservations, budgets and the members named. Each usage then changes
//! only memory: the book, the budgets, and the rows to insert (usage, ledger entries, the answer
//! stored with the idempotency key). [`flush`] writes the records and budgets that changed, once
//! each, and the rows. Events (rare on this path: depletion, thresholds, and `usage.recorded`
//! only while an endpoint subscribes) are still written when they happen.
//!
//! A usage never fails halfway in memory: its checks come first, then the core applies it whole.
//! A database error on this path fails the whole batch (rolled back, answered 503), since memory
//! may then be ahead of the rolled-back transaction.

use std::collections::{BTreeSet, HashMap};

use credits_core::{book::UsageCharge, Book, Effects, LedgerEntry, Rejection, Timestamp};

use crate::db::Conn;
use crate::outbox;
use crate::rows;
use crate::spending::Spending;
use crate::types::*;
use crate::writer::{idempotency_lookup, usage_cost, StoredAnswer, Writer};
use crate::StoreError;

/// An account as this batch has it.
pub(crate) struct HotAccount {
    account: Account,
    book: Book,
    spending: Spending,
    records_dirty: BTreeSet<usize>,
    holds_dirty: BTreeSet<usize>,
    /// Members named by usages so far, and whether each belongs to the account.
    members: HashMap<String, bool>,
}

/// What the batch's usages changed and have not written yet.
#[derive(Default)]
pub(crate) struct Hot {
    accounts: HashMap<String, HotAccount>,
    usage: Vec<UsageRecord>,
    /// The batch's ledger entries in the order they were made.
    entries: Vec<HotEntry>,
    answers: Vec<StoredAnswer>,
    answer_index: HashMap<(String, String), usize>,
}

/// A ledger entry of the batch: a `ledger` row, or the entry of `usage[usage]` kept in its usage
/// row (see `UsageRecord::remaining_after`), in its place among the others.
pub(crate) enum HotEntry {
    Row(LedgerEntry),
    Kept { usage: usize },
}

impl Hot {
    /// The answer a usage of this batch stored with the key, not written yet.
    pub(crate) fn answer(&self, scope: &str, key: &str) -> Option<&StoredAnswer> {
        // Keys are few per batch; the lookup allocates only when some are pending.
        if self.answers.is_empty() {
            return None;
        }
        let index = self.answer_index.get(&(scope.to_string(), key.to_string()))?;
        self.answers.get(*index)
    }

    fn remember(&mut self, answer: StoredAnswer) {
        self.answer_index.insert((answer.scope.clone(), answer.key.clone()), self.answers.len());
        self.answers.push(answer);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.answers.is_empty() && self.usage.is_empty()
    }
}

/// Runs a usage on the hot path.
pub(crate) fn execute_usage(
    connection: &Conn<'_>,
    writer: &mut Writer,
    request: &WriteRequest,
    new: &NewUsage,
    now: Timestamp,
) -> Result<Executed, StoreError> {
    if let Some(idempotency) = &request.idempotency {
        if let Some(executed) = idempotency_lookup(connection, writer, request, idempotency, now)? {
            return Ok(executed);
        }
    }
    let outcome = usage(connection, writer, new, now)?;
    let rendered = writer.render.answer(&request.command, &outcome);
    if let Some(idempotency) = &request.idempotency {
        if rendered.status < 500 {
            writer.hot.remember(StoredAnswer::of(idempotency, &outcome, &rendered, now));
        }
    }
    Ok(Executed { rendered, replayed: false, outcome: Some(outcome) })
}

pub(crate) fn usage(
    connection: &Conn<'_>,
    writer: &mut Writer,
    new: &NewUsage,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    let mut hot = match writer.hot.accounts.remove(&new.account_id) {
        Some(hot) => hot,
        None => {
            let Some(account) = writer.account(connection, &new.account_id)? else {
                return Ok(Outcome::Rejected(Rejection::NotFound(format!(
                    "account {}",
                    new.account_id
                ))));
            };
            let (book, budgets) = match writer.locked_state.remove(&new.account_id) {
                Some(state) => state,
                None => rows::account_state(connection, &new.account_id)?,
            };
            HotAccount {
                account,
                book,
                spending: Spending::of(budgets),
                records_dirty: BTreeSet::new(),
                holds_dirty: BTreeSet::new(),
                members: HashMap::new(),
            }
        }
    };
    let outcome = usage_on(connection, writer, &mut hot, new, now);
    writer.hot.accounts.insert(new.account_id.clone(), hot);
    outcome
}

fn usage_on(
    connection: &Conn<'_>,
    writer: &mut Writer,
    hot: &mut HotAccount,
    new: &NewUsage,
    now: Timestamp,
) -> Result<Outcome, StoreError> {
    // Priced against the writer's copy of the catalog, not a clone of it.
    let cost = match writer.service(connection, &new.service)? {
        Some(service) => usage_cost(service, new),
        None => Err(Rejection::Validation(format!("unknown service {}", new.service))),
    };
    let credits = match cost {
        Ok(credits) => credits,
        Err(rejection) => return Ok(Outcome::Rejected(rejection)),
    };
    if let Some(member_id) = &new.actor.member_id {
        let belongs = match hot.members.get(member_id) {
            Some(belongs) => *belongs,
            None => {
                let member = crate::read::member_find(connection, member_id)?;
                let belongs = member.is_some_and(|m| m.account_id == new.account_id);
                hot.members.insert(member_id.clone(), belongs);
                belongs
            }
        };
        if !belongs {
            return Ok(Outcome::Rejected(Rejection::NotFound(format!("member {member_id}"))));
        }
    }
    let usage_id = writer.id("use");
    let before = outbox::statuses(&hot.book);
    let mut effects = Effects::default();
    hot.book.settle(now, &mut effects);
    hot.spending.holds_settled(&hot.book, &effects.holds_changed, now);
    if let Err(rejection) = hot.spending.check(&new.actor, &new.service, credits, now) {
        if let Rejection::BudgetExceeded { budget_id, .. } = &rejection {
            hot.spending.refused(budget_id, connection, writer, now)?;
        }
        // What settling changed (expiries) is kept: memory and the database stay in step.
        apply_effects(connection, writer, hot, &before, &mut effects, now)?;
        return Ok(Outcome::Rejected(rejection));
    }
    let (allocations, balance_after) = if credits == 0 {
        // A free operation: recorded for analytics, nothing to draw.
        (Vec::new(), hot.book.available(&new.service))
    } else {
        let charge = UsageCharge {
            usage_id: usage_id.clone(),
            service: new.service.clone(),
            credits,
            actor: new.actor.clone(),
        };
        match hot.book.record_usage(&charge, now, &mut effects) {
            Ok(result) => result,
            Err(rejection) => {
                apply_effects(connection, writer, hot, &before, &mut effects, now)?;
                return Ok(Outcome::Rejected(rejection));
            }
        }
    };
    // A usage drawn from one record keeps its ledger entry, the last its charge made, in its
    // own row (see `UsageRecord::remaining_after`): the entry leaves the effects, and its place
    // among the batch's entries is taken below.
    let remaining_after = match allocations.as_slice() {
        [_] => {
            let entry = effects.entries.pop();
            let kept = entry.filter(|entry| {
                entry.entry_type == credits_core::EntryType::Usage
                    && entry.usage_id.as_deref() == Some(usage_id.as_str())
            });
            assert!(kept.is_some(), "the charge's last effect is its usage entry");
            kept.map(|entry| entry.remaining_after)
        }
        _ => None,
    };
    hot.spending.charge(&new.actor, &new.service, credits, now);
    apply_effects(connection, writer, hot, &before, &mut effects, now)?;
    if remaining_after.is_some() {
        let usage = writer.hot.usage.len();
        writer.hot.entries.push(HotEntry::Kept { usage });
    }
    hot.spending.announce(connection, writer, now)?;
    let usage = UsageRecord {
        id: usage_id,
        account_id: new.account_id.clone(),
        service: new.service.clone(),
        operation: new.operation.clone(),
        quantity: new.quantity,
        credits,
        allocations,
        actor: new.actor.clone(),
        metadata: new.metadata.clone(),
        balance_after,
        reservation_id: None,
        created_at: now,
        remaining_after,
    };
    let data = || EventData::Usage(usage.clone());
    outbox::emit(connection, writer, "usage.recorded", &usage.account_id, data, now)?;
    writer.hot.usage.push(usage.clone());
    Ok(Outcome::Usage(usage))
}

/// Events of the transitions now; the changed records, holds and entries at [`flush`].
fn apply_effects(
    connection: &Conn<'_>,
    writer: &mut Writer,
    hot: &mut HotAccount,
    before: &[(credits_core::CreditStatus, bool)],
    effects: &mut Effects,
    now: Timestamp,
) -> Result<(), StoreError> {
    if effects.records_changed.is_empty() && effects.holds_changed.is_empty() {
        return Ok(());
    }
    outbox::book_events(
        connection,
        writer,
        Some(&mut hot.account),
        &hot.book,
        before,
        effects,
        now,
    )?;
    hot.records_dirty.extend(&effects.records_changed);
    hot.holds_dirty.extend(&effects.holds_changed);
    writer.hot.entries.extend(effects.entries.drain(..).map(HotEntry::Row));
    Ok(())
}

/// Writes everything the batch's usages changed so far and forgets the accounts, so that what
/// runs next reads the database.
pub(crate) fn flush(
    connection: &Conn<'_>,
    writer: &mut Writer,
    now: Timestamp,
) -> Result<(), StoreError> {
    flush_then(connection, writer, now, None).map(|_| ())
}

/// [`flush`], the batch's last; on PostgreSQL, when the batch then has journal rows (whose
/// commit need not wait for the disk: see `copier`), the commit goes with the write in one round
/// trip. Whether the batch was committed.
pub(crate) fn flush_and_commit(
    connection: &Conn<'_>,
    writer: &mut Writer,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let journal = !writer.journal.is_empty()
        || !writer.hot.usage.is_empty()
        || !writer.hot.entries.is_empty();
    if !connection.is_pg() || !journal {
        flush(connection, writer, now)?;
        return Ok(false);
    }
    flush_then(connection, writer, now, Some(ASYNC_COMMIT))
}

/// The commit of a batch with journal rows: its locks go at once, without waiting for the disk;
/// the flusher's empty commit, which comes after it in the log, waits for the disk before the
/// batch is answered (see `copier`).
pub(crate) const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off; COMMIT";

/// [`flush`], then the statements of `commit` in the same round trip (PostgreSQL): whether
/// they ran (not when there was nothing to write).
fn flush_then(
    connection: &Conn<'_>,
    writer: &mut Writer,
    now: Timestamp,
    commit: Option<&str>,
) -> Result<bool, StoreError> {
    if writer.hot.is_empty() {
        return Ok(false);
    }
    let hot = std::mem::take(&mut writer.hot);
    let pg = connection.is_pg();
    let mut records = Vec::new();
    for account in hot.accounts.values() {
        for &index in &account.records_dirty {
            // The hot path only changes records that exist (a usage creates none).
            if pg {
                records.push(&account.book.records[index]);
            } else {
                rows::credit_save(connection, &account.book.records[index])?;
            }
        }
        for &index in &account.holds_dirty {
            rows::reservation_save(connection, &account.book.holds[index])?;
        }
        account.spending.save(connection)?;
    }
    if pg {
        // A key the batch read as stored (past its retention, or it would be replayed) is
        // replaced; any other is new.
        let (replacing, fresh): (Vec<&StoredAnswer>, Vec<&StoredAnswer>) =
            hot.answers.iter().partition(|a| {
                matches!(writer.known.get(&(a.scope.clone(), a.key.clone())), Some(Some(_)))
            });
        let journal = crate::bulk::hot_flush_pg(
            connection,
            &records,
            &hot.usage,
            &hot.entries,
            &crate::bulk::NewAnswers { fresh, replacing },
            now,
            commit,
        )?;
        writer.journal.extend(journal);
    } else {
        crate::bulk::usage_insert(connection, &mut writer.ledger_seq, &hot.usage, &hot.entries)?;
        crate::bulk::idempotency_store(connection, &hot.answers, now)?;
    }
    if !writer.known.is_empty() {
        for answer in hot.answers {
            writer.known.insert((answer.scope.clone(), answer.key.clone()), Some(answer));
        }
    }
    Ok(pg && commit.is_some())
}
