//! Model check of the ledger core (`credits_core::Book`) against a deliberately simple model.
//!
//! Goal: find any sequence of operations after which the core disagrees with SPEC.md sections 5
//! and 6: a broken record equation, a wrong burn-down, a wrong expiry or release, a ledger that
//! does not replay to the records, or a balance that does not add up.
//!
//! Method: proptest generates random command sequences (purchase, grant, usage, hold, capture in
//! full or in part, release, void, clock advance with or without a sweep) over the services
//! `sms`, `email` and `any` (and usage of `voice`, which has no records of its own). Amounts are
//! abstract and resolved against the model's state when a command runs, biased toward the edges:
//! 1, small, the available total and one either side, half of it, and up to 2^53-1. The same
//! commands run on a `Book` and on [`Model`], which keeps plain counters per record, burns down by
//! sorting with its own comparison, and advances time one due event at a time. After every step
//! the test compares outcomes, every record and hold field, the balance, and replays the ledger
//! entries per record. Reads compare a settled copy of the book, as the service reads, so a book
//! that was not swept must read the same as the eagerly settled model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use credits_core::book::{HoldRequest, UsageCharge};
use credits_core::{
    Actor, Allocation, Book, CreditKind, CreditRecord, CreditStatus, Effects, EntryType,
    LedgerEntry, Rejection, ReservationStatus, Timestamp, CREDITS_MAX, SERVICE_ANY,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const ACCOUNT: &str = "acct_model";
const SECOND: i64 = 1_000_000;
/// Services a credit record can be for.
const RECORD_SERVICES: [&str; 3] = ["sms", "email", SERVICE_ANY];
/// Services usage and holds can be for: `voice` has no records of its own, only `any`.
const USAGE_SERVICES: [&str; 3] = ["sms", "email", "voice"];

/// An amount, resolved against a total when the command runs.
#[derive(Debug, Clone, Copy)]
enum Amount {
    One,
    Small(u64),
    /// The total plus an offset: exactly all of it, one short, one too many.
    NearTotal(i64),
    Half,
    Exact(u64),
}

impl Amount {
    /// Resolves to `low..=CREDITS_MAX` (or one more for `Exact`, to test validation).
    fn resolve(self, total: u64, low: u64) -> u64 {
        let amount = match self {
            Amount::One => 1,
            Amount::Small(n) => n,
            Amount::NearTotal(offset) => {
                let value = i128::from(total) + i128::from(offset);
                u64::try_from(value.max(0)).unwrap()
            }
            Amount::Half => total / 2,
            Amount::Exact(n) => n,
        };
        amount.clamp(low, CREDITS_MAX)
    }
}

#[derive(Debug, Clone)]
enum Command {
    Credit {
        kind: CreditKind,
        service: usize,
        amount: u64,
        priority: i64,
        /// Microseconds from now; 0 or less is rejected.
        expires_in: Option<i64>,
    },
    Usage {
        service: usize,
        credits: Amount,
    },
    Hold {
        service: usize,
        credits: Amount,
        ttl_seconds: u64,
    },
    Capture {
        pick: usize,
        /// `None` captures everything held.
        credits: Option<Amount>,
    },
    Release {
        pick: usize,
    },
    Void {
        pick: usize,
    },
    Advance {
        micros: i64,
        sweep: bool,
    },
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        3 => Just(Amount::One),
        3 => (2u64..=10).prop_map(Amount::Small),
        3 => (-2i64..=0).prop_map(Amount::NearTotal),
        // One or two too many: rejected.
        1 => (1i64..=2).prop_map(Amount::NearTotal),
        2 => Just(Amount::Half),
        1 => (1..=CREDITS_MAX).prop_map(Amount::Exact),
        1 => prop_oneof![Just(CREDITS_MAX), Just(CREDITS_MAX - 1)].prop_map(Amount::Exact),
    ]
}

