//! Table-driven unit tests of the ledger core (`credits_core::Book`).
//!
//! Goal: pin down, case by case, the behaviour SPEC.md sections 5 and 6 ask of the core: the
//! burn-down order, usage split across records, all-or-nothing rejection, exact expiry, the
//! reservation life cycle (hold, partial capture, release, hold expiry), holds on records that
//! expire or are voided meanwhile, and the ledger entries each change produces.
//!
//! Method: every case is data, a list of steps (an instant, an operation, the expected outcome and
//! the exact ledger entries it produces) and the expected read at the end (records, holds and
//! balance as a read at `read_at` shows them). One helper, [`check`], runs a case and also checks,
//! after every step, what must hold for any case: every record's equation, a rejection changes
//! nothing beyond what time made due, every changed record is reported in `records_changed`, and
//! replaying the ledger entries reproduces each entry's `remaining_after`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use credits_core::book::{HoldRequest, UsageCharge};
use credits_core::{
    Actor, Book, CreditKind, CreditRecord, CreditStatus, Effects, EntryType, Rejection,
    ReservationStatus, Timestamp,
};

/// One second, in microseconds: instants in the tables are microseconds.
const S: i64 = 1_000_000;
const ACCOUNT: &str = "acct_1";

/// A credit record to create.
#[derive(Debug, Clone, Copy)]
struct CreditSpec {
    id: &'static str,
    service: &'static str,
    amount: u64,
    priority: i64,
    expires_at: Option<i64>,
    kind: CreditKind,
}

impl CreditSpec {
    const fn priority(self, priority: i64) -> CreditSpec {
        CreditSpec { priority, ..self }
    }
    const fn expires_at(self, at: i64) -> CreditSpec {
        CreditSpec { expires_at: Some(at), ..self }
    }
    const fn grant(self) -> CreditSpec {
        CreditSpec { kind: CreditKind::Grant, ..self }
    }
}

const fn credit(id: &'static str, service: &'static str, amount: u64) -> CreditSpec {
    CreditSpec { id, service, amount, priority: 0, expires_at: None, kind: CreditKind::Purchase }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Credit(CreditSpec),
    Usage {
        id: &'static str,
        service: &'static str,
        credits: u64,
    },
    Hold {
        id: &'static str,
        service: &'static str,
        credits: u64,
        ttl_seconds: u64,
    },
    Capture {
        id: &'static str,
        credits: Option<u64>,
    },
    Release {
        id: &'static str,
    },
    Void {
        id: &'static str,
    },
    /// A sweep: applies what time has made due, and nothing else.
    Settle,
}

/// The kind of a rejection, without its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reject {
    NotFound,
    Validation,
    InvalidState,
    Insufficient { available: u64, required: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Applied, with nothing to compare beyond the entries.
    Ok,
    /// Applied, with these allocations (usage, hold, capture).
    Allocated(&'static [(&'static str, u64)]),
    Rejected(Reject),
}

/// An outcome as the core gives it, to compare with [`Outcome::owned`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Actual {
    Ok,
    Allocated(Vec<(String, u64)>),
    Rejected(Reject),
}

impl Outcome {
    fn owned(self) -> Actual {
        match self {
            Outcome::Ok => Actual::Ok,
            Outcome::Allocated(allocations) => Actual::Allocated(
                allocations.iter().map(|(id, credits)| (id.to_string(), *credits)).collect(),
            ),
            Outcome::Rejected(reject) => Actual::Rejected(reject),
        }
    }
}

/// One expected ledger entry: credit id, type, credits, remaining after.
type E = (&'static str, EntryType, u64, u64);

#[derive(Debug, Clone, Copy)]
struct Step {
    at: i64,
    op: Op,
    outcome: Outcome,
    entries: &'static [E],
}

const fn step(at: i64, op: Op, outcome: Outcome, entries: &'static [E]) -> Step {
    Step { at, op, outcome, entries }
}

/// A record as a read shows it: id, used, reserved, remaining, expired amount, voided amount,
/// status.
type R = (&'static str, u64, u64, u64, u64, u64, CreditStatus);

#[derive(Debug)]
struct Expected {
    read_at: i64,
    records: &'static [R],
    holds: &'static [(&'static str, ReservationStatus)],
    /// Total available and reserved, and available to each listed service.
    available: u64,
    reserved: u64,
    available_by_service: &'static [(&'static str, u64)],
}

#[derive(Debug)]
struct Case<'a> {
    name: &'static str,
    steps: &'a [Step],
    expected: Expected,
}

use EntryType::{Capture, Expiry, Grant, Hold, Purchase, Release, Usage, Void};
use Outcome::{Allocated, Rejected};

const fn usage(id: &'static str, service: &'static str, credits: u64) -> Op {
    Op::Usage { id, service, credits }
}

const fn hold(id: &'static str, service: &'static str, credits: u64, ttl_seconds: u64) -> Op {
    Op::Hold { id, service, credits, ttl_seconds }
}

const fn capture(id: &'static str, credits: Option<u64>) -> Op {
    Op::Capture { id, credits }
}

fn rejection_kind(rejection: &Rejection) -> Reject {
    match rejection {
        Rejection::NotFound(_) => Reject::NotFound,
        Rejection::Validation(_) => Reject::Validation,
        Rejection::InvalidState(_) => Reject::InvalidState,
        Rejection::InsufficientCredits { available, required } => {
            Reject::Insufficient { available: *available, required: *required }
        }
        Rejection::DuplicateReference(reference) => {
            panic!("the core does not check references, got duplicate {reference}")
        }
        Rejection::BudgetExceeded { budget_id, .. } => {
            panic!("a book does not check budgets, got {budget_id}")
        }
    }
}

fn allocated(allocations: &[credits_core::Allocation]) -> Vec<(String, u64)> {
    allocations.iter().map(|a| (a.credit_id.clone(), a.credits)).collect()
}

