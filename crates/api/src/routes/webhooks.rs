//! `/v2/webhook-endpoints` and `/v2/events`: where events are sent, what was sent, and the
//! events themselves.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use credits_store::Command;

use super::list_response;
use crate::auth::Principal;
use crate::dto::{
    DeletedDto, DeliveryDto, EventDto, ListResponse, RedeliverRequest, WebhookEndpointCreate,
    WebhookEndpointDto,
};
use crate::error::ApiError;
use crate::extract::{idempotency_key, page_request, parse_json, ApiPath, ApiQuery, RawBody};
use crate::{respond_with_secret, submit, write, AppState};

/// The event types of SPEC section 8.
pub const EVENT_TYPES: [&str; 11] = [
    "credit.created",
    "credit.voided",
    "credit.depleted",
    "credit.expired",
    "credit.expiring_soon",
    "balance.low",
    "budget.threshold_reached",
    "budget.exceeded",
    "reservation.expired",
    "usage.recorded",
    "topup.requested",
];

/// Create an endpoint. The answer carries `secret` once; it is stored sealed, to sign, and is
/// never shown again.
#[utoipa::path(post, path = "/v2/webhook-endpoints", tag = "webhooks",
    request_body = WebhookEndpointCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 201, body = WebhookEndpointDto), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("webhooks:manage")?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<WebhookEndpointCreate>(&body)?;
    let request = parsed.request;
    let account_id = match (principal.is_operator(), request.account_id.as_deref()) {
        (true, None) => None,
        (_, requested) => Some(principal.account_for_write(requested)?),
    };
    state.webhooks.policy.check_url(&request.url).map_err(ApiError::validation)?;
    if request.events.is_empty() || request.events.len() > EVENT_TYPES.len() + 1 {
        return Err(ApiError::validation("events must list event types, or [\"*\"]"));
    }
    if let Some(unknown) =
        request.events.iter().find(|e| e.as_str() != "*" && !EVENT_TYPES.contains(&e.as_str()))
    {
        return Err(ApiError::validation(format!("unknown event type {unknown}")));
    }
    let secret = credits_webhooks::generate_secret();
    let command = Command::CreateWebhookEndpoint {
        account_id,
        url: request.url,
        events: request.events,
        secret_sealed: state.webhooks.secrets.seal(&secret),
    };
    let executed =
        submit(&state, &principal, key, "POST /v2/webhook-endpoints", &parsed.value, command)
            .await?;
    Ok(respond_with_secret(executed, &secret))
}

/// List endpoints (never their secrets), newest first.
#[utoipa::path(get, path = "/v2/webhook-endpoints", tag = "webhooks", params(super::AccountPageQuery),
    responses((status = 200, body = ListResponse<WebhookEndpointDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<super::AccountPageQuery>,
) -> Result<Json<ListResponse<WebhookEndpointDto>>, ApiError> {
    principal.require("webhooks:manage")?;
    let page = page_request(query.limit, query.cursor.as_deref(), crate::extract::Order::Seq)?;
    let account_id = principal.account_for_read(query.account_id.as_deref(), false)?;
    let found = state
        .store
        .read(move |reader| reader.webhook_endpoints(account_id.as_deref(), page))
        .await?;
    Ok(list_response(found, |endpoint| WebhookEndpointDto::from(&endpoint)))
}

/// Delete an endpoint; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v2/webhook-endpoints/{id}", tag = "webhooks",
    responses((status = 200, body = DeletedDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    principal.require("webhooks:manage")?;
    let command = Command::DeleteWebhookEndpoint { id, scope: principal.scope() };
    write(
        &state,
        &principal,
        None,
        "DELETE /v2/webhook-endpoints",
        &serde_json::Value::Null,
        command,
    )
    .await
}

/// The endpoint if the caller may see it, else 404.
async fn endpoint_seen(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<credits_store::WebhookEndpoint, ApiError> {
    let lookup = id.to_string();
    let endpoint = state.store.read(move |reader| reader.webhook_endpoint(&lookup)).await?;
    match endpoint {
        Some(endpoint)
            if principal.is_operator() || endpoint.account_id == principal.account_id =>
        {
            Ok(endpoint)
        }
        _ => Err(ApiError::not_found(format!("no such webhook endpoint {id}"))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageOnlyQuery {
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every delivery attempt to an endpoint, newest first.
#[utoipa::path(get, path = "/v2/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(PageOnlyQuery),
    responses((status = 200, body = ListResponse<DeliveryDto>), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageOnlyQuery>,
) -> Result<Json<ListResponse<DeliveryDto>>, ApiError> {
    principal.require("webhooks:manage")?;
    let page = page_request(query.limit, query.cursor.as_deref(), crate::extract::Order::Seq)?;
    let endpoint = endpoint_seen(&state, &principal, &id).await?;
    let found = state.store.read(move |reader| reader.deliveries(&endpoint.id, page)).await?;
    Ok(list_response(found, |delivery| DeliveryDto::from(&delivery)))
}

/// Send an event to an endpoint again, now (a new attempt).
#[utoipa::path(post, path = "/v2/webhook-endpoints/{id}/redeliver", tag = "webhooks",
    request_body = RedeliverRequest,
    responses((status = 201, body = DeliveryDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("webhooks:manage")?;
    let parsed = parse_json::<RedeliverRequest>(&body)?;
    let endpoint = endpoint_seen(&state, &principal, &id).await?;
    let command = Command::Redeliver {
        endpoint_id: endpoint.id,
        event_id: parsed.request.event_id,
        scope: principal.scope(),
    };
    write(&state, &principal, None, "POST /v2/webhook-endpoints/redeliver", &parsed.value, command)
        .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct EventListQuery {
    /// Operators: the account (omit for every account).
    pub account_id: Option<String>,
    /// One event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Events, newest first.
#[utoipa::path(get, path = "/v2/events", tag = "webhooks", params(EventListQuery),
    responses((status = 200, body = ListResponse<EventDto>)), security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<EventListQuery>,
) -> Result<Json<ListResponse<EventDto>>, ApiError> {
    let (account_id, page) = super::list_start(
        &state,
        &principal,
        "credits:read",
        query.account_id.as_deref(),
        false,
        (query.limit, query.cursor.as_deref(), crate::extract::Order::Seq),
    )
    .await?;
    if let Some(event_type) = &query.event_type {
        if !EVENT_TYPES.contains(&event_type.as_str()) {
            return Err(ApiError::bad_request(format!("unknown event type {event_type}")));
        }
    }
    let event_type = query.event_type;
    let found = state
        .store
        .read(move |reader| reader.events(account_id.as_deref(), event_type.as_deref(), page))
        .await?;
    Ok(list_response(found, |event| EventDto::from(&event)))
}
