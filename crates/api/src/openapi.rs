//! The OpenAPI 3.1 document, generated from the handlers' annotations and the DTO types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::*;
use crate::error::Problem;
use crate::routes;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "credits",
        description = "Prepaid credits for an API business: purchases and grants, real-time \
                       usage charging with burn-down, reservations, expiry and an immutable \
                       ledger. Errors are RFC 9457 problem+json with a stable `code`."
    ),
    paths(
        routes::accounts::create, routes::accounts::list, routes::accounts::retrieve,
        routes::accounts::update,
        routes::services::list, routes::services::retrieve, routes::services::create,
        routes::services::update,
        routes::credits::list, routes::credits::retrieve, routes::credits::create,
        routes::credits::void,
        routes::balance::retrieve,
        routes::usage::create, routes::usage::batch, routes::usage::list, routes::summary::summary,
        routes::reservations::create, routes::reservations::retrieve,
        routes::reservations::capture, routes::reservations::release,
        routes::ledger::list,
        routes::members::create, routes::members::list, routes::members::retrieve,
        routes::members::update, routes::members::delete,
        routes::api_keys::create, routes::api_keys::list, routes::api_keys::revoke,
        routes::budgets::create, routes::budgets::list, routes::budgets::retrieve,
        routes::budgets::update, routes::budgets::delete,
        routes::webhooks::create, routes::webhooks::list, routes::webhooks::delete,
        routes::webhooks::deliveries, routes::webhooks::redeliver, routes::webhooks::events,
        routes::system::healthz, routes::system::readyz,
    ),
    components(schemas(
        Problem, AccountDto, AccountCreate, AccountPatchRequest, AutoTopUpDto, ServiceDto,
        ServiceCreate, ServicePatchRequest, CreditDto, CreditCreate, VoidRequest, AllocationDto,
        ActorDto, UsageDto, UsageCreate, UsageBatchEvent, UsageBatchRequest, UsageBatchResult,
        UsageBatchResponse, ReservationDto, ReservationCreate, CaptureRequest, ReleaseRequest,
        BalanceDto, ServiceBalanceDto, NextExpiryDto, LedgerEntryDto, MemberDto, MemberCreate,
        MemberPatchRequest, DeletedDto, ApiKeyDto, ApiKeyCreate, BudgetScopeDto, BudgetDto,
        BudgetCreate, BudgetPatchRequest,
        crate::routes::summary::UsageSummaryDto, WebhookEndpointDto, WebhookEndpointCreate, RedeliverRequest, DeliveryDto, EventDto,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;
