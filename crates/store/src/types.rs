//! The values the store takes and gives: commands, outcomes, rows and pages.

use std::collections::BTreeMap;

use credits_core::{
    Actor, Allocation, CreditKind, CreditRecord, Rejection, Reservation, Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoTopUp {
    pub threshold: u64,
    pub amount: u64,
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub low_balance_threshold: Option<u64>,
    pub expiring_soon_days: u32,
    pub auto_top_up: Option<AutoTopUp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// `balance.low` was announced and has not re-armed (available rose above the threshold).
    pub low_balance_fired: bool,
    /// `topup.requested` likewise.
    pub top_up_fired: bool,
}

#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub low_balance_threshold: Option<u64>,
    pub expiring_soon_days: Option<u32>,
    pub auto_top_up: Option<AutoTopUp>,
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub name: Option<Option<String>>,
    pub external_id: Option<Option<String>>,
    pub low_balance_threshold: Option<Option<u64>>,
    pub expiring_soon_days: Option<u32>,
    pub auto_top_up: Option<Option<AutoTopUp>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub unit_cost: u64,
    pub operations: BTreeMap<String, u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct ServicePatch {
    pub name: Option<String>,
    pub unit_cost: Option<u64>,
    /// Replaces the whole operations map when given.
    pub operations: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone)]
pub struct NewCredit {
    pub account_id: String,
    pub amount: u64,
    pub service: String,
    pub description: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub kind: CreditKind,
    pub priority: i64,
    pub reference: Option<String>,
    pub actor: Actor,
}

/// How a usage is priced: an explicit amount (operators only), or the catalog.
#[derive(Debug, Clone)]
pub enum Cost {
    Explicit(u64),
    Catalog { operation: Option<String>, quantity: u64 },
}

#[derive(Debug, Clone)]
pub struct NewUsage {
    pub account_id: String,
    pub service: String,
    pub operation: Option<String>,
    pub quantity: u64,
    pub cost: Cost,
    pub actor: Actor,
    /// Opaque text (the API stores JSON there).
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub id: String,
    pub account_id: String,
    pub service: String,
    pub operation: Option<String>,
    pub quantity: u64,
    pub credits: u64,
    pub allocations: Vec<Allocation>,
    pub actor: Actor,
    pub metadata: Option<String>,
    pub balance_after: u64,
    pub reservation_id: Option<String>,
    pub created_at: Timestamp,
    /// When the usage drew from exactly one record (its only allocation), what that record had
    /// left afterwards: the usage's ledger entry is then kept in the usage row instead of a
    /// `ledger` row (see `Reader::ledger`). `None` for a usage whose entries are `ledger` rows
    /// (several records, a captured hold, a usage written before this column) or that drew
    /// nothing.
    pub remaining_after: Option<u64>,
}