fn credit_amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(1u64),
        6 => 2u64..=10,
        4 => 11u64..=1000,
        2 => Just(CREDITS_MAX),
        1 => Just(CREDITS_MAX - 1),
        1 => 1..=CREDITS_MAX,
        // Invalid amounts, rejected by validation.
        1 => Just(0u64),
        1 => Just(CREDITS_MAX + 1),
    ]
}

fn priority() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => Just(0i64),
        4 => -2i64..=2,
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => Just(i64::MIN + 1),
        1 => Just(i64::MIN + 2),
    ]
}

/// Durations shared by expiries, ttls and clock advances, so that instants often coincide.
fn duration_micros() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => Just(1i64),
        3 => Just(SECOND),
        3 => Just(10 * SECOND),
        3 => Just(60 * SECOND),
        3 => Just(300 * SECOND),
        1 => Just(300 * SECOND - 1),
        1 => Just(300 * SECOND + 1),
        1 => Just(86_400 * SECOND),
        1 => 1i64..=1000 * SECOND,
    ]
}

fn credit_command() -> impl Strategy<Value = Command> {
    (
        prop_oneof![Just(CreditKind::Purchase), Just(CreditKind::Grant)],
        0..RECORD_SERVICES.len(),
        credit_amount(),
        priority(),
        prop_oneof![
            3 => Just(None),
            4 => duration_micros().prop_map(Some),
            2 => prop_oneof![Just(3_600 * SECOND), Just(7 * 86_400 * SECOND)].prop_map(Some),
            1 => Just(Some(0i64)),
        ],
    )
        .prop_map(|(kind, service, amount, priority, expires_in)| Command::Credit {
            kind,
            service,
            amount,
            priority,
            expires_in,
        })
}

fn command() -> impl Strategy<Value = Command> {
    let usage = (0..USAGE_SERVICES.len(), amount())
        .prop_map(|(service, credits)| Command::Usage { service, credits });
    let hold = (
        0..USAGE_SERVICES.len(),
        amount(),
        prop_oneof![Just(1u64), Just(10), Just(60), Just(300), Just(86_400)],
    )
        .prop_map(|(service, credits, ttl_seconds)| Command::Hold {
            service,
            credits,
            ttl_seconds,
        });
    let capture = (
        any::<usize>(),
        prop_oneof![
            2 => Just(None),
            3 => amount().prop_map(Some),
            // Zero and one more than held, rejected by validation.
            1 => Just(Some(Amount::NearTotal(1))),
            1 => Just(Some(Amount::Exact(0))),
        ],
    )
        .prop_map(|(pick, credits)| Command::Capture { pick, credits });
    prop_oneof![
        4 => credit_command(),
        5 => usage,
        4 => hold,
        3 => capture,
        2 => any::<usize>().prop_map(|pick| Command::Release { pick }),
        1 => any::<usize>().prop_map(|pick| Command::Void { pick }),
        4 => (prop_oneof![Just(0i64), duration_micros()], any::<bool>())
            .prop_map(|(micros, sweep)| Command::Advance { micros, sweep }),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone)]
struct ModelRecord {
    id: String,
    service: &'static str,
    amount: u64,
    priority: i64,
    expires_at: Option<i64>,
    created_at: i64,
    used: u64,
    reserved: u64,
    remaining: u64,
    expired_amount: u64,
    voided_amount: u64,
    expired: bool,
    voided: bool,
}

impl ModelRecord {
    fn spendable(&self) -> u64 {
        if self.expired || self.voided {
            0
        } else {
            self.remaining
        }
    }

    /// Status as SPEC section 5 lists them: voided, expired (something expired or still held
    /// after expiry), depleted (nothing left, nothing reserved), else active.
    fn status(&self) -> CreditStatus {
        if self.voided {
            CreditStatus::Voided
        } else if self.expired && (self.expired_amount > 0 || self.reserved > 0) {
            CreditStatus::Expired
        } else if self.remaining == 0 && self.reserved == 0 {
            CreditStatus::Depleted
        } else {
            CreditStatus::Active
        }
    }

