//! Deterministic simulation of the core and the store (issue 8), after TigerBeetle's VOPR.
//!
//! Goal: find any sequence of writes, clock movements, storage failures and crashes after which
//! the store disagrees with a simple model of the ledger, charges an idempotency key twice,
//! loses an acknowledged write, keeps a trace of a failed one, or breaks a record's equation.
//!
//! Method: one seeded PRNG drives everything, so a seed replays the same run exactly. The
//! workload runs on a real SQLite file (no mock) through the writer, not HTTP: purchases and
//! grants with expiries, single usages and batches of usages (some mixed with other commands),
//! holds, captures and releases, voids and sweeps over three accounts, each write with an
//! idempotency key that is sometimes an old one again (same body: a replay; another body: a
//! conflict; past 24 h: a new write). The writer runs on an injected clock that the workload
//! advances, often exactly onto an expiry instant. Before some writes a storage fault is armed
//! (`credits_store::Fault`): a failing statement, a commit that fails, or a commit that lands
//! but is reported failed; and sometimes the store is dropped and opened again from its file (a
//! crash between transactions). Every answer is compared with what the model predicts. A write
//! answered with an error must have left no trace (retried with its key, it executes afresh),
//! except after a lost commit answer, where retrying every request with its key must replay each
//! exactly once. After each reopen, every thousand operations and at the end, the whole state is
//! checked: every record as the store reads it equals the model's, every record's equation holds
//! and its ledger entries replay to its row, per account the usages add up to what the records
//! used, every key's usages are counted exactly once, and the stored idempotency answers are the
//! model's. The run ends with a digest of the final state: the same seed gives the same digest.
//!
//! `SIM_SEED=<n>` replays a seed (default: random, printed), `SIM_OPS=<n>` sets the number of
//! operations (default 10,000), `SIM_DIR` where the database goes (default: the temp directory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Instant;

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

use credits_core::{
    Actor, CreditKind, CreditStatus, Rejection, ReservationStatus, Timestamp, CREDITS_MAX,
    IDEMPOTENCY_TTL_SECONDS, SERVICE_ANY,
};
use credits_store::{
    Command, Cost, EventData, Executed, Fault, Faults, Hooks, Idempotency, NewAccount, NewCredit,
    NewReservation, NewUsage, Outcome, Rendered, Renderer, ServicePatch, Store, WriteRequest,
    WriterHandle,
};

const SECOND: i64 = 1_000_000;
const TTL: i64 = IDEMPOTENCY_TTL_SECONDS * SECOND;
/// 2026-01-01T00:00:00Z, where the simulated clock starts.
const EPOCH: i64 = 1_767_225_600 * SECOND;
const ACCOUNTS: usize = 3;
const SCOPE: &str = "sim";
/// Services a credit record can be for.
const RECORD_SERVICES: [&str; 3] = ["sms", "email", SERVICE_ANY];
/// Services usage and holds can be for: `voice` has no records of its own, only `any`.
const USAGE_SERVICES: [&str; 3] = ["sms", "email", "voice"];
/// Percent of writes that get a storage fault armed.
const FAULT_PERCENT: u64 = 10;
/// Operations between two full checks of the state.
const CHECK_EVERY: u64 = 1000;
/// Every ledger entry, in its place: the `ledger` rows and the entries usage rows keep (a usage
/// drawn from one record).
const LEDGER: &str = "SELECT seq AS place, credit_id, type, credits FROM ledger \
    UNION ALL SELECT entry_seq, credit_id, 'usage', credits FROM usage \
    WHERE entry_seq IS NOT NULL";

// ---------------------------------------------------------------------------------------------
// The PRNG: SplitMix64 (`rand_xoshiro`), a named algorithm with a fixed output, so that a seed
// means the same run on every machine and version.

struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SplitMix64::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next() % n
    }
    /// `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(u64::try_from(len).unwrap())).unwrap()
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }
    /// An index into `weights`, each chosen in proportion to its weight.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        for (index, weight) in weights.iter().enumerate() {
            if roll < *weight {
                return index;
            }
            roll -= weight;
        }
        unreachable!()
    }
}

/// FNV-1a, for request hashes and the final digest.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------------
// The workload's operations and how the store answers them.

#[derive(Debug, Clone)]
enum Op {
    Credit {
        account: usize,
        kind: CreditKind,
        service: &'static str,
        amount: u64,
        priority: i64,
        expires_at: Option<i64>,
        reference: String,
    },
    /// Priced explicitly (`credits`), or from the catalog when `quantity` is given.
    Usage {
        account: usize,
        service: &'static str,
        credits: u64,
        quantity: Option<u64>,
    },
    /// Changes a service's unit cost, which the writer keeps in its catalog cache.
    Price {
        service: &'static str,
        unit_cost: u64,
    },
    Hold {
        account: usize,
        service: &'static str,
        credits: u64,
        ttl_seconds: u64,
    },
    /// `hold: None` names a reservation that does not exist.
    Capture {
        hold: Option<usize>,
        credits: Option<u64>,
    },
    Release {
        hold: Option<usize>,
    },
    Void {
        record: Option<usize>,
    },
    Sweep,
}

#[derive(Debug, Clone)]
struct Request {
    key: Option<String>,
    op: Op,
}

impl Request {
    /// The hash of the request's body, as the API hashes method, path and body.
    fn hash(&self) -> [u8; 32] {
        let text = format!("{:?}", self.op);
        let mut hash = [0u8; 32];
        let mut state = Rng::new(fnv(text.as_bytes()));
        for chunk in hash.chunks_mut(8) {
            chunk.copy_from_slice(&state.next().to_le_bytes());
        }
        hash
    }
}

/// Renders outcomes as `kind field=value ...`, which the test parses back. Replays return the
/// stored text, so a replay is compared byte for byte with the first answer.
struct TextRender;

fn allocations_text(allocations: &[credits_core::Allocation]) -> String {
    if allocations.is_empty() {
        return "-".into();
    }
    let parts: Vec<String> =
        allocations.iter().map(|a| format!("{}:{}", a.credit_id, a.credits)).collect();
    parts.join(";")
}

