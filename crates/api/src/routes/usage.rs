//! `/v2/usage`: charging requests to services, one at a time or in batches.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use credits_core::{
    BATCH_SIZE_MAX, METADATA_ENTRIES_MAX, METADATA_KEY_LENGTH_MAX, TEXT_LENGTH_MAX,
};
use credits_store::{Command, Cost, Idempotency, NewUsage, UsageFilter, WriteRequest};

use super::{check_credits, check_slug, check_text, list_response};
use crate::auth::Principal;
use crate::dto::{
    ListResponse, UsageBatchRequest, UsageBatchResponse, UsageBatchResult, UsageCreate, UsageDto,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{
    check_no_nul, idempotency_key, idempotency_key_valid, parse_json, parse_json_with_nul,
    parse_time_query, parse_value, request_hash, ApiQuery, RawBody,
};
use crate::{write, AppState};

const USAGE_PATH: &str = "POST /v2/usage";

/// Validates a usage request and turns it into the store's command.
fn usage_new(principal: &Principal, request: UsageCreate) -> Result<NewUsage, ApiError> {
    let account_id = principal.account_for_write(request.account_id.as_deref())?;
    check_slug("service", &request.service)?;
    if let Some(operation) = &request.operation {
        check_slug("operation", operation)?;
    }
    let quantity = check_credits("quantity", request.quantity.unwrap_or(1))?;
    let forbidden = |field: &str| {
        ApiError::new(ErrorCode::Forbidden, format!("only operator keys may set {field}"))
    };
    let cost = match request.credits {
        Some(_) if !principal.is_operator() => return Err(forbidden("credits")),
        Some(credits) => Cost::Explicit(check_credits("credits", credits)?),
        None => Cost::Catalog { operation: request.operation.clone(), quantity },
    };
    let mut actor = principal.actor();
    if let Some(member_id) = request.member_id {
        if !principal.is_operator() {
            return Err(forbidden("memberId"));
        }
        check_text("memberId", Some(&member_id))?;
        actor.member_id = Some(member_id);
    }
    let metadata = match request.metadata {
        None => None,
        Some(metadata) => {
            if metadata.len() > METADATA_ENTRIES_MAX {
                return Err(ApiError::validation(format!(
                    "metadata has at most {METADATA_ENTRIES_MAX} entries"
                )));
            }
            let chars = |text: &str| text.chars().count();
            if metadata.iter().any(|(k, v)| {
                k.is_empty() || chars(k) > METADATA_KEY_LENGTH_MAX || chars(v) > TEXT_LENGTH_MAX
            }) {
                return Err(ApiError::validation(format!(
                    "metadata keys are 1 to {METADATA_KEY_LENGTH_MAX} characters and values at \
                     most {TEXT_LENGTH_MAX} characters"
                )));
            }
            Some(serde_json::to_string(&metadata).unwrap_or_default())
        }
    };
    Ok(NewUsage {
        account_id,
        service: request.service,
        operation: request.operation,
        quantity,
        cost,
        actor,
        metadata,
    })
}

/// Record one usage and charge it, all or nothing. 402 `insufficient_credits` charges nothing.
#[utoipa::path(post, path = "/v2/usage", tag = "usage", request_body = UsageCreate,
    params(("Idempotency-Key" = String, Header, description = "required, 1 to 255 characters")),
    responses((status = 201, body = UsageDto), (status = 402, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("usage:write")?;
    let key = idempotency_key(&headers, true)?;
    let parsed = parse_json::<UsageCreate>(&body)?;
    let new = usage_new(&principal, parsed.request)?;
    write(&state, &principal, key, USAGE_PATH, &parsed.value, Command::RecordUsage(new)).await
}

fn batch_event(
    principal: &Principal,
    event: &serde_json::Value,
) -> Result<(String, WriteRequest), (Option<String>, ApiError)> {
    let mut event = event.clone();
    let key = match event.as_object_mut().and_then(|o| o.remove("idempotencyKey")) {
        Some(serde_json::Value::String(key)) => key,
        _ => {
            let error = ApiError::bad_request("each event needs an idempotencyKey string");
            return Err((None, error));
        }
    };
    idempotency_key_valid(&key).map_err(|e| (Some(key.clone()), e))?;
    check_no_nul(&event).map_err(|e| (Some(key.clone()), e))?;
    let request = parse_value::<UsageCreate>(&event).map_err(|e| (Some(key.clone()), e))?;
    let new = usage_new(principal, request).map_err(|e| (Some(key.clone()), e))?;
    let idempotency = Idempotency {
        scope: principal.idempotency_scope(),
        key: key.clone(),
        request_hash: request_hash(USAGE_PATH, &event),
    };
    Ok((key, WriteRequest { idempotency: Some(idempotency), command: Command::RecordUsage(new) }))
}

/// Record up to 1000 independent usage events in one request and one commit. Each has its own
/// `idempotencyKey` and its own result: the usage, or the error it would have had alone.
#[utoipa::path(post, path = "/v2/usage/batch", tag = "usage", request_body = UsageBatchRequest,
    responses((status = 200, body = UsageBatchResponse), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn batch(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<UsageBatchResponse>, ApiError> {
    principal.require("usage:write")?;
    // Per-event keys make a retried batch replay exactly; a header key is checked but not needed.
    idempotency_key(&headers, false)?;
    // Each event is checked on its own (NUL characters included) and fails alone.
    let parsed = parse_json_with_nul::<UsageBatchRequest>(&body)?;
    let events = parsed.request.events;
    if events.is_empty() || events.len() > BATCH_SIZE_MAX {
        return Err(ApiError::validation(format!("events must hold 1 to {BATCH_SIZE_MAX} events")));
    }
    let mut slots: Vec<Result<String, (Option<String>, ApiError)>> = Vec::new();
    let mut requests = Vec::new();
    for event in &events {
        match batch_event(&principal, event) {
            Ok((key, request)) => {
                slots.push(Ok(key));
                requests.push(request);
            }
            Err(failure) => slots.push(Err(failure)),
        }
    }
    let mut executed = if requests.is_empty() {
        Vec::new().into_iter()
    } else {
        state.store.write_many(requests).await?.into_iter()
    };
    let mut data = Vec::with_capacity(slots.len());
    for slot in slots {
        let result = match slot {
            Err((key, error)) => UsageBatchResult {
                idempotency_key: key,
                status: error.code.status().as_u16(),
                replayed: false,
                usage: None,
                error: serde_json::to_value(error.problem()).ok(),
            },
            Ok(key) => {
                let outcome = executed
                    .next()
                    .unwrap_or_else(|| Err(credits_store::StoreError::Unavailable("lost".into())));
                match outcome {
                    Ok(done) => {
                        let value = serde_json::from_slice(&done.rendered.body).ok();
                        let success = (200..300).contains(&done.rendered.status);
                        UsageBatchResult {
                            idempotency_key: Some(key),
                            status: done.rendered.status,
                            replayed: done.replayed,
                            usage: if success { value.clone() } else { None },
                            error: if success { None } else { value },
                        }
                    }
                    Err(store_error) => {
                        let error = ApiError::from(store_error);
                        UsageBatchResult {
                            idempotency_key: Some(key),
                            status: error.code.status().as_u16(),
                            replayed: false,
                            usage: None,
                            error: serde_json::to_value(error.problem()).ok(),
                        }
                    }
                }
            }
        };
        data.push(result);
    }
    Ok(Json(UsageBatchResponse { data }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UsageListQuery {
    /// Operators: the account (omit to list every account's usage).
    pub account_id: Option<String>,
    pub service: Option<String>,
    /// Only usage attributed to this member.
    pub member_id: Option<String>,
    /// Only usage made with this API key.
    pub api_key_id: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// List usage, newest first.
#[utoipa::path(get, path = "/v2/usage", tag = "usage", params(UsageListQuery),
    responses((status = 200, body = ListResponse<UsageDto>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<UsageListQuery>,
) -> Result<Json<ListResponse<UsageDto>>, ApiError> {
    let (account_id, page) = super::list_start(
        &state,
        &principal,
        "usage:read",
        query.account_id.as_deref(),
        false,
        (query.limit, query.cursor.as_deref(), crate::extract::Order::Time),
    )
    .await?;
    let filter = UsageFilter {
        account_id,
        service: query.service,
        member_id: query.member_id,
        api_key_id: query.api_key_id,
        from: parse_time_query("from", query.from.as_deref())?,
        to: parse_time_query("to", query.to.as_deref())?,
    };
    let found = state.store.read(move |reader| reader.usage(&filter, page)).await?;
    Ok(list_response(found, |item| UsageDto::from(&item)))
}