    /// Puts held credits back: on a voided record they are voided, on an expired one expired.
    fn give_back(&mut self, credits: u64) {
        self.reserved -= credits;
        if self.voided {
            self.voided_amount += credits;
        } else if self.expired {
            self.expired_amount += credits;
        } else {
            self.remaining += credits;
        }
    }
}

#[derive(Debug, Clone)]
struct ModelHold {
    id: String,
    credits: u64,
    captured: u64,
    /// (record index, credits), in burn-down order.
    allocations: Vec<(usize, u64)>,
    expires_at: i64,
    status: ReservationStatus,
}

#[derive(Debug, Clone, Default)]
struct Model {
    now: i64,
    records: Vec<ModelRecord>,
    holds: Vec<ModelHold>,
}

/// SPEC section 6: service-specific before `any`, then higher priority, then earliest expiry
/// (never-expiring last), then oldest, then id.
fn burn_down_order(a: &ModelRecord, b: &ModelRecord) -> Ordering {
    let a_any = a.service == SERVICE_ANY;
    let b_any = b.service == SERVICE_ANY;
    let expiry = match (a.expires_at, b.expires_at) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    a_any
        .cmp(&b_any)
        .then(b.priority.cmp(&a.priority))
        .then(expiry)
        .then(a.created_at.cmp(&b.created_at))
        .then(a.id.cmp(&b.id))
}

impl Model {
    /// Advances to `now` one due event at a time: the earliest first, a hold before a record at
    /// the same instant.
    fn settle(&mut self) {
        loop {
            let hold_due = self
                .holds
                .iter()
                .enumerate()
                .filter(|(_, h)| h.status == ReservationStatus::Held && h.expires_at <= self.now)
                .map(|(i, h)| (h.expires_at, 0, i))
                .min();
            let record_due = self
                .records
                .iter()
                .enumerate()
                .filter(|(_, r)| !r.expired && !r.voided)
                .filter_map(|(i, r)| r.expires_at.map(|at| (at, 1, i)))
                .filter(|(at, _, _)| *at <= self.now)
                .min();
            let next = match (hold_due, record_due) {
                (None, None) => return,
                (Some(h), None) => h,
                (None, Some(r)) => r,
                (Some(h), Some(r)) => h.min(r),
            };
            match next {
                (_, 0, index) => {
                    let allocations = self.holds[index].allocations.clone();
                    for (record, credits) in allocations {
                        self.records[record].give_back(credits);
                    }
                    self.holds[index].status = ReservationStatus::Expired;
                }
                (_, _, index) => {
                    let record = &mut self.records[index];
                    record.expired_amount += record.remaining;
                    record.remaining = 0;
                    record.expired = true;
                }
            }
        }
    }

    fn applies(record: &ModelRecord, service: &str) -> bool {
        record.service == service || record.service == SERVICE_ANY
    }

    fn available(&self, service: &str) -> u64 {
        self.records.iter().filter(|r| Model::applies(r, service)).map(ModelRecord::spendable).sum()
    }

    fn plan(&self, service: &str, credits: u64) -> Result<Vec<(usize, u64)>, Rejection> {
        let available = self.available(service);
        if available < credits {
            return Err(Rejection::InsufficientCredits { available, required: credits });
        }
        let mut candidates: Vec<usize> = (0..self.records.len())
            .filter(|&i| Model::applies(&self.records[i], service))
            .filter(|&i| self.records[i].spendable() > 0)
            .collect();
        candidates.sort_by(|&a, &b| burn_down_order(&self.records[a], &self.records[b]));
        let mut plan = Vec::new();
        let mut left = credits;
        for index in candidates {
            if left == 0 {
                break;
            }
            let take = left.min(self.records[index].remaining);
            plan.push((index, take));
            left -= take;
        }
        Ok(plan)
    }