fn new_record(spec: &CreditSpec, now: Timestamp) -> CreditRecord {
    CreditRecord {
        id: spec.id.to_string(),
        account_id: ACCOUNT.to_string(),
        amount: spec.amount,
        used: 0,
        reserved: 0,
        remaining: spec.amount,
        expired_amount: 0,
        voided_amount: 0,
        expires_at: spec.expires_at.map(Timestamp::from_micros),
        service: spec.service.to_string(),
        description: None,
        kind: spec.kind,
        priority: spec.priority,
        reference: None,
        expired: false,
        voided: false,
        created_at: now,
        updated_at: now,
    }
}

/// Runs one operation on the book. Returns the outcome as the tables spell it.
fn apply(
    book: &mut Book,
    op: &Op,
    now: Timestamp,
    effects: &mut Effects,
) -> Result<Actual, Reject> {
    let actor = Actor { member_id: Some("member_1".into()), api_key_id: None };
    match *op {
        Op::Credit(spec) => book
            .create_credit(new_record(&spec, now), now, effects)
            .map(|_| Actual::Ok)
            .map_err(|r| rejection_kind(&r)),
        Op::Usage { id, service, credits } => {
            let charge =
                UsageCharge { usage_id: id.into(), service: service.into(), credits, actor };
            let (allocations, after) =
                book.record_usage(&charge, now, effects).map_err(|r| rejection_kind(&r))?;
            assert_eq!(after, book.available(service), "balance after of {id}");
            Ok(Actual::Allocated(allocated(&allocations)))
        }
        Op::Hold { id, service, credits, ttl_seconds } => {
            let request = HoldRequest {
                reservation_id: id.into(),
                service: service.into(),
                credits,
                ttl_seconds,
                actor,
            };
            let index = book.hold(&request, now, effects).map_err(|r| rejection_kind(&r))?;
            let created = &book.holds[index];
            assert_eq!(created.id, id);
            assert_eq!(created.status, ReservationStatus::Held);
            assert_eq!(created.expires_at, now.plus_seconds(ttl_seconds));
            Ok(Actual::Allocated(allocated(&created.allocations)))
        }
        Op::Capture { id, credits } => {
            let usage_id = format!("use_{id}");
            let captured = book
                .capture(id, credits, &usage_id, &actor, now, effects)
                .map_err(|r| rejection_kind(&r))?;
            let captured_hold = book.holds.iter().find(|h| h.id == id).unwrap();
            assert_eq!(captured_hold.status, ReservationStatus::Captured);
            let total: u64 = captured.iter().map(|a| a.credits).sum();
            assert_eq!(captured_hold.captured, total);
            assert_eq!(captured_hold.usage_id.as_deref(), Some(usage_id.as_str()));
            Ok(Actual::Allocated(allocated(&captured)))
        }
        Op::Release { id } => {
            book.release(id, now, effects).map(|()| Actual::Ok).map_err(|r| rejection_kind(&r))
        }
        Op::Void { id } => {
            book.void(id, &actor, now, effects).map(|_| Actual::Ok).map_err(|r| rejection_kind(&r))
        }
        Op::Settle => {
            book.settle(now, effects);
            Ok(Actual::Ok)
        }
    }
}

/// What replaying the ledger gives for one record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Replayed {
    amount: u64,
    used: u64,
    reserved: u64,
    remaining: u64,
    expired_amount: u64,
    voided_amount: u64,
}

fn replay(replayed: &mut HashMap<String, Replayed>, entry: &credits_core::LedgerEntry) {
    let record = replayed.entry(entry.credit_id.clone()).or_default();
    let credits = entry.credits;
    match entry.entry_type {
        EntryType::Purchase | EntryType::Grant => {
            assert_eq!(record.amount, 0, "a second creation entry: {entry:?}");
            record.amount = credits;
            record.remaining = credits;
        }
        EntryType::Usage => {
            record.remaining -= credits;
            record.used += credits;
        }
        EntryType::Hold => {
            record.remaining -= credits;
            record.reserved += credits;
        }
        EntryType::Capture => {
            record.reserved -= credits;
            record.used += credits;
        }
        EntryType::Release => {
            record.reserved -= credits;
            record.remaining += credits;
        }
        EntryType::Expiry => {
            record.remaining -= credits;
            record.expired_amount += credits;
        }
        EntryType::Void => {
            record.remaining -= credits;
            record.voided_amount += credits;
        }
    }
    assert!(credits > 0, "an entry without credits: {entry:?}");
    assert_eq!(
        entry.remaining_after, record.remaining,
        "remaining_after does not follow from the ledger: {entry:?}"
    );
}

fn check_record_replayed(record: &CreditRecord, replayed: &HashMap<String, Replayed>) {
    let expected = Replayed {
        amount: record.amount,
        used: record.used,
        reserved: record.reserved,
        remaining: record.remaining,
        expired_amount: record.expired_amount,
        voided_amount: record.voided_amount,
    };
    assert_eq!(replayed.get(&record.id).copied(), Some(expected), "ledger replay of {}", record.id);
}

fn check_equation(record: &CreditRecord) {
    let sum = record.used
        + record.reserved
        + record.remaining
        + record.expired_amount
        + record.voided_amount;
    assert_eq!(record.amount, sum, "equation of {record:?}");
}

