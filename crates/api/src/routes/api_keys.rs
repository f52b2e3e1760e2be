//! `/v2/api-keys`: keys for integrated systems. The secret is shown once and stored as a hash.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use base64::Engine;

use credits_core::access::{scope_known, OPERATOR_ONLY_SCOPES};
use credits_store::{Command, NewApiKey};

use super::{check_text, list_response};
use crate::auth::{secret_hash, Principal};
use crate::dto::{ApiKeyCreate, ApiKeyDto, ListResponse};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{idempotency_key, parse_json, ApiPath, ApiQuery, RawBody};
use crate::{respond_with_secret, submit, AppState};

/// Checks the requested scopes: known, none operator-only on an account key, and none the caller
/// lacks (no key can mint a key stronger than itself).
fn scopes_checked(
    principal: &Principal,
    operator_key: bool,
    requested: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(mut scopes) = requested else {
        return Ok(None);
    };
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::validation("scopes must name at least one scope"));
    }
    for scope in &scopes {
        if !scope_known(scope) {
            return Err(ApiError::validation(format!("unknown scope {scope}")));
        }
        if !operator_key && OPERATOR_ONLY_SCOPES.contains(&scope.as_str()) {
            return Err(ApiError::validation(format!("{scope} is for operator keys only")));
        }
        if !principal.has(scope) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this key lacks {scope}, so it cannot grant it"),
            ));
        }
    }
    Ok(Some(scopes))
}

/// Create a key. The answer carries `secret`, once; a replay answers the key without it.
#[utoipa::path(post, path = "/v2/api-keys", tag = "team", request_body = ApiKeyCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 201, body = ApiKeyDto), (status = 403, body = crate::error::Problem),
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
    let parsed = parse_json::<ApiKeyCreate>(&body)?;
    let request = parsed.request;
    check_text("name", Some(&request.name))?;
    let operator_key = principal.is_operator() && request.account_id.is_none();
    if operator_key && request.member_id.is_some() {
        return Err(ApiError::validation("an operator key cannot be bound to a member"));
    }
    let account_id = if operator_key {
        None
    } else {
        Some(principal.account_for_write(request.account_id.as_deref())?)
    };
    let scopes = scopes_checked(&principal, operator_key, request.scopes)?;
    let ceiling = if principal.has("*") { None } else { Some(principal.scopes.clone()) };
    // A member's key mints keys bound to that member unless it names another: an unbound key
    // would escape the member's role when the member is later demoted or removed.
    let member_id = request.member_id.or_else(|| principal.member_id.clone());
    let random: [u8; 32] = rand::random();
    let secret = format!(
        "ck_{}_{}",
        if operator_key { "op" } else { "live" },
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let new = NewApiKey {
        account_id,
        member_id,
        name: request.name,
        scopes,
        ceiling,
        secret_hash: secret_hash(&secret),
        prefix: secret.chars().take(12).collect(),
    };
    let command = Command::CreateApiKey(new);
    let executed =
        submit(&state, &principal, key, "POST /v2/api-keys", &parsed.value, command).await?;
    Ok(respond_with_secret(executed, &secret))
}

/// List keys (never their secrets), newest first.
#[utoipa::path(get, path = "/v2/api-keys", tag = "team", params(super::AccountPageQuery),
    responses((status = 200, body = ListResponse<ApiKeyDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<super::AccountPageQuery>,
) -> Result<Json<ListResponse<ApiKeyDto>>, ApiError> {
    let (account_id, page) = super::list_start(
        &state,
        &principal,
        "team:manage",
        query.account_id.as_deref(),
        false,
        (query.limit, query.cursor.as_deref(), crate::extract::Order::Seq),
    )
    .await?;
    let found =
        state.store.read(move |reader| reader.api_keys(account_id.as_deref(), page)).await?;
    Ok(list_response(found, |key| ApiKeyDto::from(&key)))
}

/// Revoke a key: its next request, on any node, answers 401.
#[utoipa::path(delete, path = "/v2/api-keys/{id}", tag = "team",
    responses((status = 200, body = ApiKeyDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    principal.require("team:manage")?;
    let command = Command::RevokeApiKey { id: id.clone(), scope: principal.scope() };
    let response = crate::write(
        &state,
        &principal,
        None,
        "DELETE /v2/api-keys",
        &serde_json::Value::Null,
        command,
    )
    .await;
    state.keys.forget(&id);
    response
}
