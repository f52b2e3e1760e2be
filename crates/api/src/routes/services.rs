//! `/v2/services`: the catalog of what usage can be charged for, and at what cost.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

use credits_core::CREDITS_MAX;
use credits_store::{Command, ServicePatch};

use super::{check_slug, check_text};
use crate::auth::Principal;
use crate::dto::{ListResponse, ServiceCreate, ServiceDto, ServicePatchRequest};
use crate::error::ApiError;
use crate::extract::{idempotency_key, parse_json, ApiPath, RawBody};
use crate::{write, AppState};

/// Costs may be 0 (a free operation, still recorded) up to 2^53 - 1.
fn check_cost(field: &str, cost: u64) -> Result<(), ApiError> {
    if cost > CREDITS_MAX {
        return Err(ApiError::validation(format!("{field} must be 0 to 9007199254740991")));
    }
    Ok(())
}

fn check_operations(operations: &BTreeMap<String, u64>) -> Result<(), ApiError> {
    if operations.len() > credits_core::OPERATIONS_MAX {
        let max = credits_core::OPERATIONS_MAX;
        return Err(ApiError::validation(format!("at most {max} operations")));
    }
    for (name, cost) in operations {
        check_slug("operations key", name)?;
        check_cost(&format!("operations.{name}"), *cost)?;
    }
    Ok(())
}

/// List the service catalog.
#[utoipa::path(get, path = "/v2/services", tag = "services",
    responses((status = 200, body = ListResponse<ServiceDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _principal: Arc<Principal>,
) -> Result<Json<ListResponse<ServiceDto>>, ApiError> {
    let services = state.store.read(|reader| reader.services()).await?;
    Ok(Json(ListResponse {
        data: services.iter().map(ServiceDto::from).collect(),
        has_more: false,
        next_cursor: None,
    }))
}

/// Retrieve a service.
#[utoipa::path(get, path = "/v2/services/{id}", tag = "services",
    responses((status = 200, body = ServiceDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    _principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ServiceDto>, ApiError> {
    let lookup = id.clone();
    match state.store.read(move |reader| reader.service(&lookup)).await? {
        Some(service) => Ok(Json(ServiceDto::from(&service))),
        None => Err(ApiError::not_found(format!("no such service {id}"))),
    }
}

/// Add a service to the catalog (operator keys).
#[utoipa::path(post, path = "/v2/services", tag = "services", request_body = ServiceCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 201, body = ServiceDto), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<ServiceCreate>(&body)?;
    let request = parsed.request;
    check_slug("id", &request.id)?;
    if request.id == credits_core::SERVICE_ANY {
        return Err(ApiError::validation("id any is reserved"));
    }
    check_text("name", Some(&request.name))?;
    check_cost("unitCost", request.unit_cost)?;
    check_operations(&request.operations)?;
    let command = Command::CreateService {
        id: request.id,
        name: request.name,
        unit_cost: request.unit_cost,
        operations: request.operations,
    };
    write(&state, &principal, key, "POST /v2/services", &parsed.value, command).await
}

/// Change a service's name, unit cost or operations (operator keys).
#[utoipa::path(patch, path = "/v2/services/{id}", tag = "services", request_body = ServicePatchRequest,
    responses((status = 200, body = ServiceDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let parsed = parse_json::<ServicePatchRequest>(&body)?;
    let request = parsed.request;
    check_text("name", request.name.as_deref())?;
    if let Some(cost) = request.unit_cost {
        check_cost("unitCost", cost)?;
    }
    if let Some(operations) = &request.operations {
        check_operations(operations)?;
    }
    let patch = ServicePatch {
        name: request.name,
        unit_cost: request.unit_cost,
        operations: request.operations,
    };
    let command = Command::UpdateService { id, patch };
    write(&state, &principal, None, "PATCH /v2/services", &parsed.value, command).await
}