/// Runs a case step by step, then checks the read at `read_at`.
fn check(case: &Case<'_>) {
    let name = case.name;
    let mut book = Book::new(ACCOUNT);
    let mut replayed: HashMap<String, Replayed> = HashMap::new();
    for (number, step) in case.steps.iter().enumerate() {
        let at = Timestamp::from_micros(step.at);
        let context = format!("case {name:?}, step {number} {:?}", step.op);

        // What the book looks like when only time has acted: a rejection must leave exactly this.
        let mut settled = book.clone();
        let mut settled_effects = Effects::default();
        settled.settle(at, &mut settled_effects);
        let before = book.clone();

        let mut effects = Effects::default();
        let outcome = match apply(&mut book, &step.op, at, &mut effects) {
            Ok(outcome) => outcome,
            Err(reject) => Actual::Rejected(reject),
        };
        assert_eq!(outcome, step.outcome.owned(), "{context}: outcome");

        let entries: Vec<(String, EntryType, u64, u64)> = effects
            .entries
            .iter()
            .map(|e| (e.credit_id.clone(), e.entry_type, e.credits, e.remaining_after))
            .collect();
        let expected_entries: Vec<(String, EntryType, u64, u64)> = step
            .entries
            .iter()
            .map(|&(id, entry_type, credits, remaining_after)| {
                (id.to_string(), entry_type, credits, remaining_after)
            })
            .collect();
        assert_eq!(entries, expected_entries, "{context}: ledger entries");

        // A rejection changes nothing beyond what time made due; one found before settling
        // (validation of a new record) may not settle at all.
        if let Actual::Rejected(_) = outcome {
            let unsettled = book.records == before.records
                && book.holds == before.holds
                && effects.entries.is_empty();
            let only_settled = book.records == settled.records
                && book.holds == settled.holds
                && effects.entries == settled_effects.entries;
            assert!(unsettled || only_settled, "{context}: a rejection changed something");
        }
        // An applied operation first applies what time made due, then its own change at `at`.
        let settled_count = if let Actual::Rejected(_) = outcome {
            effects.entries.len()
        } else {
            settled_effects.entries.len()
        };
        assert!(effects.entries.len() >= settled_count, "{context}: settle skipped");
        assert_eq!(
            effects.entries[..settled_count],
            settled_effects.entries[..settled_count],
            "{context}: the operation did not settle first"
        );
        let mut previous = i64::MIN;
        for entry in &effects.entries {
            assert_eq!(entry.account_id, ACCOUNT, "{context}");
            assert!(entry.created_at <= at, "{context}: entry from the future {entry:?}");
            assert!(entry.created_at.micros() >= previous, "{context}: entries out of order");
            previous = entry.created_at.micros();
        }
        // The operation's own entries carry its ids.
        for entry in &effects.entries[settled_count..] {
            assert_eq!(entry.created_at, at, "{context}: {entry:?}");
            match entry.entry_type {
                EntryType::Usage => {
                    assert!(entry.reservation_id.is_none(), "{context}: {entry:?}");
                    match step.op {
                        Op::Usage { id, .. } => {
                            assert_eq!(entry.usage_id.as_deref(), Some(id), "{context}")
                        }
                        _ => panic!("{context}: usage entry from another operation"),
                    }
                }
                EntryType::Hold => match step.op {
                    Op::Hold { id, .. } => {
                        assert_eq!(entry.reservation_id.as_deref(), Some(id), "{context}")
                    }
                    _ => panic!("{context}: hold entry from another operation"),
                },
                EntryType::Capture => match step.op {
                    Op::Capture { id, .. } => {
                        assert_eq!(entry.reservation_id.as_deref(), Some(id), "{context}");
                        let usage_id = format!("use_{id}");
                        assert_eq!(entry.usage_id, Some(usage_id), "{context}");
                    }
                    _ => panic!("{context}: capture entry from another operation"),
                },
                EntryType::Release => {
                    assert!(entry.reservation_id.is_some(), "{context}: {entry:?}");
                    match step.op {
                        Op::Release { id } | Op::Capture { id, .. } => {
                            assert_eq!(entry.reservation_id.as_deref(), Some(id), "{context}")
                        }
                        _ => panic!("{context}: release entry from another operation"),
                    }
                }
                EntryType::Purchase | EntryType::Grant => {
                    assert!(matches!(step.op, Op::Credit(_)), "{context}: {entry:?}")
                }
                // Expiry and void follow a release to an expired or voided record.
                EntryType::Expiry | EntryType::Void => {}
            }
        }

        // Every record that changed is reported, so the store persists it.
        for (index, record) in book.records.iter().enumerate() {
            check_equation(record);
            if before.records.get(index) != Some(record) {
                assert!(
                    effects.records_changed.contains(&index),
                    "{context}: record {} changed but is not reported",
                    record.id
                );
            }
        }
        for (index, reservation) in book.holds.iter().enumerate() {
            if before.holds.get(index) != Some(reservation) {
                assert!(
                    effects.holds_changed.contains(&index),
                    "{context}: hold {} changed but is not reported",
                    reservation.id
                );
            }
        }

        for entry in &effects.entries {
            replay(&mut replayed, entry);
        }
        for record in &book.records {
            check_record_replayed(record, &replayed);
        }
        let used: u64 = book.records.iter().map(|r| r.used).sum();
        let usage_credits: u64 = replayed.values().map(|r| r.used).sum();
        assert_eq!(used, usage_credits, "{context}: usage credits and used");
    }

    // The read: a settled copy, as the service reads.
    let expected = &case.expected;
    let read_at = Timestamp::from_micros(expected.read_at);
    let mut read = book.clone();
    let mut read_effects = Effects::default();
    read.settle(read_at, &mut read_effects);
    type Owned = (String, u64, u64, u64, u64, u64, CreditStatus);
    let records: Vec<Owned> = read
        .records
        .iter()
        .map(|r| {
            check_equation(r);
            (
                r.id.clone(),
                r.used,
                r.reserved,
                r.remaining,
                r.expired_amount,
                r.voided_amount,
                r.status(),
            )
        })
        .collect();
    let expected_records: Vec<Owned> = expected
        .records
        .iter()
        .map(|&(id, used, reserved, remaining, expired, voided, status)| {
            (id.to_string(), used, reserved, remaining, expired, voided, status)
        })
        .collect();
    assert_eq!(records, expected_records, "case {name:?}: records read");
    for (id, status) in expected.holds {
        let settled_hold = read.holds.iter().find(|h| h.id == *id).unwrap();
        assert_eq!(settled_hold.status, *status, "case {name:?}: hold {id}");
        // Unswept, the hold reads the same.
        let stored_hold = book.holds.iter().find(|h| h.id == *id).unwrap();
        assert_eq!(stored_hold.status_at(read_at), *status, "case {name:?}: hold {id} unswept");
    }
    assert_eq!(read.holds.len(), expected.holds.len(), "case {name:?}: holds");
    let balance = read.balance();
    assert_eq!(balance.available, expected.available, "case {name:?}: available");
    assert_eq!(balance.reserved, expected.reserved, "case {name:?}: reserved");
    for (service, available) in expected.available_by_service {
        assert_eq!(read.available(service), *available, "case {name:?}: available to {service}");
    }
}

