//! The values of the ledger: credit records, reservations, ledger entries and rejections.

use crate::constants::CREDITS_MAX;

/// An instant, in microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }
    pub const fn micros(self) -> i64 {
        self.0
    }
    pub fn plus_seconds(self, seconds: u64) -> Timestamp {
        let delta = i64::try_from(seconds).unwrap_or(i64::MAX / 2_000_000);
        Timestamp(self.0.saturating_add(delta.saturating_mul(1_000_000)))
    }
}

/// The service id that makes a credit record spendable on every service.
pub const SERVICE_ANY: &str = "any";

/// Checks that an amount is a valid credit amount: 1 to 2^53 - 1.
pub fn credits_valid(amount: u64) -> bool {
    (1..=CREDITS_MAX).contains(&amount)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditKind {
    Purchase,
    Grant,
}

impl CreditKind {
    /// Every value, in the order the API documents them; `parse` reads `as_str` back.
    pub const ALL: [CreditKind; 2] = [CreditKind::Purchase, CreditKind::Grant];

    pub fn as_str(self) -> &'static str {
        match self {
            CreditKind::Purchase => "purchase",
            CreditKind::Grant => "grant",
        }
    }
    pub fn parse(text: &str) -> Option<CreditKind> {
        CreditKind::ALL.into_iter().find(|value| value.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditStatus {
    Active,
    Depleted,
    Expired,
    Voided,
}

impl CreditStatus {
    pub const ALL: [CreditStatus; 4] =
        [CreditStatus::Active, CreditStatus::Depleted, CreditStatus::Expired, CreditStatus::Voided];

    pub fn as_str(self) -> &'static str {
        match self {
            CreditStatus::Active => "active",
            CreditStatus::Depleted => "depleted",
            CreditStatus::Expired => "expired",
            CreditStatus::Voided => "voided",
        }
    }
    pub fn parse(text: &str) -> Option<CreditStatus> {
        CreditStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Who caused a change: the member and the API key, either may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub member_id: Option<String>,
    pub api_key_id: Option<String>,
}

/// One credit record: a purchase or a grant, and how much of it went where.
///
/// Always `amount = used + reserved + remaining + expired_amount + voided_amount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRecord {
    pub id: String,
    pub account_id: String,
    pub amount: u64,
    pub used: u64,
    pub reserved: u64,
    pub remaining: u64,
    pub expired_amount: u64,
    pub voided_amount: u64,
    pub expires_at: Option<Timestamp>,
    pub service: String,
    pub description: Option<String>,
    pub kind: CreditKind,
    pub priority: i64,
    pub reference: Option<String>,
    /// Set once the record's expiry has been applied (its remaining moved to `expired_amount`).
    pub expired: bool,
    /// Set once the record has been voided.
    pub voided: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CreditRecord {
    pub fn status(&self) -> CreditStatus {
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

    /// Open records can still change through spending, holds or expiry: the store keeps them in
    /// the account's active set so that a debit never scans history.
    pub fn open(&self) -> bool {
        self.remaining > 0 || self.reserved > 0
    }

    /// Whether the record can pay for usage of `service`.
    pub fn applies_to(&self, service: &str) -> bool {
        self.service == service || self.service == SERVICE_ANY
    }

    pub fn expires_by(&self, now: Timestamp) -> bool {
        matches!(self.expires_at, Some(at) if at <= now)
    }

    /// The equation of SPEC section 5. A broken equation is a bug, never a user error.
    pub fn assert_equation(&self) {
        let sum = self
            .used
            .checked_add(self.reserved)
            .and_then(|s| s.checked_add(self.remaining))
            .and_then(|s| s.checked_add(self.expired_amount))
            .and_then(|s| s.checked_add(self.voided_amount));
        assert!(sum == Some(self.amount), "credit equation broken: {self:?}");
        assert!(self.amount <= CREDITS_MAX, "credit amount too large: {self:?}");
        assert!(!(self.expired && self.remaining > 0), "expired with remaining: {self:?}");
        assert!(!(self.voided && self.remaining > 0), "voided with remaining: {self:?}");
    }

    /// The burn-down order: service-specific before `any`, then higher priority, then earliest
    /// expiry (never-expiring last), then oldest, then id.
    pub fn burn_down_key(&self) -> (bool, std::cmp::Reverse<i64>, bool, i64, i64, &str) {
        (
            self.service == SERVICE_ANY,
            std::cmp::Reverse(self.priority),
            self.expires_at.is_none(),
            self.expires_at.map_or(0, Timestamp::micros),
            self.created_at.micros(),
            self.id.as_str(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub credit_id: String,
    pub credits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Held,
    Captured,
    Released,
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Captured => "captured",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }
    pub fn parse(text: &str) -> Option<ReservationStatus> {
        match text {
            "held" => Some(ReservationStatus::Held),
            "captured" => Some(ReservationStatus::Captured),
            "released" => Some(ReservationStatus::Released),
            "expired" => Some(ReservationStatus::Expired),
            _ => None,
        }
    }
}

/// A two-phase hold on credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: String,
    pub account_id: String,
    pub service: String,
    pub credits: u64,
    pub captured: u64,
    pub status: ReservationStatus,
    pub expires_at: Timestamp,
    pub allocations: Vec<Allocation>,
    pub actor: Actor,
    pub usage_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Reservation {
    /// A held reservation whose time is up reads as expired, whether or not it was swept.
    pub fn status_at(&self, now: Timestamp) -> ReservationStatus {
        if self.status == ReservationStatus::Held && self.expires_at <= now {
            ReservationStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Purchase,
    Grant,
    Usage,
    Hold,
    Capture,
    Release,
    Expiry,
    Void,
}

impl EntryType {
    pub const ALL: [EntryType; 8] = [
        EntryType::Purchase,
        EntryType::Grant,
        EntryType::Usage,
        EntryType::Hold,
        EntryType::Capture,
        EntryType::Release,
        EntryType::Expiry,
        EntryType::Void,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Purchase => "purchase",
            EntryType::Grant => "grant",
            EntryType::Usage => "usage",
            EntryType::Hold => "hold",
            EntryType::Capture => "capture",
            EntryType::Release => "release",
            EntryType::Expiry => "expiry",
            EntryType::Void => "void",
        }
    }
    pub fn parse(text: &str) -> Option<EntryType> {
        EntryType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// One change to one credit record. Entries are appended, never rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub account_id: String,
    pub credit_id: String,
    pub entry_type: EntryType,
    pub credits: u64,
    pub remaining_after: u64,
    pub usage_id: Option<String>,
    pub reservation_id: Option<String>,
    pub actor: Actor,
    pub created_at: Timestamp,
}

/// Why an operation changed nothing. Ordered roughly by the precedence the checks run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A named object does not exist (or belongs to another account).
    NotFound(String),
    /// The request is well formed but its values are not acceptable.
    Validation(String),
    /// The object is not in a state that allows the operation.
    InvalidState(String),
    /// The applicable available credits are short.
    InsufficientCredits { available: u64, required: u64 },
    /// A credit record with the same reference exists on this account.
    DuplicateReference(String),
    /// A blocking budget would be passed.
    BudgetExceeded { budget_id: String, limit: u64, spent: u64, required: u64 },
}
