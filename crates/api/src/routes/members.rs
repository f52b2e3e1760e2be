//! `/v2/members`: an account's staff, with roles that bound what their keys may do.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

use credits_core::access::Role;
use credits_store::{Command, MemberPatch};

use super::{check_text, list_response};
use crate::auth::Principal;
use crate::dto::{DeletedDto, ListResponse, MemberCreate, MemberDto, MemberPatchRequest};
use crate::error::ApiError;
use crate::extract::{idempotency_key, parse_json, ApiPath, ApiQuery, RawBody};
use crate::{write, AppState};

fn role_parse(role: &str) -> Result<Role, ApiError> {
    Role::parse(role)
        .ok_or_else(|| ApiError::validation("role must be owner, admin, member or viewer"))
}

/// A plausible address: something, `@`, something with a dot; at most 254 bytes.
pub(crate) fn check_email(email: &str) -> Result<(), ApiError> {
    let plausible = email.chars().count() <= credits_core::EMAIL_LENGTH_MAX
        && email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if plausible {
        Ok(())
    } else {
        Err(ApiError::validation("email must be an email address"))
    }
}

/// Add a member to an account.
#[utoipa::path(post, path = "/v2/members", tag = "team", request_body = MemberCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 201, body = MemberDto), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("team:manage")?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<MemberCreate>(&body)?;
    let request = parsed.request;
    let account_id = principal.account_for_write(request.account_id.as_deref())?;
    check_email(&request.email)?;
    check_text("name", request.name.as_deref())?;
    let role = role_parse(&request.role)?;
    let command =
        Command::CreateMember { account_id, email: request.email, name: request.name, role };
    write(&state, &principal, key, "POST /v2/members", &parsed.value, command).await
}

/// List an account's members, newest first.
#[utoipa::path(get, path = "/v2/members", tag = "team", params(super::AccountPageQuery),
    responses((status = 200, body = ListResponse<MemberDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<super::AccountPageQuery>,
) -> Result<Json<ListResponse<MemberDto>>, ApiError> {
    let (account_id, page) = super::list_start(
        &state,
        &principal,
        "team:manage",
        query.account_id.as_deref(),
        true,
        (query.limit, query.cursor.as_deref(), crate::extract::Order::Seq),
    )
    .await?;
    let account_id = account_id.ok_or_else(|| ApiError::bad_request("accountId is required"))?;
    let found = state.store.read(move |reader| reader.members(&account_id, page)).await?;
    Ok(list_response(found, |member| MemberDto::from(&member)))
}

/// Retrieve a member.
#[utoipa::path(get, path = "/v2/members/{id}", tag = "team",
    responses((status = 200, body = MemberDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MemberDto>, ApiError> {
    principal.require("team:manage")?;
    let lookup = id.clone();
    match state.store.read(move |reader| reader.member(&lookup)).await? {
        Some(member) if principal.sees(&member.account_id) => Ok(Json(MemberDto::from(&member))),
        _ => Err(ApiError::not_found(format!("no such member {id}"))),
    }
}

/// Change a member's email, name or role. A new role bounds the member's keys at once.
#[utoipa::path(patch, path = "/v2/members/{id}", tag = "team", request_body = MemberPatchRequest,
    responses((status = 200, body = MemberDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("team:manage")?;
    let parsed = parse_json::<MemberPatchRequest>(&body)?;
    let request = parsed.request;
    if let Some(email) = &request.email {
        check_email(email)?;
    }
    check_text("name", request.name.as_ref().and_then(Option::as_deref))?;
    let patch = MemberPatch {
        email: request.email,
        name: request.name,
        role: request.role.as_deref().map(role_parse).transpose()?,
    };
    let command = Command::UpdateMember { id, patch, scope: principal.scope() };
    let response =
        write(&state, &principal, None, "PATCH /v2/members", &parsed.value, command).await;
    // Keys bound to the member see the new role on their next request.
    state.keys.forget_all();
    response
}

/// Remove a member; the keys bound to it are revoked at once.
#[utoipa::path(delete, path = "/v2/members/{id}", tag = "team",
    responses((status = 200, body = DeletedDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    principal.require("team:manage")?;
    let command = Command::DeleteMember { id, scope: principal.scope() };
    let response =
        write(&state, &principal, None, "DELETE /v2/members", &serde_json::Value::Null, command)
            .await;
    state.keys.forget_all();
    response
}