fn check_all(cases: &[Case<'_>]) {
    for case in cases {
        check(case);
    }
}

#[test]
#[rustfmt::skip]
fn burn_down_order() {
    check_all(&[
        Case {
            name: "service-specific before any, even against a higher priority",
            steps: &[
                step(S, Op::Credit(credit("c_any", "any", 100).priority(9)), Outcome::Ok, &[("c_any", Purchase, 100, 100)]),
                step(2 * S, Op::Credit(credit("c_sms", "sms", 100)), Outcome::Ok, &[("c_sms", Purchase, 100, 100)]),
                step(3 * S, usage("u1", "sms", 30), Allocated(&[("c_sms", 30)]), &[("c_sms", Usage, 30, 70)]),
                step(4 * S, usage("u2", "email", 30), Allocated(&[("c_any", 30)]), &[("c_any", Usage, 30, 70)]),
                step(5 * S, usage("u3", "sms", 100), Allocated(&[("c_sms", 70), ("c_any", 30)]), &[("c_sms", Usage, 70, 0), ("c_any", Usage, 30, 40)]),
            ],
            expected: Expected {
                read_at: 5 * S,
                records: &[
                    ("c_any", 60, 0, 40, 0, 0, CreditStatus::Active),
                    ("c_sms", 100, 0, 0, 0, 0, CreditStatus::Depleted),
                ],
                holds: &[],
                available: 40,
                reserved: 0,
                available_by_service: &[("sms", 40), ("email", 40), ("any", 40)],
            },
        },
        Case {
            name: "higher priority first, before earlier expiry",
            steps: &[
                step(S, Op::Credit(credit("c_p0", "sms", 10)), Outcome::Ok, &[("c_p0", Purchase, 10, 10)]),
                step(2 * S, Op::Credit(credit("c_p5", "sms", 10).priority(5)), Outcome::Ok, &[("c_p5", Purchase, 10, 10)]),
                step(3 * S, Op::Credit(credit("c_neg", "sms", 10).priority(-3).expires_at(100 * S)), Outcome::Ok, &[("c_neg", Purchase, 10, 10)]),
                step(4 * S, Op::Credit(credit("c_p1", "sms", 10).priority(1).grant()), Outcome::Ok, &[("c_p1", Grant, 10, 10)]),
                step(5 * S, usage("u1", "sms", 35), Allocated(&[("c_p5", 10), ("c_p1", 10), ("c_p0", 10), ("c_neg", 5)]), &[("c_p5", Usage, 10, 0), ("c_p1", Usage, 10, 0), ("c_p0", Usage, 10, 0), ("c_neg", Usage, 5, 5)]),
            ],
            expected: Expected {
                read_at: 5 * S,
                records: &[
                    ("c_p0", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c_p5", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c_neg", 5, 0, 5, 0, 0, CreditStatus::Active),
                    ("c_p1", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                ],
                holds: &[],
                available: 5,
                reserved: 0,
                available_by_service: &[("sms", 5), ("email", 0)],
            },
        },
        Case {
            name: "earliest expiry first, never-expiring last",
            steps: &[
                step(S, Op::Credit(credit("c_never", "sms", 100)), Outcome::Ok, &[("c_never", Purchase, 100, 100)]),
                step(2 * S, Op::Credit(credit("c_late", "sms", 100).expires_at(1000 * S)), Outcome::Ok, &[("c_late", Purchase, 100, 100)]),
                step(3 * S, Op::Credit(credit("c_early", "sms", 100).expires_at(500 * S)), Outcome::Ok, &[("c_early", Purchase, 100, 100)]),
                step(4 * S, usage("u1", "sms", 150), Allocated(&[("c_early", 100), ("c_late", 50)]), &[("c_early", Usage, 100, 0), ("c_late", Usage, 50, 50)]),
                step(5 * S, usage("u2", "sms", 100), Allocated(&[("c_late", 50), ("c_never", 50)]), &[("c_late", Usage, 50, 0), ("c_never", Usage, 50, 50)]),
            ],
            expected: Expected {
                read_at: 5 * S,
                records: &[
                    ("c_never", 50, 0, 50, 0, 0, CreditStatus::Active),
                    ("c_late", 100, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c_early", 100, 0, 0, 0, 0, CreditStatus::Depleted),
                ],
                holds: &[],
                available: 50,
                reserved: 0,
                available_by_service: &[("sms", 50)],
            },
        },
        Case {
            name: "oldest first, then id",
            steps: &[
                step(S, Op::Credit(credit("c_b", "sms", 10)), Outcome::Ok, &[("c_b", Purchase, 10, 10)]),
                step(2 * S, Op::Credit(credit("c_a", "sms", 10)), Outcome::Ok, &[("c_a", Purchase, 10, 10)]),
                step(3 * S, Op::Credit(credit("c_d", "sms", 10)), Outcome::Ok, &[("c_d", Purchase, 10, 10)]),
                step(3 * S, Op::Credit(credit("c_c", "sms", 10)), Outcome::Ok, &[("c_c", Purchase, 10, 10)]),
                step(4 * S, usage("u1", "sms", 25), Allocated(&[("c_b", 10), ("c_a", 10), ("c_c", 5)]), &[("c_b", Usage, 10, 0), ("c_a", Usage, 10, 0), ("c_c", Usage, 5, 5)]),
            ],
            expected: Expected {
                read_at: 4 * S,
                records: &[
                    ("c_b", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c_a", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c_d", 0, 0, 10, 0, 0, CreditStatus::Active),
                    ("c_c", 5, 0, 5, 0, 0, CreditStatus::Active),
                ],
                holds: &[],
                available: 15,
                reserved: 0,
                available_by_service: &[("sms", 15)],
            },
        },
        Case {
            name: "every key of the order in one usage split across five records",
            steps: &[
                step(S, Op::Credit(credit("x1", "any", 10).priority(10)), Outcome::Ok, &[("x1", Purchase, 10, 10)]),
                step(2 * S, Op::Credit(credit("x2", "sms", 10)), Outcome::Ok, &[("x2", Purchase, 10, 10)]),
                step(3 * S, Op::Credit(credit("x3", "sms", 10).expires_at(900 * S)), Outcome::Ok, &[("x3", Purchase, 10, 10)]),
                step(4 * S, Op::Credit(credit("x4", "sms", 10).priority(1).expires_at(950 * S)), Outcome::Ok, &[("x4", Purchase, 10, 10)]),
                step(5 * S, Op::Credit(credit("x5", "sms", 10).expires_at(900 * S)), Outcome::Ok, &[("x5", Purchase, 10, 10)]),
                step(6 * S, Op::Credit(credit("x6", "email", 10).priority(99).expires_at(10 * S)), Outcome::Ok, &[("x6", Purchase, 10, 10)]),
                step(7 * S, usage("u1", "sms", 50), Allocated(&[("x4", 10), ("x3", 10), ("x5", 10), ("x2", 10), ("x1", 10)]), &[("x4", Usage, 10, 0), ("x3", Usage, 10, 0), ("x5", Usage, 10, 0), ("x2", Usage, 10, 0), ("x1", Usage, 10, 0)]),
                step(8 * S, usage("u2", "sms", 1), Rejected(Reject::Insufficient { available: 0, required: 1 }), &[]),
            ],
            expected: Expected {
                read_at: 8 * S,
                records: &[
                    ("x1", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("x2", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("x3", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("x4", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("x5", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("x6", 0, 0, 10, 0, 0, CreditStatus::Active),
                ],
                holds: &[],
                available: 10,
                reserved: 0,
                available_by_service: &[("sms", 0), ("email", 10)],
            },
        },
    ]);
}

#[test]
#[rustfmt::skip]
fn insufficient_credits_changes_nothing() {
    check_all(&[
        Case {
            name: "short by one: usage and hold rejected, then the exact amount succeeds",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, Op::Credit(credit("c2", "any", 50)), Outcome::Ok, &[("c2", Purchase, 50, 50)]),
                step(3 * S, Op::Credit(credit("c3", "email", 1000)), Outcome::Ok, &[("c3", Purchase, 1000, 1000)]),
                step(4 * S, hold("r1", "sms", 20, 300), Allocated(&[("c1", 20)]), &[("c1", Hold, 20, 80)]),
                step(5 * S, usage("u1", "sms", 131), Rejected(Reject::Insufficient { available: 130, required: 131 }), &[]),
                step(5 * S, hold("r2", "sms", 131, 300), Rejected(Reject::Insufficient { available: 130, required: 131 }), &[]),
                step(5 * S, usage("u2", "voice", 51), Rejected(Reject::Insufficient { available: 50, required: 51 }), &[]),
                step(6 * S, usage("u3", "sms", 130), Allocated(&[("c1", 80), ("c2", 50)]), &[("c1", Usage, 80, 0), ("c2", Usage, 50, 0)]),
                step(7 * S, usage("u4", "sms", 1), Rejected(Reject::Insufficient { available: 0, required: 1 }), &[]),
            ],
            expected: Expected {
                read_at: 7 * S,
                records: &[
                    ("c1", 80, 20, 0, 0, 0, CreditStatus::Active),
                    ("c2", 50, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c3", 0, 0, 1000, 0, 0, CreditStatus::Active),
                ],
                holds: &[("r1", ReservationStatus::Held)],
                available: 1000,
                reserved: 20,
                available_by_service: &[("sms", 0), ("email", 1000), ("voice", 0)],
            },
        },
        Case {
            name: "largest amounts: 2^53-1 on two records, usage of the largest amount",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 9_007_199_254_740_991)), Outcome::Ok, &[("c1", Purchase, 9_007_199_254_740_991, 9_007_199_254_740_991)]),
                step(2 * S, Op::Credit(credit("c2", "any", 9_007_199_254_740_991)), Outcome::Ok, &[("c2", Purchase, 9_007_199_254_740_991, 9_007_199_254_740_991)]),
                step(3 * S, Op::Credit(credit("c3", "sms", 0)), Rejected(Reject::Validation), &[]),
                step(3 * S, Op::Credit(credit("c4", "sms", 9_007_199_254_740_992)), Rejected(Reject::Validation), &[]),
                step(4 * S, usage("u1", "sms", 1), Allocated(&[("c1", 1)]), &[("c1", Usage, 1, 9_007_199_254_740_990)]),
                step(5 * S, usage("u2", "sms", 9_007_199_254_740_991), Allocated(&[("c1", 9_007_199_254_740_990), ("c2", 1)]), &[("c1", Usage, 9_007_199_254_740_990, 0), ("c2", Usage, 1, 9_007_199_254_740_990)]),
                step(6 * S, usage("u3", "sms", 9_007_199_254_740_991), Rejected(Reject::Insufficient { available: 9_007_199_254_740_990, required: 9_007_199_254_740_991 }), &[]),
            ],
            expected: Expected {
                read_at: 6 * S,
                records: &[
                    ("c1", 9_007_199_254_740_991, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c2", 1, 0, 9_007_199_254_740_990, 0, 0, CreditStatus::Active),
                ],
                holds: &[],
                available: 9_007_199_254_740_990,
                reserved: 0,
                available_by_service: &[("sms", 9_007_199_254_740_990)],
            },
        },
    ]);
}

#[test]
#[rustfmt::skip]
fn expiry_is_exact() {
    check_all(&[
        Case {
            name: "spendable one microsecond before, expired at the instant",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100).expires_at(100 * S)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, Op::Credit(credit("c2", "sms", 100)), Outcome::Ok, &[("c2", Purchase, 100, 100)]),
                step(100 * S - 1, usage("u1", "sms", 10), Allocated(&[("c1", 10)]), &[("c1", Usage, 10, 90)]),
                step(100 * S, usage("u2", "sms", 10), Allocated(&[("c2", 10)]), &[("c1", Expiry, 90, 0), ("c2", Usage, 10, 90)]),
            ],
            expected: Expected {
                read_at: 100 * S,
                records: &[
                    ("c1", 10, 0, 0, 90, 0, CreditStatus::Expired),
                    ("c2", 10, 0, 90, 0, 0, CreditStatus::Active),
                ],
                holds: &[],
                available: 90,
                reserved: 0,
                available_by_service: &[("sms", 90)],
            },
        },
        Case {
            name: "a rejected usage at the instant still persists the expiry",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 50).expires_at(10 * S)), Outcome::Ok, &[("c1", Purchase, 50, 50)]),
                step(10 * S, usage("u1", "sms", 1), Rejected(Reject::Insufficient { available: 0, required: 1 }), &[("c1", Expiry, 50, 0)]),
                step(10 * S, Op::Void { id: "c1" }, Rejected(Reject::InvalidState), &[]),
                step(11 * S, Op::Settle, Outcome::Ok, &[]),
            ],
            expected: Expected {
                read_at: 11 * S,
                records: &[("c1", 0, 0, 0, 50, 0, CreditStatus::Expired)],
                holds: &[],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "a read shows the expiry before any sweep",
            steps: &[step(S, Op::Credit(credit("c1", "sms", 50).expires_at(10 * S)), Outcome::Ok, &[("c1", Purchase, 50, 50)])],
            expected: Expected {
                read_at: 10 * S,
                records: &[("c1", 0, 0, 0, 50, 0, CreditStatus::Expired)],
                holds: &[],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "creating a record that expires at the instant is rejected",
            steps: &[
                step(10 * S, Op::Credit(credit("c1", "sms", 50).expires_at(10 * S)), Rejected(Reject::Validation), &[]),
                step(10 * S, Op::Credit(credit("c2", "sms", 50).expires_at(10 * S - 1)), Rejected(Reject::Validation), &[]),
                step(10 * S, Op::Credit(credit("c3", "sms", 50).expires_at(10 * S + 1)), Outcome::Ok, &[("c3", Purchase, 50, 50)]),
                step(10 * S + 1, Op::Settle, Outcome::Ok, &[("c3", Expiry, 50, 0)]),
            ],
            expected: Expected {
                read_at: 10 * S + 1,
                records: &[("c3", 0, 0, 0, 50, 0, CreditStatus::Expired)],
                holds: &[],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "a used-up record expires without an entry and reads depleted",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 5).expires_at(10 * S)), Outcome::Ok, &[("c1", Purchase, 5, 5)]),
                step(2 * S, usage("u1", "sms", 5), Allocated(&[("c1", 5)]), &[("c1", Usage, 5, 0)]),
                step(10 * S, Op::Settle, Outcome::Ok, &[]),
            ],
            expected: Expected {
                read_at: 10 * S,
                records: &[("c1", 5, 0, 0, 0, 0, CreditStatus::Depleted)],
                holds: &[],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
    ]);
}