impl Renderer for TextRender {
    fn answer(&self, _command: &Command, outcome: &Outcome) -> Rendered {
        let (status, body) = match outcome {
            Outcome::Credit(r) => (
                201,
                format!(
                    "credit id={} amount={} used={} reserved={} remaining={} expired={} \
                     voided={} status={}",
                    r.id,
                    r.amount,
                    r.used,
                    r.reserved,
                    r.remaining,
                    r.expired_amount,
                    r.voided_amount,
                    r.status().as_str()
                ),
            ),
            Outcome::Usage(u) => (
                201,
                format!(
                    "usage id={} credits={} alloc={} balance={}",
                    u.id,
                    u.credits,
                    allocations_text(&u.allocations),
                    u.balance_after
                ),
            ),
            Outcome::Reservation(h) => (
                200,
                format!(
                    "reservation id={} status={} credits={} captured={} alloc={} expires={} \
                     usage={}",
                    h.id,
                    h.status.as_str(),
                    h.credits,
                    h.captured,
                    allocations_text(&h.allocations),
                    h.expires_at.0,
                    h.usage_id.as_deref().unwrap_or("-")
                ),
            ),
            Outcome::Service(service) => {
                (200, format!("service id={} unit_cost={}", service.id, service.unit_cost))
            }
            Outcome::Swept { .. } => (200, "swept".into()),
            Outcome::Rejected(rejection) => match rejection {
                Rejection::NotFound(_) => (404, "rejected kind=not_found".into()),
                Rejection::Validation(_) => (422, "rejected kind=validation".into()),
                Rejection::InvalidState(_) => (409, "rejected kind=invalid_state".into()),
                Rejection::InsufficientCredits { available, required } => (
                    402,
                    format!("rejected kind=insufficient available={available} required={required}"),
                ),
                Rejection::DuplicateReference(_) => (409, "rejected kind=duplicate".into()),
                Rejection::BudgetExceeded { .. } => (402, "rejected kind=budget".into()),
            },
            Outcome::IdempotencyConflict => (409, "conflict".into()),
            other => (200, format!("other {other:?}")),
        };
        Rendered { status, body: body.into_bytes() }
    }

    fn event_data(&self, _data: &EventData) -> String {
        String::new()
    }
}

/// A rendered answer parsed back.
#[derive(Debug)]
struct Answer {
    kind: String,
    fields: HashMap<String, String>,
}

