//! `/v2/budgets`: spending limits per account, member, API key or service, per UTC period.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

use credits_core::budget::{BudgetScope, Enforcement, Period};
use credits_core::{BUDGET_THRESHOLDS_MAX, BUDGET_THRESHOLD_PERCENT_MAX};
use credits_store::{BudgetPatch, Command, NewBudget};

use super::{check_credits, check_text, list_response};
use crate::auth::Principal;
use crate::dto::{BudgetCreate, BudgetDto, BudgetPatchRequest, DeletedDto, ListResponse};
use crate::error::ApiError;
use crate::extract::{idempotency_key, now, parse_json, ApiPath, ApiQuery, RawBody};
use crate::{write, AppState};

fn enforcement_parse(text: &str) -> Result<Enforcement, ApiError> {
    Enforcement::parse(text)
        .ok_or_else(|| ApiError::validation("enforcement must be block or notify"))
}

/// Thresholds are percentages from 1 to 1000, at most 10; kept ascending without repeats.
fn thresholds_checked(thresholds: Vec<u32>) -> Result<Vec<u32>, ApiError> {
    if thresholds.len() > BUDGET_THRESHOLDS_MAX
        || thresholds.iter().any(|t| !(1..=BUDGET_THRESHOLD_PERCENT_MAX).contains(t))
    {
        return Err(ApiError::validation(format!(
            "thresholds are at most {BUDGET_THRESHOLDS_MAX} percentages from 1 to \
             {BUDGET_THRESHOLD_PERCENT_MAX}"
        )));
    }
    let mut thresholds = thresholds;
    thresholds.sort_unstable();
    thresholds.dedup();
    Ok(thresholds)
}

/// Create a budget. It counts what its scope already spent in the current period.
#[utoipa::path(post, path = "/v2/budgets", tag = "budgets", request_body = BudgetCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 201, body = BudgetDto), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("budgets:manage")?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<BudgetCreate>(&body)?;
    let request = parsed.request;
    let account_id = principal.account_for_write(request.account_id.as_deref())?;
    check_text("name", Some(&request.name))?;
    if let Some(id) = &request.scope.id {
        check_text("scope.id", Some(id))?;
    }
    let scope =
        BudgetScope::parse(&request.scope.scope_type, request.scope.id).ok_or_else(|| {
            ApiError::validation(
            "scope is {\"type\": \"account\"} or {\"type\": member|apiKey|service, \"id\": ...}",
        )
        })?;
    let period = Period::parse(&request.period)
        .ok_or_else(|| ApiError::validation("period must be day, week, month or lifetime"))?;
    let new = NewBudget {
        account_id,
        name: request.name,
        scope,
        period,
        limit: check_credits("limit", request.limit)?,
        enforcement: request
            .enforcement
            .as_deref()
            .map(enforcement_parse)
            .transpose()?
            .unwrap_or(Enforcement::Block),
        thresholds: thresholds_checked(request.thresholds.unwrap_or_else(|| vec![80, 100]))?,
    };
    write(&state, &principal, key, "POST /v2/budgets", &parsed.value, Command::CreateBudget(new))
        .await
}

/// List an account's budgets with what is spent this period, newest first.
#[utoipa::path(get, path = "/v2/budgets", tag = "budgets", params(super::AccountPageQuery),
    responses((status = 200, body = ListResponse<BudgetDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<super::AccountPageQuery>,
) -> Result<Json<ListResponse<BudgetDto>>, ApiError> {
    let (account_id, page) = super::list_start(
        &state,
        &principal,
        "budgets:manage",
        query.account_id.as_deref(),
        true,
        (query.limit, query.cursor.as_deref(), crate::extract::Order::Seq),
    )
    .await?;
    let account_id = account_id.ok_or_else(|| ApiError::bad_request("accountId is required"))?;
    let at = now();
    let found = state.store.read(move |reader| reader.budgets(&account_id, page, at)).await?;
    Ok(list_response(found, |budget| BudgetDto::at(&budget, at)))
}

/// Retrieve a budget with what is spent this period.
#[utoipa::path(get, path = "/v2/budgets/{id}", tag = "budgets",
    responses((status = 200, body = BudgetDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BudgetDto>, ApiError> {
    principal.require("budgets:manage")?;
    let lookup = id.clone();
    let at = now();
    match state.store.read(move |reader| reader.budget(&lookup, at)).await? {
        Some(budget) if principal.sees(&budget.account_id) => Ok(Json(BudgetDto::at(&budget, at))),
        _ => Err(ApiError::not_found(format!("no such budget {id}"))),
    }
}

/// Change a budget's name, limit, enforcement or thresholds.
#[utoipa::path(patch, path = "/v2/budgets/{id}", tag = "budgets", request_body = BudgetPatchRequest,
    responses((status = 200, body = BudgetDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("budgets:manage")?;
    let parsed = parse_json::<BudgetPatchRequest>(&body)?;
    let request = parsed.request;
    check_text("name", request.name.as_deref())?;
    let patch = BudgetPatch {
        name: request.name,
        limit: request.limit.map(|l| check_credits("limit", l)).transpose()?,
        enforcement: request.enforcement.as_deref().map(enforcement_parse).transpose()?,
        thresholds: request.thresholds.map(thresholds_checked).transpose()?,
    };
    let command = Command::UpdateBudget { id, patch, scope: principal.scope() };
    write(&state, &principal, None, "PATCH /v2/budgets", &parsed.value, command).await
}

/// Delete a budget.
#[utoipa::path(delete, path = "/v2/budgets/{id}", tag = "budgets",
    responses((status = 200, body = DeletedDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    principal.require("budgets:manage")?;
    let command = Command::DeleteBudget { id, scope: principal.scope() };
    write(&state, &principal, None, "DELETE /v2/budgets", &serde_json::Value::Null, command).await
}