#[test]
#[rustfmt::skip]
fn reservations() {
    check_all(&[
        Case {
            name: "hold, partial capture returns the rest, a second settle is invalid",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 60, 300), Allocated(&[("c1", 60)]), &[("c1", Hold, 60, 40)]),
                step(3 * S, capture("r1", Some(25)), Allocated(&[("c1", 25)]), &[("c1", Capture, 25, 40), ("c1", Release, 35, 75)]),
                step(4 * S, capture("r1", None), Rejected(Reject::InvalidState), &[]),
                step(4 * S, capture("r1", Some(1)), Rejected(Reject::InvalidState), &[]),
                step(4 * S, Op::Release { id: "r1" }, Rejected(Reject::InvalidState), &[]),
            ],
            expected: Expected {
                read_at: 4 * S,
                records: &[("c1", 25, 0, 75, 0, 0, CreditStatus::Active)],
                holds: &[("r1", ReservationStatus::Captured)],
                available: 75,
                reserved: 0,
                available_by_service: &[("sms", 75)],
            },
        },
        Case {
            name: "a hold across records; partial capture draws allocations in order",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 30).priority(1)), Outcome::Ok, &[("c1", Purchase, 30, 30)]),
                step(2 * S, Op::Credit(credit("c2", "any", 100)), Outcome::Ok, &[("c2", Purchase, 100, 100)]),
                step(3 * S, hold("r1", "sms", 50, 300), Allocated(&[("c1", 30), ("c2", 20)]), &[("c1", Hold, 30, 0), ("c2", Hold, 20, 80)]),
                step(3 * S, usage("u1", "email", 81), Rejected(Reject::Insufficient { available: 80, required: 81 }), &[]),
                step(4 * S, capture("r1", Some(40)), Allocated(&[("c1", 30), ("c2", 10)]), &[("c1", Capture, 30, 0), ("c2", Capture, 10, 80), ("c2", Release, 10, 90)]),
            ],
            expected: Expected {
                read_at: 4 * S,
                records: &[
                    ("c1", 30, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c2", 10, 0, 90, 0, 0, CreditStatus::Active),
                ],
                holds: &[("r1", ReservationStatus::Captured)],
                available: 90,
                reserved: 0,
                available_by_service: &[("sms", 90), ("email", 90)],
            },
        },
        Case {
            name: "release returns everything; capture and release after it are invalid",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 70, 300), Allocated(&[("c1", 70)]), &[("c1", Hold, 70, 30)]),
                step(2 * S, usage("u1", "sms", 31), Rejected(Reject::Insufficient { available: 30, required: 31 }), &[]),
                step(3 * S, Op::Release { id: "r1" }, Outcome::Ok, &[("c1", Release, 70, 100)]),
                step(4 * S, capture("r1", None), Rejected(Reject::InvalidState), &[]),
                step(4 * S, Op::Release { id: "r1" }, Rejected(Reject::InvalidState), &[]),
                step(4 * S, capture("r9", None), Rejected(Reject::NotFound), &[]),
                step(4 * S, Op::Release { id: "r9" }, Rejected(Reject::NotFound), &[]),
            ],
            expected: Expected {
                read_at: 4 * S,
                records: &[("c1", 0, 0, 100, 0, 0, CreditStatus::Active)],
                holds: &[("r1", ReservationStatus::Released)],
                available: 100,
                reserved: 0,
                available_by_service: &[("sms", 100)],
            },
        },
        Case {
            name: "capture of more than held or of zero is rejected; a full capture uses all",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 40, 300), Allocated(&[("c1", 40)]), &[("c1", Hold, 40, 60)]),
                step(3 * S, capture("r1", Some(41)), Rejected(Reject::Validation), &[]),
                step(3 * S, capture("r1", Some(0)), Rejected(Reject::Validation), &[]),
                step(3 * S, capture("r1", Some(40)), Allocated(&[("c1", 40)]), &[("c1", Capture, 40, 60)]),
            ],
            expected: Expected {
                read_at: 3 * S,
                records: &[("c1", 40, 0, 60, 0, 0, CreditStatus::Active)],
                holds: &[("r1", ReservationStatus::Captured)],
                available: 60,
                reserved: 0,
                available_by_service: &[("sms", 60)],
            },
        },
        Case {
            name: "hold expiry returns credits at the instant; capturing it then is invalid",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 70, 10), Allocated(&[("c1", 70)]), &[("c1", Hold, 70, 30)]),
                step(12 * S - 1, usage("u1", "sms", 31), Rejected(Reject::Insufficient { available: 30, required: 31 }), &[]),
                step(12 * S, usage("u2", "sms", 31), Allocated(&[("c1", 31)]), &[("c1", Release, 70, 100), ("c1", Usage, 31, 69)]),
                step(13 * S, capture("r1", None), Rejected(Reject::InvalidState), &[]),
                step(13 * S, Op::Release { id: "r1" }, Rejected(Reject::InvalidState), &[]),
            ],
            expected: Expected {
                read_at: 13 * S,
                records: &[("c1", 31, 0, 69, 0, 0, CreditStatus::Active)],
                holds: &[("r1", ReservationStatus::Expired)],
                available: 69,
                reserved: 0,
                available_by_service: &[("sms", 69)],
            },
        },
        Case {
            name: "capture at the hold's expiry instant is invalid",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 70, 10), Allocated(&[("c1", 70)]), &[("c1", Hold, 70, 30)]),
                step(12 * S, capture("r1", Some(5)), Rejected(Reject::InvalidState), &[("c1", Release, 70, 100)]),
            ],
            expected: Expected {
                read_at: 12 * S,
                records: &[("c1", 0, 0, 100, 0, 0, CreditStatus::Active)],
                holds: &[("r1", ReservationStatus::Expired)],
                available: 100,
                reserved: 0,
                available_by_service: &[("sms", 100)],
            },
        },
        Case {
            name: "an unswept hold reads expired at its instant",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 70, 10), Allocated(&[("c1", 70)]), &[("c1", Hold, 70, 30)]),
            ],
            expected: Expected {
                read_at: 12 * S,
                records: &[("c1", 0, 0, 100, 0, 0, CreditStatus::Active)],
                holds: &[("r1", ReservationStatus::Expired)],
                available: 100,
                reserved: 0,
                available_by_service: &[("sms", 100)],
            },
        },
    ]);
}