impl UsageRecord {
    /// The record of the ledger entry kept in the usage row, if it keeps one (see
    /// [`UsageRecord::remaining_after`]).
    pub fn entry_credit_id(&self) -> Option<&str> {
        match (self.remaining_after, self.allocations.as_slice()) {
            (Some(_), [only]) => Some(only.credit_id.as_str()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewReservation {
    pub account_id: String,
    pub service: String,
    pub credits: u64,
    pub ttl_seconds: u64,
    pub actor: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub account_id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: credits_core::access::Role,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    pub email: Option<String>,
    pub name: Option<Option<String>>,
    pub role: Option<credits_core::access::Role>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// `None` makes an operator key.
    pub account_id: Option<String>,
    pub member_id: Option<String>,
    pub name: String,
    /// The scopes asked for; `None` takes the default: the member's role scopes for a
    /// member-bound key, every account scope for an account key, every scope for an operator key.
    pub scopes: Option<Vec<String>>,
    /// The creating key's scopes, which a default never exceeds (`None`: no ceiling).
    pub ceiling: Option<Vec<String>>,
    pub secret_hash: [u8; 32],
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct NewBudget {
    pub account_id: String,
    pub name: String,
    pub scope: credits_core::budget::BudgetScope,
    pub period: credits_core::budget::Period,
    pub limit: u64,
    pub enforcement: credits_core::budget::Enforcement,
    pub thresholds: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct BudgetPatch {
    pub name: Option<String>,
    pub limit: Option<u64>,
    pub enforcement: Option<credits_core::budget::Enforcement>,
    pub thresholds: Option<Vec<u32>>,
}

/// Which account an account-bound caller may touch; operators touch any (`None`).
pub type AccountScope = Option<String>;

#[derive(Debug, Clone)]
pub enum Command {
    CreateAccount(NewAccount),
    UpdateAccount {
        id: String,
        patch: AccountPatch,
        scope: AccountScope,
    },
    CreateService {
        id: String,
        name: String,
        unit_cost: u64,
        operations: BTreeMap<String, u64>,
    },
    UpdateService {
        id: String,
        patch: ServicePatch,
    },
    CreateCredit(NewCredit),
    VoidCredit {
        credit_id: String,
        scope: AccountScope,
        actor: Actor,
    },
    RecordUsage(NewUsage),
    CreateReservation(NewReservation),
    CaptureReservation {
        id: String,
        credits: Option<u64>,
        scope: AccountScope,
        actor: Actor,
    },
    ReleaseReservation {
        id: String,
        scope: AccountScope,
        actor: Actor,
    },
    /// Applies due hold and credit expiries and forgets idempotency keys older than 24 h.
    Sweep,
    CreateMember {
        account_id: String,
        email: String,
        name: Option<String>,
        role: credits_core::access::Role,
    },
    UpdateMember {
        id: String,
        patch: MemberPatch,
        scope: AccountScope,
    },
    /// Removes a member and revokes the keys bound to it.
    DeleteMember {
        id: String,
        scope: AccountScope,
    },
    CreateApiKey(NewApiKey),
    RevokeApiKey {
        id: String,
        scope: AccountScope,
    },
    /// Records when keys were last used (batched off the request path).
    TouchApiKeys {
        used: Vec<(String, Timestamp)>,
    },
    CreateBudget(NewBudget),
    UpdateBudget {
        id: String,
        patch: BudgetPatch,
        scope: AccountScope,
    },
    DeleteBudget {
        id: String,
        scope: AccountScope,
    },
    CreateWebhookEndpoint {
        account_id: Option<String>,
        url: String,
        events: Vec<String>,
        secret_sealed: Vec<u8>,
    },
    DeleteWebhookEndpoint {
        id: String,
        scope: AccountScope,
    },
    /// Records attempts the dispatcher made (and schedules the retries).
    RecordAttempts {
        results: Vec<AttemptResult>,
    },
    /// Schedules a new attempt of an event to an endpoint now (manual redelivery).
    Redeliver {
        endpoint_id: String,
        event_id: String,
        scope: AccountScope,
    },
    /// Sets the operator admin key (id `key_admin`) to the key with this SHA-256 hash.
    SetAdminKey {
        secret_hash: [u8; 32],
        prefix: String,
    },
    /// Starts a dashboard session: the SHA-256 of its id, of the key it signed in with, and the
    /// CSRF token the page must echo. Kept in the database, so every node (and a restarted one)
    /// knows it.
    CreateSession {
        id_hash: [u8; 32],
        key_hash: [u8; 32],
        csrf_token: String,
        expires_at: Timestamp,
    },
    /// Ends a dashboard session.
    DeleteSession {
        id_hash: [u8; 32],
    },
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Account(Account),
    Service(Service),
    Credit(CreditRecord),
    Usage(UsageRecord),
    Reservation(Reservation),
    Swept {
        expired_holds: usize,
        expired_credits: usize,
    },
    AdminKeySet,
    Member(Member),
    ApiKey(ApiKey),
    Budget(credits_core::budget::Budget),
    /// A member or budget was deleted.
    Deleted {
        id: String,
    },
    Touched,
    WebhookEndpoint(WebhookEndpoint),
    Delivery(Delivery),
    AttemptsRecorded,
    SessionCreated,
    SessionDeleted,
    Rejected(Rejection),
    /// The idempotency key was used before with another request.
    IdempotencyConflict,
}

/// The caller's idempotency key and a hash of its request (method, path and body).
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub request_hash: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub idempotency: Option<Idempotency>,
    pub command: Command,
}

/// An HTTP answer in stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Executed {
    pub rendered: Rendered,
    /// The answer was stored by an earlier request with the same idempotency key.
    pub replayed: bool,
    /// The outcome itself, absent on replay.
    pub outcome: Option<Outcome>,
}

/// A page of a list, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where to continue, if there is more: the page's last item.
    pub next: Option<Position>,
}

impl<T> Page<T> {
    /// The page of `rows` (read with one more than `limit`, to know whether more follow).
    pub(crate) fn ending(
        mut rows: Vec<(i64, T)>,
        limit: usize,
        position: impl Fn(&(i64, T)) -> Position,
    ) -> Page<T> {
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(position)
        } else {
            None
        };
        Page { items: rows.into_iter().map(|(_, item)| item).collect(), next }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: usize,
    /// Continue with the items after this one.
    pub before: Option<Position>,
}

/// An item's place in a list, newest first. Most lists are in `seq` (insertion) order; usage and
/// the ledger are in time order, `created_at` then `seq`, so that a page filtered by time reads
/// only its own items through an index whatever the length of the history (SPEC section 10).
/// Their positions carry `created_at`; a position without it, given to a list in time order,
/// stands before every item (see `Reader::page_in_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub created_at: Option<i64>,
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub account_id: Option<String>,
    pub member_id: Option<String>,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct CreditFilter {
    pub account_id: Option<String>,
    pub service: Option<String>,
    pub status: Option<credits_core::CreditStatus>,
}

#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub account_id: Option<String>,
    pub service: Option<String>,
    pub member_id: Option<String>,
    pub api_key_id: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    pub account_id: Option<String>,
    pub credit_id: Option<String>,
    pub entry_type: Option<credits_core::EntryType>,
    pub member_id: Option<String>,
    pub api_key_id: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// A ledger entry as stored, with its id.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub id: String,
    pub entry: credits_core::LedgerEntry,
}

/// What an event carries in `data`; the API renders it as JSON.
#[derive(Debug, Clone)]
pub enum EventData {
    Credit(CreditRecord),
    Reservation(Reservation),
    Usage(UsageRecord),
    /// `balance.low` and `topup.requested`: where available credits stand.
    Balance {
        account_id: String,
        available: u64,
        threshold: u64,
        top_up: Option<AutoTopUp>,
    },
    /// `budget.threshold_reached` and `budget.exceeded`.
    Budget {
        budget: credits_core::budget::Budget,
        threshold: u32,
        spent: u64,
    },
}

/// An event as stored: `data` is rendered JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub account_id: String,
    pub data: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    /// `None`: an operator endpoint, which gets every account's events.
    pub account_id: Option<String>,
    pub url: String,
    /// Event types, or `*`.
    pub events: Vec<String>,
    /// The signing secret, sealed (encrypted) by the webhooks crate; never readable via the API.
    pub secret_sealed: Vec<u8>,
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl WebhookEndpoint {
    pub fn wants(&self, account_id: &str, event_type: &str) -> bool {
        self.disabled_at.is_none()
            && self.account_id.as_deref().is_none_or(|own| own == account_id)
            && self.events.iter().any(|e| e == "*" || e == event_type)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        match text {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One delivery attempt of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub attempt: u32,
    pub status: DeliveryStatus,
    pub response_code: Option<u16>,
    pub duration_ms: Option<u64>,
    pub created_at: Timestamp,
    /// When the attempt is due (pending), or when the next one is (failed with a retry left).
    pub next_attempt_at: Option<Timestamp>,
}

/// A pending attempt that is due, with all the dispatcher needs to make it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub endpoint: WebhookEndpoint,
    pub event: Event,
}

/// What became of an attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery_id: String,
    pub succeeded: bool,
    pub response_code: Option<u16>,
    pub duration_ms: u64,
    /// The receiver answered 410 Gone: disable the endpoint, no retry.
    pub disable_endpoint: bool,
    /// When to try again after a failure; `None`: give up.
    pub retry_at: Option<Timestamp>,
}

/// Filters of a usage summary.
#[derive(Debug, Clone, Default)]
pub struct SummaryFilter {
    pub account_id: Option<String>,
    pub service: Option<String>,
    pub member_id: Option<String>,
    pub api_key_id: Option<String>,
}

/// Usage of one hour and one combination of service, operation, member and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub hour: Timestamp,
    pub service: String,
    pub operation: Option<String>,
    pub member_id: Option<String>,
    pub api_key_id: Option<String>,
    pub credits: u64,
    pub count: u64,
}