    fn allocations(&self, plan: &[(usize, u64)]) -> Vec<Allocation> {
        plan.iter()
            .map(|&(index, credits)| Allocation {
                credit_id: self.records[index].id.clone(),
                credits,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a sequence.

/// Rejections compare by kind only, except insufficient credits, which compare fully.
fn same_rejection(actual: &Rejection, expected: &Rejection) -> bool {
    match (actual, expected) {
        (Rejection::NotFound(_), Rejection::NotFound(_)) => true,
        (Rejection::Validation(_), Rejection::Validation(_)) => true,
        (Rejection::InvalidState(_), Rejection::InvalidState(_)) => true,
        (Rejection::DuplicateReference(_), Rejection::DuplicateReference(_)) => true,
        (a, b) => a == b,
    }
}

fn check_outcome<T: PartialEq + std::fmt::Debug>(
    actual: &Result<T, Rejection>,
    expected: &Result<T, Rejection>,
) -> Result<(), TestCaseError> {
    match (actual, expected) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(a), Err(b)) => prop_assert!(same_rejection(a, b), "rejection {:?} != {:?}", a, b),
        (a, b) => prop_assert!(false, "outcome {:?}, model {:?}", a, b),
    }
    Ok(())
}

/// The record fields the ledger determines, replayed from entries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Replayed {
    amount: u64,
    used: u64,
    reserved: u64,
    remaining: u64,
    expired_amount: u64,
    voided_amount: u64,
}

impl Replayed {
    fn of(record: &CreditRecord) -> Replayed {
        Replayed {
            amount: record.amount,
            used: record.used,
            reserved: record.reserved,
            remaining: record.remaining,
            expired_amount: record.expired_amount,
            voided_amount: record.voided_amount,
        }
    }
}

fn replay(
    replayed: &mut HashMap<String, Replayed>,
    entries: &[LedgerEntry],
) -> Result<(), TestCaseError> {
    for entry in entries {
        prop_assert_eq!(&entry.account_id, ACCOUNT);
        prop_assert!(entry.credits > 0, "an entry without credits: {:?}", entry);
        let record = replayed.entry(entry.credit_id.clone()).or_default();
        let credits = entry.credits;
        let underflow =
            || TestCaseError::fail(format!("entry takes more than there is: {entry:?}"));
        match entry.entry_type {
            EntryType::Purchase | EntryType::Grant => {
                prop_assert_eq!(record.amount, 0, "second creation entry {:?}", entry);
                record.amount = credits;
                record.remaining = credits;
            }
            EntryType::Usage => {
                record.remaining = record.remaining.checked_sub(credits).ok_or_else(underflow)?;
                record.used += credits;
            }
            EntryType::Hold => {
                record.remaining = record.remaining.checked_sub(credits).ok_or_else(underflow)?;
                record.reserved += credits;
            }
            EntryType::Capture => {
                record.reserved = record.reserved.checked_sub(credits).ok_or_else(underflow)?;
                record.used += credits;
            }
            EntryType::Release => {
                record.reserved = record.reserved.checked_sub(credits).ok_or_else(underflow)?;
                record.remaining += credits;
            }
            EntryType::Expiry => {
                record.remaining = record.remaining.checked_sub(credits).ok_or_else(underflow)?;
                record.expired_amount += credits;
            }
            EntryType::Void => {
                record.remaining = record.remaining.checked_sub(credits).ok_or_else(underflow)?;
                record.voided_amount += credits;
            }
        }
        prop_assert_eq!(
            entry.remaining_after,
            record.remaining,
            "remaining_after does not follow from the ledger: {:?}",
            entry
        );
    }
    Ok(())
}

/// Compares a (settled) book with the model: records, holds, balance.
fn check_against_model(view: &Book, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(view.records.len(), model.records.len());
    for (record, expected) in view.records.iter().zip(&model.records) {
        let sum = record.used
            + record.reserved
            + record.remaining
            + record.expired_amount
            + record.voided_amount;
        prop_assert_eq!(record.amount, sum, "equation of {:?}", record);
        prop_assert_eq!(&record.id, &expected.id);
        prop_assert_eq!(record.amount, expected.amount, "amount of {}", &record.id);
        prop_assert_eq!(record.used, expected.used, "used of {}", &record.id);
        prop_assert_eq!(record.reserved, expected.reserved, "reserved of {}", &record.id);
        prop_assert_eq!(record.remaining, expected.remaining, "remaining of {}", &record.id);
        prop_assert_eq!(
            record.expired_amount,
            expected.expired_amount,
            "expired_amount of {}",
            &record.id
        );
        prop_assert_eq!(
            record.voided_amount,
            expected.voided_amount,
            "voided_amount of {}",
            &record.id
        );
        prop_assert_eq!(record.expired, expected.expired, "expired of {}", &record.id);
        prop_assert_eq!(record.voided, expected.voided, "voided of {}", &record.id);
        prop_assert_eq!(record.status(), expected.status(), "status of {}", &record.id);
    }

    prop_assert_eq!(view.holds.len(), model.holds.len());
    for (hold, expected) in view.holds.iter().zip(&model.holds) {
        prop_assert_eq!(&hold.id, &expected.id);
        prop_assert_eq!(hold.status, expected.status, "status of {}", &hold.id);
        prop_assert_eq!(hold.credits, expected.credits, "credits of {}", &hold.id);
        prop_assert_eq!(hold.captured, expected.captured, "captured of {}", &hold.id);
        prop_assert_eq!(hold.expires_at.micros(), expected.expires_at);
        prop_assert_eq!(hold.status_at(Timestamp::from_micros(model.now)), expected.status);
    }
    // What is reserved on each record is what its held reservations hold on it.
    for (index, record) in model.records.iter().enumerate() {
        let held: u64 = model
            .holds
            .iter()
            .filter(|h| h.status == ReservationStatus::Held)
            .flat_map(|h| h.allocations.iter())
            .filter(|(r, _)| *r == index)
            .map(|(_, credits)| credits)
            .sum();
        prop_assert_eq!(record.reserved, held, "reserved of {} vs holds", &record.id);
    }

    let balance = view.balance();
    let available: u64 = model.records.iter().map(ModelRecord::spendable).sum();
    let reserved: u64 = model.records.iter().map(|r| r.reserved).sum();
    prop_assert_eq!(balance.available, available, "balance available");
    prop_assert_eq!(balance.reserved, reserved, "balance reserved");
    let mut by_service: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for record in model.records.iter().filter(|r| r.remaining > 0 || r.reserved > 0) {
        let entry = by_service.entry(record.service.to_string()).or_default();
        entry.0 += record.spendable();
        entry.1 += record.reserved;
    }
    let actual_by_service: BTreeMap<String, (u64, u64)> = balance
        .by_service
        .iter()
        .map(|(service, b)| (service.clone(), (b.available, b.reserved)))
        .collect();
    prop_assert_eq!(actual_by_service, by_service, "balance by service");
    let next_expiry = model
        .records
        .iter()
        .filter(|r| r.spendable() > 0)
        .filter_map(|r| r.expires_at.map(|at| (at, r.id.clone(), r.spendable())))
        .min();
    let actual_next_expiry =
        balance.next_expiry.map(|n| (n.expires_at.micros(), n.credit_id, n.remaining));
    prop_assert_eq!(actual_next_expiry, next_expiry, "next expiry");
    for service in USAGE_SERVICES.iter().chain(&[SERVICE_ANY]) {
        prop_assert_eq!(
            view.available(service),
            model.available(service),
            "available to {}",
            service
        );
    }
    Ok(())
}

struct Run {
    book: Book,
    model: Model,
    replayed: HashMap<String, Replayed>,
    next_id: usize,
}

impl Run {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.model.now)
    }

    /// Ids that do not sort in creation order, so the id tie-break is exercised.
    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{:04}", 9999 - self.next_id)
    }

    /// Mostly a reservation still held (settling or capturing it is the interesting case),
    /// sometimes any reservation, or one that does not exist.
    fn hold_id(&self, pick: usize) -> String {
        let held: Vec<&ModelHold> =
            self.model.holds.iter().filter(|h| h.status == ReservationStatus::Held).collect();
        if !pick.is_multiple_of(4) && !held.is_empty() {
            return held[(pick / 4) % held.len()].id.clone();
        }
        let index = (pick / 4) % (self.model.holds.len() + 1);
        match self.model.holds.get(index) {
            Some(hold) => hold.id.clone(),
            None => "res_missing".to_string(),
        }
    }

    fn step(&mut self, command: &Command) -> Result<(), TestCaseError> {
        let actor = Actor::default();
        if let Command::Advance { micros, .. } = command {
            self.model.now += micros;
        }
        let now = self.now();
        let before = self.book.clone();
        let mut settled = self.book.clone();
        let mut settle_effects = Effects::default();
        settled.settle(now, &mut settle_effects);
        self.model.settle();

        let mut effects = Effects::default();
        // Whether the command is rejected, so it must change nothing beyond settling.
        let rejected: bool;
        match command {
            Command::Credit { kind, service, amount, priority, expires_in } => {
                let id = self.fresh_id("credit");
                let expires_at = expires_in.map(|d| self.model.now + d);
                let record = CreditRecord {
                    id: id.clone(),
                    account_id: ACCOUNT.to_string(),
                    amount: *amount,
                    used: 0,
                    reserved: 0,
                    remaining: *amount,
                    expired_amount: 0,
                    voided_amount: 0,
                    expires_at: expires_at.map(Timestamp::from_micros),
                    service: RECORD_SERVICES[*service].to_string(),
                    description: None,
                    kind: *kind,
                    priority: *priority,
                    reference: None,
                    expired: false,
                    voided: false,
                    created_at: now,
                    updated_at: now,
                };
                let actual = self
                    .book
                    .create_credit(record, now, &mut effects)
                    .map(|index| self.book.records[index].id.clone());
                let amount_invalid = !(1..=CREDITS_MAX).contains(amount);
                let expired_already = matches!(expires_at, Some(at) if at <= self.model.now);
                let expected = if amount_invalid || expired_already {
                    Err(Rejection::Validation(String::new()))
                } else {
                    self.model.records.push(ModelRecord {
                        id: id.clone(),
                        service: RECORD_SERVICES[*service],
                        amount: *amount,
                        priority: *priority,
                        expires_at,
                        created_at: self.model.now,
                        used: 0,
                        reserved: 0,
                        remaining: *amount,
                        expired_amount: 0,
                        voided_amount: 0,
                        expired: false,
                        voided: false,
                    });
                    Ok(id)
                };
                check_outcome(&actual, &expected)?;
                rejected = expected.is_err();
            }
            Command::Usage { service, credits } => {
                let service = USAGE_SERVICES[*service];
                let credits = credits.resolve(self.model.available(service), 1);
                let charge = UsageCharge {
                    usage_id: self.fresh_id("use"),
                    service: service.to_string(),
                    credits,
                    actor,
                };
                let actual = self.book.record_usage(&charge, now, &mut effects);
                let expected = self.model.plan(service, credits).map(|plan| {
                    let allocations = self.model.allocations(&plan);
                    for (index, take) in plan {
                        let record = &mut self.model.records[index];
                        record.remaining -= take;
                        record.used += take;
                    }
                    (allocations, self.model.available(service))
                });
                check_outcome(&actual, &expected)?;
                if let Ok((allocations, _)) = &expected {
                    // One usage entry per allocation, in order.
                    let entries: Vec<Allocation> = effects.entries[settle_effects.entries.len()..]
                        .iter()
                        .map(|e| {
                            assert_eq!(e.entry_type, EntryType::Usage);
                            assert_eq!(e.usage_id.as_ref(), Some(&charge.usage_id));
                            Allocation { credit_id: e.credit_id.clone(), credits: e.credits }
                        })
                        .collect();
                    prop_assert_eq!(&entries, allocations);
                }
                rejected = expected.is_err();
            }
            Command::Hold { service, credits, ttl_seconds } => {
                let service = USAGE_SERVICES[*service];
                let credits = credits.resolve(self.model.available(service), 1);
                let request = HoldRequest {
                    reservation_id: self.fresh_id("res"),
                    service: service.to_string(),
                    credits,
                    ttl_seconds: *ttl_seconds,
                    actor,
                };
                let actual = self
                    .book
                    .hold(&request, now, &mut effects)
                    .map(|index| self.book.holds[index].allocations.clone());
                let expected = self.model.plan(service, credits).map(|plan| {
                    let allocations = self.model.allocations(&plan);
                    for &(index, take) in &plan {
                        let record = &mut self.model.records[index];
                        record.remaining -= take;
                        record.reserved += take;
                    }
                    self.model.holds.push(ModelHold {
                        id: request.reservation_id.clone(),
                        credits,
                        captured: 0,
                        allocations: plan,
                        expires_at: self.model.now + i64::try_from(*ttl_seconds).unwrap() * SECOND,
                        status: ReservationStatus::Held,
                    });
                    allocations
                });
                check_outcome(&actual, &expected)?;
                rejected = expected.is_err();
            }
            Command::Capture { pick, credits } => {
                let id = self.hold_id(*pick);
                let usage_id = self.fresh_id("use");
                let model_hold = self.model.holds.iter().position(|h| h.id == id);
                let held = model_hold.map_or(0, |i| self.model.holds[i].credits);
                let credits = credits.map(|c| c.resolve(held, 0));
                let actual = self.book.capture(&id, credits, &usage_id, &actor, now, &mut effects);
                let expected = match model_hold {
                    None => Err(Rejection::NotFound(String::new())),
                    Some(i) if self.model.holds[i].status != ReservationStatus::Held => {
                        Err(Rejection::InvalidState(String::new()))
                    }
                    Some(i) => {
                        let capture = credits.unwrap_or(held);
                        if capture == 0 || capture > held {
                            Err(Rejection::Validation(String::new()))
                        } else {
                            let mut left = capture;
                            let mut captured = Vec::new();
                            for (record_index, allocated) in self.model.holds[i].allocations.clone()
                            {
                                let take = left.min(allocated);
                                left -= take;
                                let record = &mut self.model.records[record_index];
                                if take > 0 {
                                    record.reserved -= take;
                                    record.used += take;
                                    captured.push(Allocation {
                                        credit_id: record.id.clone(),
                                        credits: take,
                                    });
                                }
                                record.give_back(allocated - take);
                            }
                            let hold = &mut self.model.holds[i];
                            hold.captured = capture;
                            hold.status = ReservationStatus::Captured;
                            Ok(captured)
                        }
                    }
                };
                check_outcome(&actual, &expected)?;
                rejected = expected.is_err();
            }
            Command::Release { pick } => {
                let id = self.hold_id(*pick);
                let actual = self.book.release(&id, now, &mut effects);
                let expected = match self.model.holds.iter().position(|h| h.id == id) {
                    None => Err(Rejection::NotFound(String::new())),
                    Some(i) if self.model.holds[i].status != ReservationStatus::Held => {
                        Err(Rejection::InvalidState(String::new()))
                    }
                    Some(i) => {
                        for (record, credits) in self.model.holds[i].allocations.clone() {
                            self.model.records[record].give_back(credits);
                        }
                        self.model.holds[i].status = ReservationStatus::Released;
                        Ok(())
                    }
                };
                check_outcome(&actual, &expected)?;
                rejected = expected.is_err();
            }
            Command::Void { pick } => {
                let index = pick % (self.model.records.len() + 1);
                let id = self
                    .model
                    .records
                    .get(index)
                    .map_or("credit_missing".to_string(), |r| r.id.clone());
                let actual = self
                    .book
                    .void(&id, &actor, now, &mut effects)
                    .map(|index| self.book.records[index].id.clone());
                let expected = match self.model.records.get_mut(index) {
                    None => Err(Rejection::NotFound(String::new())),
                    Some(record) if record.spendable() == 0 => {
                        Err(Rejection::InvalidState(String::new()))
                    }
                    Some(record) => {
                        record.voided_amount += record.remaining;
                        record.remaining = 0;
                        record.voided = true;
                        Ok(id)
                    }
                };
                check_outcome(&actual, &expected)?;
                rejected = expected.is_err();
            }
            Command::Advance { sweep, .. } => {
                if *sweep {
                    self.book.settle(now, &mut effects);
                }
                rejected = false;
            }
        }

        // An operation first applies what time made due, exactly as a sweep would. A rejection
        // changes nothing beyond that; one found before settling (validation) may not settle.
        if rejected {
            let unsettled = self.book.records == before.records
                && self.book.holds == before.holds
                && effects.entries.is_empty();
            let only_settled = self.book.records == settled.records
                && self.book.holds == settled.holds
                && effects.entries == settle_effects.entries;
            prop_assert!(unsettled || only_settled, "a rejection changed something");
        } else if !matches!(command, Command::Advance { sweep: false, .. }) {
            prop_assert!(effects.entries.len() >= settle_effects.entries.len());
            prop_assert_eq!(
                &effects.entries[..settle_effects.entries.len()],
                &settle_effects.entries[..],
                "the operation did not settle first"
            );
        }
        // Entries are in time order, none from the future.
        for pair in effects.entries.windows(2) {
            prop_assert!(pair[0].created_at <= pair[1].created_at, "entries out of order");
        }
        for entry in &effects.entries {
            prop_assert!(entry.created_at <= now, "entry from the future {:?}", entry);
        }
        // Every change is reported, so the store persists it.
        for (index, record) in self.book.records.iter().enumerate() {
            if before.records.get(index) != Some(record) {
                prop_assert!(
                    effects.records_changed.contains(&index),
                    "record {} changed but is not reported",
                    &record.id
                );
            }
        }
        for (index, hold) in self.book.holds.iter().enumerate() {
            if before.holds.get(index) != Some(hold) {
                prop_assert!(
                    effects.holds_changed.contains(&index),
                    "hold {} changed but is not reported",
                    &hold.id
                );
            }
        }

        // The persisted ledger replays to the persisted records.
        replay(&mut self.replayed, &effects.entries)?;
        for record in &self.book.records {
            prop_assert_eq!(
                self.replayed.get(&record.id).copied(),
                Some(Replayed::of(record)),
                "ledger replay of {}",
                &record.id
            );
        }
        let used: u64 = self.book.records.iter().map(|r| r.used).sum();
        let usage_and_capture: u64 = self.replayed.values().map(|r| r.used).sum();
        prop_assert_eq!(used, usage_and_capture, "usage credits and used");

        // A read: a settled copy. Settling it again changes nothing.
        let mut view = self.book.clone();
        let mut view_effects = Effects::default();
        view.settle(now, &mut view_effects);
        let mut again = Effects::default();
        let settled_view = view.clone();
        view.settle(now, &mut again);
        prop_assert!(again.entries.is_empty(), "settle is not idempotent");
        prop_assert_eq!(&view.records, &settled_view.records);
        let mut view_replayed = self.replayed.clone();
        replay(&mut view_replayed, &view_effects.entries)?;
        for record in &view.records {
            prop_assert_eq!(
                view_replayed.get(&record.id).copied(),
                Some(Replayed::of(record)),
                "ledger replay of {} in a read",
                &record.id
            );
        }
        check_against_model(&view, &self.model)
    }
}

fn run(commands: &[Command]) -> Result<(), TestCaseError> {
    let mut run = Run {
        book: Book::new(ACCOUNT),
        model: Model { now: 1_700_000_000 * SECOND, ..Model::default() },
        replayed: HashMap::new(),
        next_id: 0,
    };
    for (number, command) in commands.iter().enumerate() {
        run.step(command)
            .map_err(|error| TestCaseError::fail(format!("step {number} {command:?}: {error}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        // Integration tests have no lib.rs beside them: keep failures next to this file.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn book_matches_model(
        // A few records first, so that most sequences have something to spend.
        setup in proptest::collection::vec(credit_command(), 0..6),
        commands in proptest::collection::vec(command(), 1..100),
    ) {
        run(&[setup, commands].concat())?;
    }
}
