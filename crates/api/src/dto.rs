//! The JSON shapes of the API (SPEC section 4 and 5), and the conversion from store values.
//! Requests reject unknown fields; responses use camelCase and RFC 3339 UTC timestamps.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use credits_core::{book::Balance, Actor, Allocation, CreditRecord, Reservation, Timestamp};
use credits_store::{Account, AutoTopUp, Service, StoredEntry, UsageRecord};

use crate::extract::format_time;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in a PATCH.
fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoTopUpDto {
    pub threshold: u64,
    pub amount: u64,
    pub service: String,
}

impl From<&AutoTopUp> for AutoTopUpDto {
    fn from(value: &AutoTopUp) -> AutoTopUpDto {
        AutoTopUpDto {
            threshold: value.threshold,
            amount: value.amount,
            service: value.service.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDto {
    #[schema(example = "acct_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub low_balance_threshold: Option<u64>,
    pub expiring_soon_days: u32,
    pub auto_top_up: Option<AutoTopUpDto>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Account> for AccountDto {
    fn from(account: &Account) -> AccountDto {
        AccountDto {
            id: account.id.clone(),
            name: account.name.clone(),
            external_id: account.external_id.clone(),
            low_balance_threshold: account.low_balance_threshold,
            expiring_soon_days: account.expiring_soon_days,
            auto_top_up: account.auto_top_up.as_ref().map(AutoTopUpDto::from),
            created_at: format_time(account.created_at),
            updated_at: format_time(account.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountCreate {
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub low_balance_threshold: Option<u64>,
    /// Default 7.
    pub expiring_soon_days: Option<u32>,
    pub auto_top_up: Option<AutoTopUpDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountPatchRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub low_balance_threshold: Option<Option<u64>>,
    pub expiring_soon_days: Option<u32>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<AutoTopUpDto>)]
    pub auto_top_up: Option<Option<AutoTopUpDto>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDto {
    #[schema(example = "smartcheck")]
    pub id: String,
    pub name: String,
    /// Credits per request when no operation is named.
    pub unit_cost: u64,
    /// Operation name to credits per request.
    pub operations: BTreeMap<String, u64>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Service> for ServiceDto {
    fn from(service: &Service) -> ServiceDto {
        ServiceDto {
            id: service.id.clone(),
            name: service.name.clone(),
            unit_cost: service.unit_cost,
            operations: service.operations.clone(),
            created_at: format_time(service.created_at),
            updated_at: format_time(service.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceCreate {
    /// Lowercase letters, digits, `-` and `_`; not `any`.
    pub id: String,
    pub name: String,
    pub unit_cost: u64,
    #[serde(default)]
    pub operations: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePatchRequest {
    pub name: Option<String>,
    pub unit_cost: Option<u64>,
    /// Replaces all operations.
    pub operations: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditDto {
    #[schema(example = "credit_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    pub account_id: String,
    pub amount: u64,
    pub used: u64,
    pub remaining: u64,
    pub reserved: u64,
    pub expired_amount: u64,
    pub voided_amount: u64,
    pub expires_at: Option<String>,
    /// A service id, or `any`.
    pub service: String,
    pub description: Option<String>,
    /// `purchase` or `grant`.
    pub kind: String,
    pub priority: i64,
    pub reference: Option<String>,
    /// `active`, `depleted`, `expired` or `voided`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&CreditRecord> for CreditDto {
    fn from(record: &CreditRecord) -> CreditDto {
        CreditDto {
            id: record.id.clone(),
            account_id: record.account_id.clone(),
            amount: record.amount,
            used: record.used,
            remaining: record.remaining,
            reserved: record.reserved,
            expired_amount: record.expired_amount,
            voided_amount: record.voided_amount,
            expires_at: record.expires_at.map(format_time),
            service: record.service.clone(),
            description: record.description.clone(),
            kind: record.kind.as_str().to_string(),
            priority: record.priority,
            reference: record.reference.clone(),
            status: record.status().as_str().to_string(),
            created_at: format_time(record.created_at),
            updated_at: format_time(record.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreditCreate {
    /// Required for operator keys.
    pub account_id: Option<String>,
    /// 1 to 9007199254740991.
    pub amount: u64,
    /// A service id, or `any` (the default).
    pub service: Option<String>,
    pub description: Option<String>,
    /// RFC 3339; null or absent never expires.
    pub expires_at: Option<String>,
    /// `purchase` (default) or `grant`.
    pub kind: Option<String>,
    /// Higher is spent first among records of the same service scope. Default 0.
    pub priority: Option<i64>,
    /// The billing system's payment id, unique per account.
    pub reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoidRequest {
    /// Why the record is voided (kept in logs only for now).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationDto {
    pub credit_id: String,
    pub credits: u64,
}

fn allocations(allocations: &[Allocation]) -> Vec<AllocationDto> {
    allocations
        .iter()
        .map(|a| AllocationDto { credit_id: a.credit_id.clone(), credits: a.credits })
        .collect()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorDto {
    pub member_id: Option<String>,
    pub api_key_id: Option<String>,
}

impl From<&Actor> for ActorDto {
    fn from(actor: &Actor) -> ActorDto {
        ActorDto { member_id: actor.member_id.clone(), api_key_id: actor.api_key_id.clone() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDto {
    #[schema(example = "use_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    pub account_id: String,
    pub service: String,
    pub operation: Option<String>,
    pub quantity: u64,
    pub credits: u64,
    pub allocations: Vec<AllocationDto>,
    pub actor: ActorDto,
    pub metadata: Option<BTreeMap<String, String>>,
    /// Available to this service (its own records plus `any`) after the charge.
    pub balance_after: u64,
    /// The reservation this usage captured, if any.
    pub reservation_id: Option<String>,
    pub created_at: String,
}

impl From<&UsageRecord> for UsageDto {
    fn from(usage: &UsageRecord) -> UsageDto {
        UsageDto {
            id: usage.id.clone(),
            account_id: usage.account_id.clone(),
            service: usage.service.clone(),
            operation: usage.operation.clone(),
            quantity: usage.quantity,
            credits: usage.credits,
            allocations: allocations(&usage.allocations),
            actor: ActorDto::from(&usage.actor),
            metadata: usage.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()),
            balance_after: usage.balance_after,
            reservation_id: usage.reservation_id.clone(),
            created_at: format_time(usage.created_at),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageCreate {
    /// Required for operator keys.
    pub account_id: Option<String>,
    pub service: String,
    pub operation: Option<String>,
    /// 1 to 9007199254740991, default 1.
    pub quantity: Option<u64>,
    /// Operators only: attribute the usage to a member.
    pub member_id: Option<String>,
    /// Operators only: the cost, instead of the catalog's.
    pub credits: Option<u64>,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The shape of one batch event (documentation only: events are parsed one by one so that a bad
/// event fails alone).
#[derive(Debug, Clone, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBatchEvent {
    /// Required: each event is idempotent on its own, exactly like `POST /v2/usage` with this
    /// key (the two share one key space).
    pub idempotency_key: String,
    #[serde(flatten)]
    #[schema(inline)]
    pub usage: UsageCreate,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageBatchRequest {
    /// 1 to 1000 independent events, each a `UsageBatchEvent`. Each is validated on its own:
    /// one that is not a valid `UsageBatchEvent` (of any shape, even not an object) gets its own
    /// result with the error `code` and `status` it would have had alone, and the others proceed.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBatchResult {
    pub idempotency_key: Option<String>,
    /// The status this event would have had alone.
    pub status: u16,
    /// Whether the result was replayed from an earlier request with the same key.
    pub replayed: bool,
    #[schema(value_type = Option<UsageDto>)]
    pub usage: Option<serde_json::Value>,
    #[schema(value_type = Option<crate::error::Problem>)]
    pub error: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageBatchResponse {
    pub data: Vec<UsageBatchResult>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationDto {
    #[schema(example = "res_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    pub account_id: String,
    pub service: String,
    pub credits: u64,
    pub captured: u64,
    /// `held`, `captured`, `released` or `expired`.
    pub status: String,
    pub expires_at: String,
    pub allocations: Vec<AllocationDto>,
    pub actor: ActorDto,
    /// The usage a capture created.
    pub usage_id: Option<String>,
    pub created_at: String,
}

impl ReservationDto {
    pub fn at(hold: &Reservation, now: Timestamp) -> ReservationDto {
        ReservationDto {
            id: hold.id.clone(),
            account_id: hold.account_id.clone(),
            service: hold.service.clone(),
            credits: hold.credits,
            captured: hold.captured,
            status: hold.status_at(now).as_str().to_string(),
            expires_at: format_time(hold.expires_at),
            allocations: allocations(&hold.allocations),
            actor: ActorDto::from(&hold.actor),
            usage_id: hold.usage_id.clone(),
            created_at: format_time(hold.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationCreate {
    /// Required for operator keys.
    pub account_id: Option<String>,
    pub service: String,
    pub credits: u64,
    /// 1 to 86400, default 300.
    pub ttl_seconds: Option<u64>,
    /// Operators only: attribute the hold to a member.
    pub member_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaptureRequest {
    /// At most the held credits; default all of them.
    pub credits: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBalanceDto {
    pub available: u64,
    pub reserved: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NextExpiryDto {
    pub credit_id: String,
    pub expires_at: String,
    pub remaining: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceDto {
    pub account_id: String,
    pub available: u64,
    pub reserved: u64,
    /// One entry per service of the account's records; `any` is its own entry.
    pub by_service: BTreeMap<String, ServiceBalanceDto>,
    pub next_expiry: Option<NextExpiryDto>,
    pub as_of: String,
}

impl BalanceDto {
    pub fn new(account_id: String, balance: &Balance, now: Timestamp) -> BalanceDto {
        BalanceDto {
            account_id,
            available: balance.available,
            reserved: balance.reserved,
            by_service: balance
                .by_service
                .iter()
                .map(|(service, b)| {
                    let dto = ServiceBalanceDto { available: b.available, reserved: b.reserved };
                    (service.clone(), dto)
                })
                .collect(),
            next_expiry: balance.next_expiry.as_ref().map(|next| NextExpiryDto {
                credit_id: next.credit_id.clone(),
                expires_at: format_time(next.expires_at),
                remaining: next.remaining,
            }),
            as_of: format_time(now),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntryDto {
    #[schema(example = "le_000000000042")]
    pub id: String,
    pub account_id: String,
    pub credit_id: String,
    /// `purchase`, `grant`, `usage`, `hold`, `capture`, `release`, `expiry` or `void`.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// Always positive.
    pub credits: u64,
    /// The record's remaining after this change.
    pub remaining_after: u64,
    pub usage_id: Option<String>,
    pub reservation_id: Option<String>,
    pub actor: ActorDto,
    pub created_at: String,
}

impl From<&StoredEntry> for LedgerEntryDto {
    fn from(stored: &StoredEntry) -> LedgerEntryDto {
        let entry = &stored.entry;
        LedgerEntryDto {
            id: stored.id.clone(),
            account_id: entry.account_id.clone(),
            credit_id: entry.credit_id.clone(),
            entry_type: entry.entry_type.as_str().to_string(),
            credits: entry.credits,
            remaining_after: entry.remaining_after,
            usage_id: entry.usage_id.clone(),
            reservation_id: entry.reservation_id.clone(),
            actor: ActorDto::from(&entry.actor),
            created_at: format_time(entry.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDto {
    #[schema(example = "mem_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    pub account_id: String,
    pub email: String,
    pub name: Option<String>,
    /// `owner`, `admin`, `member` or `viewer`.
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&credits_store::Member> for MemberDto {
    fn from(member: &credits_store::Member) -> MemberDto {
        MemberDto {
            id: member.id.clone(),
            account_id: member.account_id.clone(),
            email: member.email.clone(),
            name: member.name.clone(),
            role: member.role.as_str().to_string(),
            created_at: format_time(member.created_at),
            updated_at: format_time(member.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberCreate {
    /// Required for operator keys.
    pub account_id: Option<String>,
    pub email: String,
    pub name: Option<String>,
    /// `owner`, `admin`, `member` or `viewer`.
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberPatchRequest {
    pub email: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedDto {
    pub id: String,
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    #[schema(example = "key_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    /// Null for operator keys.
    pub account_id: Option<String>,
    pub member_id: Option<String>,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Only in the answer that created the key; never stored, never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&credits_store::ApiKey> for ApiKeyDto {
    fn from(key: &credits_store::ApiKey) -> ApiKeyDto {
        ApiKeyDto {
            id: key.id.clone(),
            account_id: key.account_id.clone(),
            member_id: key.member_id.clone(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            scopes: key.scopes.clone(),
            created_at: format_time(key.created_at),
            last_used_at: key.last_used_at.map(format_time),
            revoked_at: key.revoked_at.map(format_time),
            secret: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// The account of an account key; omitted by an operator, it makes an operator key.
    pub account_id: Option<String>,
    pub name: String,
    /// Default: the member's role scopes for a member-bound key, else every account scope (or
    /// every scope for an operator key).
    pub scopes: Option<Vec<String>>,
    /// Binds the key to a member: its usage is the member's, its scopes never above the role.
    pub member_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetScopeDto {
    /// `account`, `member`, `apiKey` or `service`.
    #[serde(rename = "type")]
    pub scope_type: String,
    /// The member, key or service id (not for `account`).
    pub id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetDto {
    #[schema(example = "bud_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub scope: BudgetScopeDto,
    /// `day`, `week` (from Monday), `month` (UTC calendar) or `lifetime`.
    pub period: String,
    pub limit: u64,
    /// `block` or `notify`.
    pub enforcement: String,
    pub thresholds: Vec<u32>,
    /// Spent in the current period: usage and held credits in scope.
    pub spent: u64,
    /// The current period's bounds (null for `lifetime`).
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl BudgetDto {
    pub fn at(budget: &credits_core::budget::Budget, now: Timestamp) -> BudgetDto {
        let (start, end) = credits_core::budget::period_bounds(budget.period, now);
        let lifetime = budget.period == credits_core::budget::Period::Lifetime;
        BudgetDto {
            id: budget.id.clone(),
            account_id: budget.account_id.clone(),
            name: budget.name.clone(),
            scope: BudgetScopeDto {
                scope_type: budget.scope.kind().to_string(),
                id: budget.scope.id().map(str::to_string),
            },
            period: budget.period.as_str().to_string(),
            limit: budget.limit,
            enforcement: budget.enforcement.as_str().to_string(),
            thresholds: budget.thresholds.clone(),
            spent: budget.spent_at(now),
            period_start: if lifetime { None } else { Some(format_time(start)) },
            period_end: end.map(format_time),
            created_at: format_time(budget.created_at),
            updated_at: format_time(budget.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetCreate {
    /// Required for operator keys.
    pub account_id: Option<String>,
    pub name: String,
    pub scope: BudgetScopeDto,
    pub period: String,
    pub limit: u64,
    /// `block` (default) or `notify`.
    pub enforcement: Option<String>,
    /// Percentages of the limit, default `[80, 100]`.
    pub thresholds: Option<Vec<u32>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetPatchRequest {
    pub name: Option<String>,
    pub limit: Option<u64>,
    pub enforcement: Option<String>,
    pub thresholds: Option<Vec<u32>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEndpointDto {
    #[schema(example = "whe_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    /// Null: an operator endpoint, which receives every account's events.
    pub account_id: Option<String>,
    pub url: String,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
    /// Set when a receiver answered `410 Gone`.
    pub disabled_at: Option<String>,
    pub created_at: String,
    /// `whsec_…`, only in the answer that created the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&credits_store::WebhookEndpoint> for WebhookEndpointDto {
    fn from(endpoint: &credits_store::WebhookEndpoint) -> WebhookEndpointDto {
        WebhookEndpointDto {
            id: endpoint.id.clone(),
            account_id: endpoint.account_id.clone(),
            url: endpoint.url.clone(),
            events: endpoint.events.clone(),
            disabled_at: endpoint.disabled_at.map(format_time),
            created_at: format_time(endpoint.created_at),
            secret: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookEndpointCreate {
    /// The account whose events to send; operators may omit it to receive every account's.
    pub account_id: Option<String>,
    /// `https` to a public address (see `CREDITS_WEBHOOK_ALLOW_PRIVATE`).
    pub url: String,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedeliverRequest {
    pub event_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    #[schema(example = "dlv_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    pub event_id: String,
    pub attempt: u32,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub response_code: Option<u16>,
    pub duration_ms: Option<u64>,
    pub created_at: String,
    /// When the next attempt is due (null if none).
    pub next_attempt_at: Option<String>,
}

impl From<&credits_store::Delivery> for DeliveryDto {
    fn from(delivery: &credits_store::Delivery) -> DeliveryDto {
        DeliveryDto {
            id: delivery.id.clone(),
            event_id: delivery.event_id.clone(),
            attempt: delivery.attempt,
            status: delivery.status.as_str().to_string(),
            response_code: delivery.response_code,
            duration_ms: delivery.duration_ms,
            created_at: format_time(delivery.created_at),
            next_attempt_at: delivery.next_attempt_at.map(format_time),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    #[schema(example = "evt_01JD8X5Q7M3N2P4R6T8V0W2Y4Z")]
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    pub account_id: String,
    /// The object the event is about.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&credits_store::Event> for EventDto {
    fn from(event: &credits_store::Event) -> EventDto {
        EventDto {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            created_at: format_time(event.created_at),
            account_id: event.account_id.clone(),
            data: serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null),
        }
    }
}