impl Answer {
    fn parse(body: &[u8]) -> Answer {
        let text = std::str::from_utf8(body).unwrap();
        let mut words = text.split(' ');
        let kind = words.next().unwrap_or_default().to_string();
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Answer { kind, fields }
    }
    fn text(&self, field: &str) -> &str {
        self.fields.get(field).unwrap_or_else(|| panic!("no {field} in {self:?}"))
    }
    fn number(&self, field: &str) -> u64 {
        self.text(field).parse().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// The model: plain counters per record, burn-down by sorting, expiry applied eagerly one due
// instant at a time.

#[derive(Debug, Clone)]
struct ModelRecord {
    id: String,
    account: usize,
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

    /// Held credits come back: to `remaining`, or on to expired or voided.
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

    fn applies(&self, service: &str) -> bool {
        self.service == service || self.service == SERVICE_ANY
    }

    fn equation_holds(&self) -> bool {
        self.used + self.reserved + self.remaining + self.expired_amount + self.voided_amount
            == self.amount
    }
}

#[derive(Debug, Clone)]
struct ModelHold {
    id: String,
    account: usize,
    credits: u64,
    captured: u64,
    /// (record index, credits) in burn-down order.
    allocations: Vec<(usize, u64)>,
    expires_at: i64,
    status: ReservationStatus,
}

/// An answer stored with an idempotency key.
#[derive(Debug, Clone)]
struct ModelKey {
    hash: [u8; 32],
    status: u16,
    body: Vec<u8>,
    created_at: i64,
}

#[derive(Debug, Default)]
struct Model {
    now: i64,
    records: Vec<ModelRecord>,
    holds: Vec<ModelHold>,
    keys: HashMap<String, ModelKey>,
    /// The unit cost of each service in the catalog.
    prices: HashMap<&'static str, u64>,
    references: HashSet<(usize, String)>,
    /// Per account: usage rows and their credits (captures included).
    usage_count: [u64; ACCOUNTS],
    usage_credits: [u64; ACCOUNTS],
    /// Usage rows per idempotency key (a key charges again only once it is older than 24 h).
    charges: HashMap<String, u64>,
}

/// What the model expects of one request.
#[derive(Debug, Clone)]
enum Expected {
    Replay {
        status: u16,
        body: Vec<u8>,
    },
    Conflict,
    Rejected {
        kind: &'static str,
        short: Option<(u64, u64)>,
    },
    Credit {
        account: usize,
        service: &'static str,
        amount: u64,
        priority: i64,
        expires_at: Option<i64>,
    },
    Usage {
        account: usize,
        credits: u64,
        plan: Vec<(usize, u64)>,
        balance_after: u64,
    },
    Hold {
        account: usize,
        credits: u64,
        plan: Vec<(usize, u64)>,
        expires_at: i64,
    },
    Capture {
        hold: usize,
        credits: u64,
    },
    Release {
        hold: usize,
    },
    Void {
        record: usize,
    },
    Price {
        service: &'static str,
        unit_cost: u64,
    },
    Swept,
}

/// Burn-down order: service-specific before `any`, higher priority, earliest expiry (none
/// last), oldest, then id.
fn burn_down_order(a: &ModelRecord, b: &ModelRecord) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let expiry = match (a.expires_at, b.expires_at) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    (a.service == SERVICE_ANY)
        .cmp(&(b.service == SERVICE_ANY))
        .then(b.priority.cmp(&a.priority))
        .then(expiry)
        .then(a.created_at.cmp(&b.created_at))
        .then(a.id.cmp(&b.id))
}

fn rejected(kind: &'static str) -> Expected {
    Expected::Rejected { kind, short: None }
}

impl Model {
    /// Applies every expiry due at `now`, earliest first, a hold before a record at one instant.
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
                    for (record, credits) in self.holds[index].allocations.clone() {
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

    /// The next instant at which something expires, if any.
    fn next_due(&self) -> Option<i64> {
        let holds =
            self.holds.iter().filter(|h| h.status == ReservationStatus::Held).map(|h| h.expires_at);
        let records = self
            .records
            .iter()
            .filter(|r| !r.expired && !r.voided && r.remaining > 0)
            .filter_map(|r| r.expires_at);
        holds.chain(records).filter(|at| *at > self.now).min()
    }

    fn available(&self, account: usize, service: &str) -> u64 {
        self.records
            .iter()
            .filter(|r| r.account == account && r.applies(service))
            .map(ModelRecord::spendable)
            .sum()
    }

    fn plan(
        &self,
        account: usize,
        service: &str,
        credits: u64,
    ) -> Result<Vec<(usize, u64)>, Expected> {
        let available = self.available(account, service);
        if available < credits {
            return Err(Expected::Rejected {
                kind: "insufficient",
                short: Some((available, credits)),
            });
        }
        let mut candidates: Vec<usize> = (0..self.records.len())
            .filter(|&i| self.records[i].account == account && self.records[i].applies(service))
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

    /// What the store must answer to `request` now, in the order of the store's checks.
    fn expect(&self, request: &Request) -> Expected {
        if let Some(key) = &request.key {
            if let Some(stored) = self.keys.get(key).filter(|k| k.created_at > self.now - TTL) {
                if stored.hash == request.hash() {
                    return Expected::Replay { status: stored.status, body: stored.body.clone() };
                }
                return Expected::Conflict;
            }
        }
        match &request.op {
            &Op::Credit {
                account, service, amount, priority, expires_at, ref reference, ..
            } => {
                if self.references.contains(&(account, reference.clone())) {
                    return rejected("duplicate");
                }
                if amount == 0 || amount > CREDITS_MAX {
                    return rejected("validation");
                }
                if expires_at.is_some_and(|at| at <= self.now) {
                    return rejected("validation");
                }
                Expected::Credit { account, service, amount, priority, expires_at }
            }
            &Op::Usage { account, service, credits, quantity } => {
                let Some(price) = self.prices.get(service) else { return rejected("validation") };
                let credits = match quantity {
                    Some(quantity) => price.checked_mul(quantity).unwrap_or(u64::MAX),
                    None => credits,
                };
                if credits > CREDITS_MAX {
                    return rejected("validation");
                }
                match self.plan(account, service, credits) {
                    Ok(plan) => Expected::Usage {
                        account,
                        credits,
                        plan,
                        balance_after: self.available(account, service) - credits,
                    },
                    Err(expected) => expected,
                }
            }
            &Op::Hold { account, service, credits, ttl_seconds } => {
                match self.plan(account, service, credits) {
                    Ok(plan) => Expected::Hold {
                        account,
                        credits,
                        plan,
                        expires_at: self.now + i64::try_from(ttl_seconds).unwrap() * SECOND,
                    },
                    Err(expected) => expected,
                }
            }
            &Op::Capture { hold, credits } => {
                let Some(hold) = hold else { return rejected("not_found") };
                let held = &self.holds[hold];
                if held.status != ReservationStatus::Held {
                    return rejected("invalid_state");
                }
                let credits = credits.unwrap_or(held.credits);
                if credits == 0 || credits > held.credits {
                    return rejected("validation");
                }
                Expected::Capture { hold, credits }
            }
            &Op::Release { hold } => {
                let Some(hold) = hold else { return rejected("not_found") };
                if self.holds[hold].status != ReservationStatus::Held {
                    return rejected("invalid_state");
                }
                Expected::Release { hold }
            }
            &Op::Void { record } => {
                let Some(index) = record else { return rejected("not_found") };
                let record = &self.records[index];
                if record.voided || record.expired || record.remaining == 0 {
                    return rejected("invalid_state");
                }
                Expected::Void { record: index }
            }
            &Op::Price { service, unit_cost } => {
                if !self.prices.contains_key(service) {
                    return rejected("not_found");
                }
                Expected::Price { service, unit_cost }
            }
            Op::Sweep => Expected::Swept,
        }
    }

    fn ids(&self, plan: &[(usize, u64)]) -> String {
        if plan.is_empty() {
            return "-".into();
        }
        let parts: Vec<String> =
            plan.iter().map(|(i, c)| format!("{}:{}", self.records[*i].id, c)).collect();
        parts.join(";")
    }

    /// Checks the store's answer against the expectation; panics on any difference.
    fn check(&self, expected: &Expected, executed: &Executed, must_replay: bool) {
        let body = String::from_utf8_lossy(&executed.rendered.body).into_owned();
        match expected {
            Expected::Replay { status, body: stored } => {
                assert!(executed.replayed, "expected a replay of {stored:?}, got {body}");
                assert_eq!(executed.rendered.status, *status);
                assert_eq!(&executed.rendered.body, stored, "a replay differs from its answer");
                return;
            }
            Expected::Conflict => {
                assert!(!executed.replayed, "a conflict was replayed: {body}");
                assert_eq!(body, "conflict");
                return;
            }
            _ => {}
        }
        assert_eq!(
            executed.replayed, must_replay,
            "replayed is {} for {expected:?}: {body}",
            executed.replayed
        );
        let answer = Answer::parse(&executed.rendered.body);
        let want_kind = match expected {
            Expected::Rejected { .. } => "rejected",
            Expected::Credit { .. } | Expected::Void { .. } => "credit",
            Expected::Usage { .. } => "usage",
            Expected::Hold { .. } | Expected::Capture { .. } | Expected::Release { .. } => {
                "reservation"
            }
            Expected::Price { .. } => "service",
            Expected::Swept => "swept",
            Expected::Replay { .. } | Expected::Conflict => unreachable!(),
        };
        assert_eq!(answer.kind, want_kind, "expected {expected:?}, got {body}");
        match expected {
            Expected::Rejected { kind, short } => {
                assert_eq!(answer.text("kind"), *kind, "expected {expected:?}, got {body}");
                if let Some((available, required)) = short {
                    assert_eq!(answer.number("available"), *available, "{body}");
                    assert_eq!(answer.number("required"), *required, "{body}");
                }
            }
            Expected::Credit { amount, .. } => {
                assert_eq!(answer.number("amount"), *amount, "{body}");
                assert_eq!(answer.number("remaining"), *amount, "{body}");
                assert_eq!(answer.text("status"), "active", "{body}");
            }
            Expected::Usage { credits, plan, balance_after, .. } => {
                assert_eq!(answer.number("credits"), *credits, "{body}");
                assert_eq!(answer.text("alloc"), self.ids(plan), "burn-down differs: {body}");
                assert_eq!(answer.number("balance"), *balance_after, "{body}");
            }
            Expected::Hold { credits, plan, expires_at, .. } => {
                assert_eq!(answer.text("status"), "held", "{body}");
                assert_eq!(answer.number("credits"), *credits, "{body}");
                assert_eq!(answer.text("alloc"), self.ids(plan), "burn-down differs: {body}");
                assert_eq!(answer.text("expires"), expires_at.to_string(), "{body}");
            }
            Expected::Capture { hold, credits } => {
                assert_eq!(answer.text("id"), self.holds[*hold].id, "{body}");
                assert_eq!(answer.text("status"), "captured", "{body}");
                assert_eq!(answer.number("captured"), *credits, "{body}");
            }
            Expected::Release { hold } => {
                assert_eq!(answer.text("id"), self.holds[*hold].id, "{body}");
                assert_eq!(answer.text("status"), "released", "{body}");
            }
            Expected::Void { record } => {
                let record = &self.records[*record];
                assert_eq!(answer.text("id"), record.id, "{body}");
                assert_eq!(answer.text("status"), "voided", "{body}");
                assert_eq!(answer.number("voided"), record.remaining, "{body}");
            }
            Expected::Price { service, unit_cost } => {
                assert_eq!(answer.text("id"), *service, "{body}");
                assert_eq!(answer.number("unit_cost"), *unit_cost, "{body}");
            }
            Expected::Swept | Expected::Replay { .. } | Expected::Conflict => {}
        }
    }

    /// Applies a checked answer.
    fn apply(&mut self, request: &Request, expected: Expected, rendered: &Rendered) {
        let answer = Answer::parse(&rendered.body);
        match expected {
            Expected::Replay { .. } | Expected::Conflict => return,
            Expected::Rejected { .. } | Expected::Swept => {}
            Expected::Credit { account, service, amount, priority, expires_at } => {
                let Op::Credit { reference, .. } = &request.op else { unreachable!() };
                self.references.insert((account, reference.clone()));
                self.records.push(ModelRecord {
                    id: answer.text("id").to_string(),
                    account,
                    service,
                    amount,
                    priority,
                    expires_at,
                    created_at: self.now,
                    used: 0,
                    reserved: 0,
                    remaining: amount,
                    expired_amount: 0,
                    voided_amount: 0,
                    expired: false,
                    voided: false,
                });
            }
            Expected::Usage { account, credits, plan, .. } => {
                for (index, take) in plan {
                    self.records[index].remaining -= take;
                    self.records[index].used += take;
                }
                self.usage_count[account] += 1;
                self.usage_credits[account] += credits;
                if let Some(key) = &request.key {
                    *self.charges.entry(key.clone()).or_default() += 1;
                }
            }
            Expected::Hold { account, credits, plan, expires_at } => {
                for &(index, take) in &plan {
                    self.records[index].remaining -= take;
                    self.records[index].reserved += take;
                }
                self.holds.push(ModelHold {
                    id: answer.text("id").to_string(),
                    account,
                    credits,
                    captured: 0,
                    allocations: plan,
                    expires_at,
                    status: ReservationStatus::Held,
                });
            }
            Expected::Capture { hold, credits } => {
                let mut left = credits;
                for (index, held) in self.holds[hold].allocations.clone() {
                    let take = left.min(held);
                    let record = &mut self.records[index];
                    record.reserved -= take;
                    record.used += take;
                    left -= take;
                    if held > take {
                        record.give_back(held - take);
                    }
                }
                let hold = &mut self.holds[hold];
                hold.captured = credits;
                hold.status = ReservationStatus::Captured;
                self.usage_count[hold.account] += 1;
                self.usage_credits[hold.account] += credits;
            }
            Expected::Release { hold } => {
                for (index, held) in self.holds[hold].allocations.clone() {
                    self.records[index].give_back(held);
                }
                self.holds[hold].status = ReservationStatus::Released;
            }
            Expected::Price { service, unit_cost } => {
                self.prices.insert(service, unit_cost);
            }
            Expected::Void { record } => {
                let record = &mut self.records[record];
                record.voided_amount += record.remaining;
                record.remaining = 0;
                record.voided = true;
            }
        }
        if let Some(key) = &request.key {
            let stored = ModelKey {
                hash: request.hash(),
                status: rendered.status,
                body: rendered.body.clone(),
                created_at: self.now,
            };
            self.keys.insert(key.clone(), stored);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The simulator.

#[derive(Debug, Default)]
struct Stats {
    ops: u64,
    writes: u64,
    requests: u64,
    replays: u64,
    conflicts: u64,
    rejections: u64,
    armed: u64,
    statement_faults: u64,
    before_commit_faults: u64,
    after_commit_faults: u64,
    failed_requests: u64,
    retried: u64,
    resolved: u64,
    crashes: u64,
    checks: u64,
    clock_advances: u64,
}

struct Sim {
    seed: u64,
    ops: u64,
    rng: Rng,
    dir: PathBuf,
    clock: Arc<AtomicI64>,
    faults: Faults,
    runtime: tokio::runtime::Runtime,
    store: Option<(Store, WriterHandle)>,
    accounts: Vec<String>,
    model: Model,
    /// Every request sent with a key, for sending again.
    history: Vec<Request>,
    next_key: u64,
    next_reference: u64,
    stats: Stats,
    /// The operation the last full check ran after.
    last_full_check: u64,
    finished: bool,
    /// `SIM_TRACE=1`: print every request, what the model expected and what the store answered.
    trace: bool,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation failed at operation {} (database kept in {}); replay with:\n  \
                 SIM_SEED={} SIM_OPS={} cargo test -p credits-store --test simulation -- \
                 simulation --nocapture",
                self.stats.ops,
                self.dir.display(),
                self.seed,
                self.ops
            );
        } else if self.finished {
            self.store.take();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Sim {
    fn new(seed: u64, ops: u64) -> Sim {
        let base =
            std::env::var_os("SIM_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("credits-sim-{seed}-{}-{ops}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut sim = Sim {
            seed,
            ops,
            rng: Rng::new(seed),
            dir,
            clock: Arc::new(AtomicI64::new(EPOCH)),
            faults: Faults::new(),
            runtime,
            store: None,
            accounts: Vec::new(),
            model: Model {
                now: EPOCH,
                prices: USAGE_SERVICES.iter().map(|s| (*s, 1)).collect(),
                ..Model::default()
            },
            history: Vec::new(),
            next_key: 0,
            next_reference: 0,
            stats: Stats::default(),
            last_full_check: 0,
            finished: false,
            trace: std::env::var_os("SIM_TRACE").is_some(),
        };
        sim.open();
        sim.setup();
        sim
    }

    fn open(&mut self) {
        let clock = self.clock.clone();
        let hooks = Hooks {
            clock: Some(Arc::new(move || Timestamp(clock.load(AtomicOrdering::SeqCst)))),
            faults: Some(self.faults.clone()),
        };
        let path = self.dir.join("credits.db");
        let opened = Store::open_sqlite_with(&path, Arc::new(TextRender), hooks).unwrap();
        self.store = Some(opened);
    }

    fn store(&self) -> &Store {
        &self.store.as_ref().unwrap().0
    }

    /// Drops the store (its writer finishes and closes the file), opens it again and checks
    /// the state.
    fn crash(&mut self) {
        self.reopen();
        self.check_after_reopening("after reopening");
    }

    /// Balances after every reopening; everything when the last full check is 100 operations
    /// old, so that long runs stay linear (a loss not caught now is caught at the next one).
    fn check_after_reopening(&mut self, when: &str) {
        if self.stats.ops >= self.last_full_check + CHECK_EVERY / 10 {
            self.check_state(when);
        } else {
            self.check_balances();
        }
    }

    fn reopen(&mut self) {
        let (store, writer) = self.store.take().unwrap();
        drop(store);
        writer.join();
        self.open();
        self.stats.crashes += 1;
        if self.trace {
            eprintln!("[{}] crash and reopen", self.stats.ops);
        }
    }

    fn write(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Vec<Result<Executed, credits_store::StoreError>> {
        let count = requests.len();
        let results = self.runtime.block_on(self.store().write_many(requests));
        let results = results.unwrap_or_else(|e| panic!("the writer stopped: {e}"));
        assert_eq!(results.len(), count);
        results
    }

    fn setup(&mut self) {
        let mut requests = Vec::new();
        for service in USAGE_SERVICES {
            requests.push(WriteRequest {
                idempotency: None,
                command: Command::CreateService {
                    id: service.into(),
                    name: service.into(),
                    unit_cost: 1,
                    operations: BTreeMap::new(),
                },
            });
        }
        for _ in 0..ACCOUNTS {
            let command = Command::CreateAccount(NewAccount::default());
            requests.push(WriteRequest { idempotency: None, command });
        }
        for result in self.write(requests) {
            if let Some(Outcome::Account(account)) = result.unwrap().outcome {
                self.accounts.push(account.id);
            }
        }
        assert_eq!(self.accounts.len(), ACCOUNTS);
    }

    fn command(&self, op: &Op) -> Command {
        let actor = Actor::default();
        match op {
            Op::Credit { account, kind, service, amount, priority, expires_at, reference } => {
                Command::CreateCredit(NewCredit {
                    account_id: self.accounts[*account].clone(),
                    amount: *amount,
                    service: (*service).into(),
                    description: None,
                    expires_at: expires_at.map(Timestamp),
                    kind: *kind,
                    priority: *priority,
                    reference: Some(reference.clone()),
                    actor,
                })
            }
            Op::Usage { account, service, credits, quantity } => Command::RecordUsage(NewUsage {
                account_id: self.accounts[*account].clone(),
                service: (*service).into(),
                operation: None,
                quantity: quantity.unwrap_or(1),
                cost: match quantity {
                    Some(quantity) => Cost::Catalog { operation: None, quantity: *quantity },
                    None => Cost::Explicit(*credits),
                },
                actor,
                metadata: None,
            }),
            Op::Hold { account, service, credits, ttl_seconds } => {
                Command::CreateReservation(NewReservation {
                    account_id: self.accounts[*account].clone(),
                    service: (*service).into(),
                    credits: *credits,
                    ttl_seconds: *ttl_seconds,
                    actor,
                })
            }
            Op::Capture { hold, credits } => Command::CaptureReservation {
                id: self.hold_id(*hold),
                credits: *credits,
                scope: None,
                actor,
            },
            Op::Release { hold } => {
                Command::ReleaseReservation { id: self.hold_id(*hold), scope: None, actor }
            }
            Op::Void { record } => Command::VoidCredit {
                credit_id: record
                    .map_or("credit_none".into(), |i| self.model.records[i].id.clone()),
                scope: None,
                actor,
            },
            Op::Price { service, unit_cost } => Command::UpdateService {
                id: (*service).into(),
                patch: ServicePatch { unit_cost: Some(*unit_cost), ..ServicePatch::default() },
            },
            Op::Sweep => Command::Sweep,
        }
    }

    fn hold_id(&self, hold: Option<usize>) -> String {
        hold.map_or("res_none".into(), |i| self.model.holds[i].id.clone())
    }

    fn write_request(&self, request: &Request) -> WriteRequest {
        let mut command = self.command(&request.op);
        // Usages carry their key, so that each key's charges can be counted in the database.
        if let (Command::RecordUsage(new), Some(key)) = (&mut command, &request.key) {
            new.metadata = Some(key.clone());
        }
        let idempotency = request.key.as_ref().map(|key| Idempotency {
            scope: SCOPE.into(),
            key: key.clone(),
            request_hash: request.hash(),
        });
        WriteRequest { idempotency, command }
    }

    // -- Generating the workload. --

    fn new_key(&mut self) -> String {
        self.next_key += 1;
        format!("k{}", self.next_key)
    }

    fn duration(&mut self) -> i64 {
        let choices = [1, SECOND, 10 * SECOND, 60 * SECOND, 300 * SECOND, 3600 * SECOND];
        self.rng.pick(&choices)
    }

    /// An amount to spend, biased toward the edges of what is available.
    fn spend_amount(&mut self, available: u64) -> u64 {
        match self.rng.weighted(&[30, 40, 2, 2, 3, 2, 20]) {
            0 => 1,
            1 => self.rng.range(2, 20),
            2 => available,
            3 => available.saturating_sub(1),
            4 => available + 1,
            5 => available / 2,
            _ => self.rng.range(1, 100),
        }
        .max(1)
    }

    fn op_credit(&mut self) -> Op {
        let account = self.rng.index(ACCOUNTS);
        let amount = match self.rng.weighted(&[5, 30, 45, 15, 3, 2]) {
            0 => 1,
            1 => self.rng.range(2, 100),
            2 => self.rng.range(100, 10_000),
            3 => 1_000_000,
            4 => 0,
            _ => CREDITS_MAX + 1,
        };
        let expires_at = match self.rng.weighted(&[40, 40, 10, 5, 5]) {
            0 => None,
            1 => Some(self.model.now + self.duration()),
            // On an instant something else happens at.
            2 => self.model.next_due().or(Some(self.model.now + SECOND)),
            3 => Some(self.model.now + 25 * 3600 * SECOND),
            _ => Some(self.model.now),
        };
        let reference = if self.next_reference > 0 && self.rng.chance(3) {
            format!("ref{}", self.rng.range(1, self.next_reference))
        } else {
            self.next_reference += 1;
            format!("ref{}", self.next_reference)
        };
        Op::Credit {
            account,
            kind: if self.rng.chance(50) { CreditKind::Purchase } else { CreditKind::Grant },
            service: self.rng.pick(&RECORD_SERVICES),
            amount,
            priority: self.rng.pick(&[0, 0, 0, 1, -1, 5]),
            expires_at,
            reference,
        }
    }

    fn op_usage(&mut self) -> Op {
        let account = self.rng.index(ACCOUNTS);
        let service = if self.rng.chance(2) { "nosuch" } else { self.rng.pick(&USAGE_SERVICES) };
        let available = self.model.available(account, service);
        let credits = match self.rng.weighted(&[94, 4, 2]) {
            0 => self.spend_amount(available),
            1 => 0,
            _ => CREDITS_MAX + 1,
        };
        let quantity = self.rng.chance(50).then(|| self.rng.pick(&[1, 2, 5, 1 << 60]));
        Op::Usage { account, service, credits, quantity }
    }

    fn op_hold(&mut self) -> Op {
        let account = self.rng.index(ACCOUNTS);
        let service = self.rng.pick(&USAGE_SERVICES);
        let available = self.model.available(account, service);
        let credits = self.spend_amount(available).min(CREDITS_MAX);
        let ttl_seconds = self.rng.pick(&[1, 10, 60, 300, 3600, 86_400]);
        Op::Hold { account, service, credits, ttl_seconds }
    }

    /// A hold to settle: mostly one still held, sometimes any, rarely none.
    fn pick_hold(&mut self) -> Option<usize> {
        let held: Vec<usize> = (0..self.model.holds.len())
            .filter(|&i| self.model.holds[i].status == ReservationStatus::Held)
            .collect();
        if self.rng.chance(3) || self.model.holds.is_empty() {
            return None;
        }
        if !held.is_empty() && self.rng.chance(85) {
            return Some(held[self.rng.index(held.len())]);
        }
        Some(self.rng.index(self.model.holds.len()))
    }

    fn op_capture(&mut self) -> Op {
        let hold = self.pick_hold();
        let held = hold.map_or(1, |i| self.model.holds[i].credits);
        let credits = match self.rng.weighted(&[40, 20, 20, 10, 5, 5]) {
            0 => None,
            1 => Some(held),
            2 => Some(self.rng.range(1, held.max(1))),
            3 => Some(1),
            4 => Some(0),
            _ => Some(held + 1),
        };
        Op::Capture { hold, credits }
    }

    fn op_void(&mut self) -> Op {
        if self.model.records.is_empty() || self.rng.chance(3) {
            return Op::Void { record: None };
        }
        let open: Vec<usize> = (0..self.model.records.len())
            .filter(|&i| self.model.records[i].spendable() > 0)
            .collect();
        if !open.is_empty() && self.rng.chance(70) {
            return Op::Void { record: Some(open[self.rng.index(open.len())]) };
        }
        Op::Void { record: Some(self.rng.index(self.model.records.len())) }
    }

    /// One keyed request: usually a new key, sometimes an old request again, sometimes an old
    /// key with another body.
    fn keyed(&mut self, op: impl FnOnce(&mut Sim) -> Op) -> Request {
        if !self.history.is_empty() && self.rng.chance(12) {
            let old = self.history[self.rng.index(self.history.len())].clone();
            if self.rng.chance(70) {
                return old;
            }
            return Request { key: old.key, op: op(self) };
        }
        let op = op(self);
        Request { key: Some(self.new_key()), op }
    }

    fn batch(&mut self) -> Vec<Request> {
        let size = self.rng.range(2, 12);
        let mut batch: Vec<Request> = Vec::new();
        for _ in 0..size {
            let request = match self.rng.weighted(&[70, 10, 10, 10]) {
                0 => self.keyed(Sim::op_usage),
                1 if !batch.is_empty() => batch[self.rng.index(batch.len())].clone(),
                2 => match self.rng.weighted(&[4, 3, 2, 1]) {
                    0 => self.keyed(Sim::op_credit),
                    1 => self.keyed(Sim::op_hold),
                    2 => self.keyed(Sim::op_capture),
                    _ => self.keyed(Sim::op_void),
                },
                _ => {
                    let key = self.new_key();
                    Request { key: Some(key), op: self.op_usage() }
                }
            };
            batch.push(request);
        }
        batch
    }

    // -- Running it. --

    fn step(&mut self) {
        self.stats.ops += 1;
        match self.rng.weighted(&[18, 25, 10, 10, 8, 5, 4, 12, 3, 1, 4, 3]) {
            0 => self.keyed_single(Sim::op_credit),
            1 => self.keyed_single(Sim::op_usage),
            2 => {
                let batch = self.batch();
                self.send(batch);
            }
            3 => self.keyed_single(Sim::op_hold),
            4 => self.keyed_single(Sim::op_capture),
            5 => self.keyed_single(|sim| Op::Release { hold: sim.pick_hold() }),
            6 => self.keyed_single(Sim::op_void),
            7 => self.advance(),
            8 => self.send(vec![Request { key: None, op: Op::Sweep }]),
            9 => self.crash(),
            10 => self.check_balances(),
            _ => self.keyed_single(|sim| Op::Price {
                service: if sim.rng.chance(5) { "nosuch" } else { sim.rng.pick(&USAGE_SERVICES) },
                unit_cost: sim.rng.pick(&[0, 1, 1, 2, 3, 5, 7]),
            }),
        }
        if self.stats.ops.is_multiple_of(CHECK_EVERY) {
            self.check_state("periodic");
        }
    }

    fn keyed_single(&mut self, op: impl FnOnce(&mut Sim) -> Op) {
        let request = self.keyed(op);
        self.send(vec![request]);
    }

    fn advance(&mut self) {
        let now = self.model.now;
        let due = self.model.next_due();
        let to = match self.rng.weighted(&[10, 15, 15, 10, 8, 2, 20, 5, 5]) {
            0 => now + 1,
            1 => now + SECOND,
            2 => now + 30 * SECOND,
            3 => now + 300 * SECOND,
            4 => now + 3600 * SECOND,
            // Past the 24 hours an idempotency key lives.
            5 => now + TTL + self.rng.pick(&[0, 1, SECOND]),
            6 => due.unwrap_or(now + SECOND),
            7 => due.map_or(now + 1, |at| (at - 1).max(now + 1)),
            _ => due.map_or(now + 2, |at| at + 1),
        };
        assert!(to > now);
        self.clock.store(to, AtomicOrdering::SeqCst);
        self.model.now = to;
        self.model.settle();
        if self.trace {
            eprintln!("[{}] clock +{}us", self.stats.ops, to - now);
        }
        self.stats.clock_advances += 1;
    }

    fn arm_fault(&mut self) {
        if !self.rng.chance(FAULT_PERCENT) {
            return;
        }
        let fault = match self.rng.weighted(&[50, 25, 25]) {
            0 => Fault::Statement { after: u32::try_from(self.rng.below(24)).unwrap() },
            1 => Fault::BeforeCommit,
            _ => Fault::AfterCommit,
        };
        self.faults.arm(fault);
        self.stats.armed += 1;
    }

    /// Sends requests as one batch (one transaction), maybe with a fault armed, and checks each
    /// answer against the model.
    fn send(&mut self, requests: Vec<Request>) {
        for request in &requests {
            if request.key.is_some() {
                self.history.push(request.clone());
            }
        }
        self.arm_fault();
        let writes = requests.iter().map(|r| self.write_request(r)).collect();
        let results = self.write(writes);
        let fired = self.faults.disarm();
        if self.trace && fired.is_some() {
            eprintln!("[{}] fault {fired:?} on {requests:?}: {results:?}", self.stats.ops);
        }
        self.stats.writes += 1;
        self.stats.requests += u64::try_from(requests.len()).unwrap();
        match fired {
            None => {}
            Some(Fault::Statement { .. }) => self.stats.statement_faults += 1,
            Some(Fault::BeforeCommit) => self.stats.before_commit_faults += 1,
            Some(Fault::AfterCommit) => self.stats.after_commit_faults += 1,
        }
        if fired == Some(Fault::AfterCommit) {
            for result in &results {
                assert!(result.is_err(), "a lost commit answered {result:?}");
            }
            self.stats.failed_requests += u64::try_from(requests.len()).unwrap();
            self.resolve(requests);
            return;
        }
        let mut failed = Vec::new();
        for (request, result) in requests.into_iter().zip(results) {
            match result {
                Ok(executed) => self.observe(&request, &executed, false),
                Err(error) => {
                    assert!(fired.is_some(), "{request:?} failed with no fault injected: {error}");
                    failed.push(request);
                }
            }
        }
        self.stats.failed_requests += u64::try_from(failed.len()).unwrap();
        if failed.is_empty() {
            return;
        }
        if self.rng.chance(20) {
            self.crash();
        }
        // A failed write left no trace: sent again with its key, it executes afresh (a client
        // may also never send it again, which the next checks cover).
        if self.rng.chance(70) {
            self.stats.retried += u64::try_from(failed.len()).unwrap();
            let writes = failed.iter().map(|r| self.write_request(r)).collect();
            for (request, result) in failed.iter().zip(self.write(writes)) {
                let executed = result.unwrap_or_else(|e| panic!("retry of {request:?}: {e}"));
                self.observe(request, &executed, false);
            }
        }
    }

    /// After a commit that landed but answered an error: every keyed request must replay, once.
    fn resolve(&mut self, requests: Vec<Request>) {
        // The model learns what landed only from the replays: the state is checked after them.
        let crashed = self.rng.chance(30);
        if crashed {
            self.reopen();
        }
        self.stats.resolved += u64::try_from(requests.len()).unwrap();
        let writes = requests.iter().map(|r| self.write_request(r)).collect();
        for (request, result) in requests.iter().zip(self.write(writes)) {
            let executed = result.unwrap_or_else(|e| panic!("resolving {request:?}: {e}"));
            self.observe(request, &executed, request.key.is_some());
        }
        if crashed {
            self.check_after_reopening("after reopening and resolving a lost commit");
        }
    }

    fn observe(&mut self, request: &Request, executed: &Executed, must_replay: bool) {
        let expected = self.model.expect(request);
        if self.trace {
            let body = String::from_utf8_lossy(&executed.rendered.body);
            eprintln!(
                "[{}] {request:?}\n    expected {expected:?}\n    got {body}",
                self.stats.ops
            );
        }
        self.model.check(&expected, executed, must_replay);
        match &expected {
            Expected::Replay { .. } => self.stats.replays += 1,
            Expected::Conflict => self.stats.conflicts += 1,
            Expected::Rejected { .. } => self.stats.rejections += 1,
            _ => {}
        }
        self.model.apply(request, expected, &executed.rendered);
    }

    // -- Checking the whole state. --

    fn check_balances(&mut self) {
        let now = Timestamp(self.model.now);
        let accounts = self.accounts.clone();
        let balances = self
            .runtime
            .block_on(self.store().read(move |reader| {
                accounts.iter().map(|a| reader.balance(a, now)).collect::<Result<Vec<_>, _>>()
            }))
            .unwrap();
        for (account, balance) in balances.iter().enumerate() {
            let records = || self.model.records.iter().filter(|r| r.account == account);
            let available: u64 = records().map(ModelRecord::spendable).sum();
            let reserved: u64 = records().map(|r| r.reserved).sum();
            assert_eq!(balance.available, available, "available of account {account}");
            assert_eq!(balance.reserved, reserved, "reserved of account {account}");
            for service in RECORD_SERVICES {
                let of = || records().filter(|r| r.service == service);
                let available: u64 = of().map(ModelRecord::spendable).sum();
                let reserved: u64 = of().map(|r| r.reserved).sum();
                let read = balance.by_service.get(service).copied().unwrap_or_default();
                assert_eq!((read.available, read.reserved), (available, reserved), "{service}");
            }
        }
    }

    /// Everything the store holds against the model and the invariants.
    fn check_state(&mut self, when: &str) {
        self.stats.checks += 1;
        self.last_full_check = self.stats.ops;
        self.check_balances();
        let now = Timestamp(self.model.now);
        let credit_ids: Vec<String> = self.model.records.iter().map(|r| r.id.clone()).collect();
        let hold_ids: Vec<String> = self.model.holds.iter().map(|h| h.id.clone()).collect();
        let (records, holds) = self
            .runtime
            .block_on(self.store().read(move |reader| {
                let records = credit_ids.iter().map(|id| reader.credit(id, now)).collect::<Result<
                    Vec<_>,
                    _,
                >>(
                )?;
                let holds = hold_ids
                    .iter()
                    .map(|id| reader.reservation(id))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((records, holds))
            }))
            .unwrap();
        for (model, read) in self.model.records.iter().zip(records) {
            assert!(model.equation_holds(), "the model broke an equation: {model:?}");
            let read = read.unwrap_or_else(|| panic!("{when}: record {} is missing", model.id));
            read.assert_equation();
            let fields = |r: (u64, u64, u64, u64, u64)| r;
            assert_eq!(
                fields((
                    read.used,
                    read.reserved,
                    read.remaining,
                    read.expired_amount,
                    read.voided_amount
                )),
                (
                    model.used,
                    model.reserved,
                    model.remaining,
                    model.expired_amount,
                    model.voided_amount
                ),
                "{when}: record {} differs from the model {model:?}",
                model.id
            );
            assert_eq!(read.status(), model.status(), "{when}: status of {}", model.id);
        }
        for (model, read) in self.model.holds.iter().zip(holds) {
            let read = read.unwrap_or_else(|| panic!("{when}: hold {} is missing", model.id));
            assert_eq!(read.status_at(now), model.status, "{when}: status of {}", model.id);
            assert_eq!(read.captured, model.captured, "{when}: captured of {}", model.id);
        }
        self.check_database(when);
    }

    fn database(&self) -> rusqlite::Connection {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        rusqlite::Connection::open_with_flags(self.dir.join("credits.db"), flags).unwrap()
    }

    /// The rows themselves: counts, equations, ledger replays, usage sums, keys.
    fn check_database(&self, when: &str) {
        let db = self.database();
        let account_of: HashMap<&str, usize> =
            self.accounts.iter().enumerate().map(|(i, a)| (a.as_str(), i)).collect();
        // Records: exactly the model's, each with its equation, and its ledger replaying to it.
        let mut rows: HashMap<String, [i64; 6]> = HashMap::new();
        let mut statement = db
            .prepare(
                "SELECT id, amount, used, reserved, remaining, expired_amount, voided_amount \
                 FROM credits",
            )
            .unwrap();
        let found = statement
            .query_map([], |row| {
                let mut values = [0i64; 6];
                for (i, value) in values.iter_mut().enumerate() {
                    *value = row.get(i + 1)?;
                }
                Ok((row.get::<_, String>(0)?, values))
            })
            .unwrap();
        for row in found {
            let (id, [amount, used, reserved, remaining, expired, voided]) = row.unwrap();
            assert_eq!(amount, used + reserved + remaining + expired + voided, "{when}: {id}");
            assert!(used >= 0 && reserved >= 0 && remaining >= 0, "{when}: {id}");
            rows.insert(id, [amount, used, reserved, remaining, expired, voided]);
        }
        assert_eq!(rows.len(), self.model.records.len(), "{when}: records in the database");
        let mut replayed: HashMap<String, [i64; 6]> = HashMap::new();
        let mut statement = db
            .prepare(&format!("SELECT credit_id, type, credits FROM ({LEDGER}) ORDER BY place"))
            .unwrap();
        let entries = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
            })
            .unwrap();
        for entry in entries {
            let (credit_id, entry_type, credits) = entry.unwrap();
            let r = replayed.entry(credit_id.clone()).or_default();
            // [amount, used, reserved, remaining, expired, voided]
            let (from, to) = match entry_type.as_str() {
                "purchase" | "grant" => {
                    r[0] += credits;
                    (None, Some(3))
                }
                "usage" => (Some(3), Some(1)),
                "hold" => (Some(3), Some(2)),
                "capture" => (Some(2), Some(1)),
                "release" => (Some(2), Some(3)),
                "expiry" => (Some(3), Some(4)),
                "void" => (Some(3), Some(5)),
                other => panic!("{when}: ledger entry type {other}"),
            };
            if let Some(from) = from {
                r[from] -= credits;
                assert!(r[from] >= 0, "{when}: ledger of {credit_id} goes below zero");
            }
            if let Some(to) = to {
                r[to] += credits;
            }
        }
        for (id, row) in &rows {
            assert_eq!(replayed.get(id), Some(row), "{when}: the ledger of {id} does not replay");
        }
        assert_eq!(replayed.len(), rows.len(), "{when}: ledger entries of unknown records");
        // Usage: per account, the usages add up to what the records used; per key, one charge.
        let mut count = [0u64; ACCOUNTS];
        let mut credits = [0u64; ACCOUNTS];
        let mut charges: HashMap<String, u64> = HashMap::new();
        let mut statement = db.prepare("SELECT account_id, credits, metadata FROM usage").unwrap();
        let usages = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })
            .unwrap();
        for usage in usages {
            let (account, used, key) = usage.unwrap();
            let account = account_of[account.as_str()];
            count[account] += 1;
            credits[account] += u64::try_from(used).unwrap();
            if let Some(key) = key {
                *charges.entry(key).or_default() += 1;
            }
        }
        assert_eq!(count, self.model.usage_count, "{when}: usages per account");
        assert_eq!(credits, self.model.usage_credits, "{when}: usage credits per account");
        assert_eq!(charges, self.model.charges, "{when}: usages per idempotency key");
        for (account, &used) in credits.iter().enumerate() {
            let records_used: u64 =
                self.model.records.iter().filter(|r| r.account == account).map(|r| r.used).sum();
            assert_eq!(used, records_used, "{when}: account {account} usage against records");
        }
        let holds: i64 =
            db.query_row("SELECT count(*) FROM reservations", [], |row| row.get(0)).unwrap();
        assert_eq!(usize::try_from(holds).unwrap(), self.model.holds.len(), "{when}: holds");
        // Idempotency: every stored answer is the model's; every fresh key of the model is stored.
        let mut statement = db
            .prepare("SELECT key, request_hash, status, body, created_at FROM idempotency WHERE scope = ?1")
            .unwrap();
        let stored = statement
            .query_map([SCOPE], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, u16>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .unwrap();
        let mut seen = HashSet::new();
        for row in stored {
            let (key, hash, status, body, created_at) = row.unwrap();
            let model = self.model.keys.get(&key);
            let model =
                model.unwrap_or_else(|| panic!("{when}: key {key} stored, not in the model"));
            assert_eq!(hash, model.hash, "{when}: hash of {key}");
            assert_eq!(
                (status, &body, created_at),
                (model.status, &model.body, model.created_at),
                "{when}: {key}"
            );
            seen.insert(key);
        }
        for (key, model) in &self.model.keys {
            if model.created_at > self.model.now - TTL {
                assert!(seen.contains(key), "{when}: fresh key {key} is not stored");
            }
        }
    }

    /// A digest of the final state with the store's ids replaced by the model's indexes, so
    /// that two runs of one seed compare equal.
    fn digest(&self) -> String {
        let db = self.database();
        let mut text = format!("now={} ", self.model.now);
        for (index, record) in self.model.records.iter().enumerate() {
            let row: (i64, i64, i64, i64, i64, i64, String, i64) = db
                .query_row(
                    "SELECT amount, used, reserved, remaining, expired_amount, voided_amount, \
                     status, created_at FROM credits WHERE id = ?1",
                    [&record.id],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ))
                    },
                )
                .unwrap();
            let _ = write!(text, "r{index}={row:?} ");
        }
        for (index, hold) in self.model.holds.iter().enumerate() {
            let row: (String, i64, i64) = db
                .query_row(
                    "SELECT status, captured, expires_at FROM reservations WHERE id = ?1",
                    [&hold.id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            let _ = write!(text, "h{index}={row:?} ");
        }
        for sql in [
            &format!(
                "SELECT type || ':' || count(*) || ':' || sum(credits) FROM ({LEDGER}) \
                 GROUP BY type ORDER BY type"
            ),
            "SELECT count(*) || ':' || sum(credits) FROM usage",
            "SELECT CAST(count(*) AS TEXT) FROM idempotency",
        ] {
            let mut statement = db.prepare(sql).unwrap();
            let values = statement.query_map([], |r| r.get::<_, String>(0)).unwrap();
            for value in values {
                let _ = write!(text, "{} ", value.unwrap());
            }
        }
        format!("{:016x}", fnv(text.as_bytes()))
    }

    fn run(mut self) -> (String, Stats) {
        let started = Instant::now();
        while self.stats.ops < self.ops {
            self.step();
        }
        self.check_state("at the end");
        let digest = self.digest();
        let s = &self.stats;
        println!(
            "simulation: SIM_SEED={} ops={} writes={} requests={} (replays {}, conflicts {}, \
             rejections {}) faults armed={} injected: statement={} before_commit={} \
             after_commit={} (requests failed {}, retried {}, resolved by key {}) crashes={} \
             clock_advances={} simulated={}s full_checks={} records={} holds={} usages={} \
             digest={} in {:.1}s",
            self.seed,
            s.ops,
            s.writes,
            s.requests,
            s.replays,
            s.conflicts,
            s.rejections,
            s.armed,
            s.statement_faults,
            s.before_commit_faults,
            s.after_commit_faults,
            s.failed_requests,
            s.retried,
            s.resolved,
            s.crashes,
            s.clock_advances,
            (self.model.now - EPOCH) / SECOND,
            s.checks,
            self.model.records.len(),
            self.model.holds.len(),
            self.model.usage_count.iter().sum::<u64>(),
            digest,
            started.elapsed().as_secs_f64()
        );
        self.finished = true;
        let stats = std::mem::take(&mut self.stats);
        (digest, stats)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

#[test]
fn simulation() {
    let seed = env_u64("SIM_SEED").unwrap_or_else(|| {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        u64::try_from(nanos % u128::from(u64::MAX)).unwrap() ^ u64::from(std::process::id())
    });
    let ops = env_u64("SIM_OPS").unwrap_or(10_000);
    println!("simulation: SIM_SEED={seed} SIM_OPS={ops}");
    let (_, stats) = Sim::new(seed, ops).run();
    assert!(stats.ops >= ops);
}

#[test]
fn same_seed_same_digest() {
    let (first, stats) = Sim::new(42, 600).run();
    let (second, _) = Sim::new(42, 600).run();
    assert_eq!(first, second, "one seed, two final states");
    assert!(stats.armed > 0 && stats.crashes > 0);
}