#[test]
#[rustfmt::skip]
fn holds_on_records_that_expire() {
    check_all(&[
        Case {
            name: "a hold whose record expired meanwhile is capturable; the rest is expired",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100).expires_at(50 * S)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(10 * S, hold("r1", "sms", 60, 300), Allocated(&[("c1", 60)]), &[("c1", Hold, 60, 40)]),
                step(60 * S, capture("r1", Some(20)), Allocated(&[("c1", 20)]), &[("c1", Expiry, 40, 0), ("c1", Capture, 20, 0), ("c1", Release, 40, 40), ("c1", Expiry, 40, 0)]),
            ],
            expected: Expected {
                read_at: 60 * S,
                records: &[("c1", 20, 0, 0, 80, 0, CreditStatus::Expired)],
                holds: &[("r1", ReservationStatus::Captured)],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "a release after the record's expiry goes to expired_amount",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100).expires_at(50 * S)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(10 * S, hold("r1", "sms", 100, 300), Allocated(&[("c1", 100)]), &[("c1", Hold, 100, 0)]),
                step(50 * S, Op::Settle, Outcome::Ok, &[]),
                step(60 * S, Op::Release { id: "r1" }, Outcome::Ok, &[("c1", Release, 100, 100), ("c1", Expiry, 100, 0)]),
            ],
            expected: Expected {
                read_at: 60 * S,
                records: &[("c1", 0, 0, 0, 100, 0, CreditStatus::Expired)],
                holds: &[("r1", ReservationStatus::Released)],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "a hold expiring after its record: both in one sweep, in order",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100).expires_at(50 * S)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(10 * S, hold("r1", "sms", 60, 100), Allocated(&[("c1", 60)]), &[("c1", Hold, 60, 40)]),
                step(200 * S, Op::Settle, Outcome::Ok, &[("c1", Expiry, 40, 0), ("c1", Release, 60, 60), ("c1", Expiry, 60, 0)]),
            ],
            expected: Expected {
                read_at: 200 * S,
                records: &[("c1", 0, 0, 0, 100, 0, CreditStatus::Expired)],
                holds: &[("r1", ReservationStatus::Expired)],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "a hold and its record expiring at the same instant: the hold first",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100).expires_at(50 * S)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(10 * S, hold("r1", "sms", 60, 40), Allocated(&[("c1", 60)]), &[("c1", Hold, 60, 40)]),
                step(50 * S, Op::Settle, Outcome::Ok, &[("c1", Release, 60, 100), ("c1", Expiry, 100, 0)]),
            ],
            expected: Expected {
                read_at: 50 * S,
                records: &[("c1", 0, 0, 0, 100, 0, CreditStatus::Expired)],
                holds: &[("r1", ReservationStatus::Expired)],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "a hold expiring before its record gives the credits back to spend",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100).expires_at(50 * S)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(10 * S, hold("r1", "sms", 60, 30), Allocated(&[("c1", 60)]), &[("c1", Hold, 60, 40)]),
                step(45 * S, usage("u1", "sms", 70), Allocated(&[("c1", 70)]), &[("c1", Release, 60, 100), ("c1", Usage, 70, 30)]),
                step(50 * S, Op::Settle, Outcome::Ok, &[("c1", Expiry, 30, 0)]),
            ],
            expected: Expected {
                read_at: 50 * S,
                records: &[("c1", 70, 0, 0, 30, 0, CreditStatus::Expired)],
                holds: &[("r1", ReservationStatus::Expired)],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
    ]);
}

