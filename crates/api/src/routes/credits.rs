//! `/v2/credits`: purchases and grants, and voiding what is left of them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use credits_core::{CreditKind, CreditStatus, SERVICE_ANY};
use credits_store::{Command, CreditFilter, NewCredit};

use super::{check_credits, check_slug, check_text, list_response};
use crate::auth::Principal;
use crate::dto::{CreditCreate, CreditDto, ListResponse, VoidRequest};
use crate::error::ApiError;
use crate::extract::{idempotency_key, now, parse_json, parse_time, ApiPath, ApiQuery, RawBody};
use crate::{write, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CreditListQuery {
    /// Operators: the account (omit to list every account's records).
    pub account_id: Option<String>,
    /// A service id, or `any`.
    pub service: Option<String>,
    /// `active`, `depleted`, `expired` or `voided`.
    pub status: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// List credit records, newest first.
#[utoipa::path(get, path = "/v2/credits", tag = "credits", params(CreditListQuery),
    responses((status = 200, body = ListResponse<CreditDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<CreditListQuery>,
) -> Result<Json<ListResponse<CreditDto>>, ApiError> {
    let (account_id, page) = super::list_start(
        &state,
        &principal,
        "credits:read",
        query.account_id.as_deref(),
        false,
        (query.limit, query.cursor.as_deref(), crate::extract::Order::Seq),
    )
    .await?;
    let status = query
        .status
        .as_deref()
        .map(|s| CreditStatus::parse(s).ok_or_else(|| ApiError::bad_request("unknown status")))
        .transpose()?;
    let filter = CreditFilter { account_id, service: query.service, status };
    let found = state.store.read(move |reader| reader.credits(&filter, page, now())).await?;
    Ok(list_response(found, |item| CreditDto::from(&item)))
}

/// Retrieve one credit record, as it is at this instant.
#[utoipa::path(get, path = "/v2/credits/{creditId}", tag = "credits",
    params(("creditId" = String, Path)),
    responses((status = 200, body = CreditDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CreditDto>, ApiError> {
    principal.require("credits:read")?;
    let lookup = id.clone();
    let record = state.store.read(move |reader| reader.credit(&lookup, now())).await?;
    match record {
        Some(record) if principal.sees(&record.account_id) => Ok(Json(CreditDto::from(&record))),
        _ => Err(ApiError::not_found(format!("no such credit {id}"))),
    }
}

/// Record a purchase or a grant (operator keys). A `reference` already used on the account is
/// 409 `duplicate_reference`, so a retried payment never pays twice.
#[utoipa::path(post, path = "/v2/credits", tag = "credits", request_body = CreditCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 201, body = CreditDto), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("credits:write")?;
    principal.require_operator()?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<CreditCreate>(&body)?;
    let request = parsed.request;
    let account_id = principal.account_for_write(request.account_id.as_deref())?;
    let amount = check_credits("amount", request.amount)?;
    let service = request.service.unwrap_or_else(|| SERVICE_ANY.to_string());
    check_slug("service", &service)?;
    check_text("description", request.description.as_deref())?;
    check_text("reference", request.reference.as_deref())?;
    let kind = match request.kind.as_deref() {
        None => CreditKind::Purchase,
        Some(kind) => CreditKind::parse(kind)
            .ok_or_else(|| ApiError::validation("kind must be purchase or grant"))?,
    };
    let expires_at =
        request.expires_at.as_deref().map(|t| parse_time("expiresAt", t)).transpose()?;
    let new = NewCredit {
        account_id,
        amount,
        service,
        description: request.description,
        expires_at,
        kind,
        priority: request.priority.unwrap_or(0),
        reference: request.reference,
        actor: principal.actor(),
    };
    write(&state, &principal, key, "POST /v2/credits", &parsed.value, Command::CreateCredit(new))
        .await
}

/// Void what is left of a record (refund, mistake). Held credits stay held; released later, they
/// are voided too. Nothing left is 409 `invalid_state`.
#[utoipa::path(post, path = "/v2/credits/{creditId}/void", tag = "credits",
    params(("creditId" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    request_body(content = Option<VoidRequest>),
    responses((status = 200, body = CreditDto), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn void(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(credit_id): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("credits:write")?;
    principal.require_operator()?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<VoidRequest>(&body)?;
    check_text("reason", parsed.request.reason.as_deref())?;
    let path = format!("POST /v2/credits/{credit_id}/void");
    let command =
        Command::VoidCredit { credit_id, scope: principal.scope(), actor: principal.actor() };
    write(&state, &principal, key, &path, &parsed.value, command).await
}
