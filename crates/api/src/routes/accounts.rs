//! `/v2/accounts`: the operator's customers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use credits_core::EXPIRING_SOON_DAYS_MAX;
use credits_store::{AccountPatch, AutoTopUp, Command, NewAccount};

use super::{check_credits, check_slug, check_text, list_response};
use crate::auth::Principal;
use crate::dto::{AccountCreate, AccountDto, AccountPatchRequest, AutoTopUpDto, ListResponse};
use crate::error::ApiError;
use crate::extract::{idempotency_key, page_request, parse_json, ApiPath, ApiQuery, RawBody};
use crate::{write, AppState};

fn auto_top_up(dto: AutoTopUpDto) -> Result<AutoTopUp, ApiError> {
    check_credits("autoTopUp.threshold", dto.threshold)?;
    check_credits("autoTopUp.amount", dto.amount)?;
    if dto.service != credits_core::SERVICE_ANY {
        check_slug("autoTopUp.service", &dto.service)?;
    }
    Ok(AutoTopUp { threshold: dto.threshold, amount: dto.amount, service: dto.service })
}

/// A threshold may be 0 (alert only when nothing is left) up to 2^53 - 1.
fn check_threshold(threshold: Option<u64>) -> Result<(), ApiError> {
    match threshold {
        Some(value) if value > credits_core::CREDITS_MAX => {
            Err(ApiError::validation("lowBalanceThreshold must be 0 to 9007199254740991"))
        }
        _ => Ok(()),
    }
}

fn check_days(days: Option<u32>) -> Result<(), ApiError> {
    match days {
        Some(days) if !(1..=EXPIRING_SOON_DAYS_MAX).contains(&days) => Err(ApiError::validation(
            format!("expiringSoonDays must be 1 to {EXPIRING_SOON_DAYS_MAX}"),
        )),
        _ => Ok(()),
    }
}

/// Create an account.
#[utoipa::path(post, path = "/v2/accounts", tag = "accounts", request_body = AccountCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 201, body = AccountDto), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("accounts:manage")?;
    principal.require_operator()?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<AccountCreate>(&body)?;
    let request = parsed.request;
    check_text("name", request.name.as_deref())?;
    check_text("externalId", request.external_id.as_deref())?;
    check_days(request.expiring_soon_days)?;
    check_threshold(request.low_balance_threshold)?;
    let new = NewAccount {
        name: request.name,
        external_id: request.external_id,
        low_balance_threshold: request.low_balance_threshold,
        expiring_soon_days: request.expiring_soon_days,
        auto_top_up: request.auto_top_up.map(auto_top_up).transpose()?,
    };
    let command = Command::CreateAccount(new);
    write(&state, &principal, key, "POST /v2/accounts", &parsed.value, command).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AccountListQuery {
    pub external_id: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// List accounts, newest first (operator keys).
#[utoipa::path(get, path = "/v2/accounts", tag = "accounts", params(AccountListQuery),
    responses((status = 200, body = ListResponse<AccountDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<AccountListQuery>,
) -> Result<Json<ListResponse<AccountDto>>, ApiError> {
    principal.require("accounts:manage")?;
    principal.require_operator()?;
    let page = page_request(query.limit, query.cursor.as_deref(), crate::extract::Order::Seq)?;
    let external_id = query.external_id;
    let found =
        state.store.read(move |reader| reader.accounts(external_id.as_deref(), page)).await?;
    Ok(list_response(found, |item| AccountDto::from(&item)))
}

/// Retrieve an account.
#[utoipa::path(get, path = "/v2/accounts/{id}", tag = "accounts",
    responses((status = 200, body = AccountDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AccountDto>, ApiError> {
    let lookup = id.clone();
    let account = state.store.read(move |reader| reader.account(&lookup)).await?;
    match account {
        Some(account) if principal.sees(&account.id) => Ok(Json(AccountDto::from(&account))),
        _ => Err(ApiError::not_found(format!("no such account {id}"))),
    }
}

/// Update an account; `null` clears a field.
#[utoipa::path(patch, path = "/v2/accounts/{id}", tag = "accounts", request_body = AccountPatchRequest,
    responses((status = 200, body = AccountDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("accounts:manage")?;
    principal.require_operator()?;
    let parsed = parse_json::<AccountPatchRequest>(&body)?;
    let request = parsed.request;
    check_text("name", request.name.as_ref().and_then(Option::as_deref))?;
    check_text("externalId", request.external_id.as_ref().and_then(Option::as_deref))?;
    check_days(request.expiring_soon_days)?;
    check_threshold(request.low_balance_threshold.flatten())?;
    let patch = AccountPatch {
        name: request.name,
        external_id: request.external_id,
        low_balance_threshold: request.low_balance_threshold,
        expiring_soon_days: request.expiring_soon_days,
        auto_top_up: request.auto_top_up.map(|t| t.map(auto_top_up).transpose()).transpose()?,
    };
    let command = Command::UpdateAccount { id, patch, scope: principal.scope() };
    write(&state, &principal, None, "PATCH /v2/accounts", &parsed.value, command).await
}