#[test]
#[rustfmt::skip]
fn void() {
    check_all(&[
        Case {
            name: "void with a hold outstanding: the later release is voided",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100).expires_at(500 * S)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 30, 300), Allocated(&[("c1", 30)]), &[("c1", Hold, 30, 70)]),
                step(3 * S, Op::Void { id: "c1" }, Outcome::Ok, &[("c1", Void, 70, 0)]),
                step(4 * S, usage("u1", "sms", 1), Rejected(Reject::Insufficient { available: 0, required: 1 }), &[]),
                step(5 * S, Op::Release { id: "r1" }, Outcome::Ok, &[("c1", Release, 30, 30), ("c1", Void, 30, 0)]),
                step(600 * S, Op::Settle, Outcome::Ok, &[]),
            ],
            expected: Expected {
                read_at: 600 * S,
                records: &[("c1", 0, 0, 0, 0, 100, CreditStatus::Voided)],
                holds: &[("r1", ReservationStatus::Released)],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "void with holds outstanding: capture still works, the rest and expired holds are voided",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 100)), Outcome::Ok, &[("c1", Purchase, 100, 100)]),
                step(2 * S, hold("r1", "sms", 30, 300), Allocated(&[("c1", 30)]), &[("c1", Hold, 30, 70)]),
                step(2 * S, hold("r2", "sms", 20, 300), Allocated(&[("c1", 20)]), &[("c1", Hold, 20, 50)]),
                step(3 * S, Op::Void { id: "c1" }, Outcome::Ok, &[("c1", Void, 50, 0)]),
                step(4 * S, capture("r1", Some(10)), Allocated(&[("c1", 10)]), &[("c1", Capture, 10, 0), ("c1", Release, 20, 20), ("c1", Void, 20, 0)]),
                step(400 * S, Op::Settle, Outcome::Ok, &[("c1", Release, 20, 20), ("c1", Void, 20, 0)]),
            ],
            expected: Expected {
                read_at: 400 * S,
                records: &[("c1", 10, 0, 0, 0, 90, CreditStatus::Voided)],
                holds: &[("r1", ReservationStatus::Captured), ("r2", ReservationStatus::Expired)],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0)],
            },
        },
        Case {
            name: "void rejections: unknown, twice, used up, expired",
            steps: &[
                step(S, Op::Credit(credit("c1", "sms", 10)), Outcome::Ok, &[("c1", Purchase, 10, 10)]),
                step(S, Op::Credit(credit("c2", "email", 10)), Outcome::Ok, &[("c2", Purchase, 10, 10)]),
                step(S, Op::Credit(credit("c3", "voice", 10).expires_at(5 * S)), Outcome::Ok, &[("c3", Purchase, 10, 10)]),
                step(2 * S, Op::Void { id: "c9" }, Rejected(Reject::NotFound), &[]),
                step(2 * S, usage("u1", "sms", 10), Allocated(&[("c1", 10)]), &[("c1", Usage, 10, 0)]),
                step(2 * S, Op::Void { id: "c1" }, Rejected(Reject::InvalidState), &[]),
                step(3 * S, Op::Void { id: "c2" }, Outcome::Ok, &[("c2", Void, 10, 0)]),
                step(3 * S, Op::Void { id: "c2" }, Rejected(Reject::InvalidState), &[]),
                step(5 * S, Op::Void { id: "c3" }, Rejected(Reject::InvalidState), &[("c3", Expiry, 10, 0)]),
            ],
            expected: Expected {
                read_at: 5 * S,
                records: &[
                    ("c1", 10, 0, 0, 0, 0, CreditStatus::Depleted),
                    ("c2", 0, 0, 0, 0, 10, CreditStatus::Voided),
                    ("c3", 0, 0, 0, 10, 0, CreditStatus::Expired),
                ],
                holds: &[],
                available: 0,
                reserved: 0,
                available_by_service: &[("sms", 0), ("email", 0), ("voice", 0)],
            },
        },
    ]);
}
