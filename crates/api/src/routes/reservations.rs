//! `/v2/reservations`: two-phase holds. Hold, then capture (all or part) or release; a hold not
//! settled by its expiry reads as expired from that instant and its credits are available again.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

use credits_core::{RESERVATION_TTL_SECONDS_DEFAULT, RESERVATION_TTL_SECONDS_MAX};
use credits_store::{Command, NewReservation};

use super::{check_credits, check_slug, check_text};
use crate::auth::Principal;
use crate::dto::{CaptureRequest, ReleaseRequest, ReservationCreate, ReservationDto};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{idempotency_key, now, parse_json, ApiPath, RawBody};
use crate::{write, AppState};

/// Hold credits: moves them from remaining to reserved, or 402.
#[utoipa::path(post, path = "/v2/reservations", tag = "reservations", request_body = ReservationCreate,
    params(("Idempotency-Key" = String, Header, description = "required, 1 to 255 characters")),
    responses((status = 201, body = ReservationDto), (status = 402, body = crate::error::Problem),
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
    let parsed = parse_json::<ReservationCreate>(&body)?;
    let request = parsed.request;
    let account_id = principal.account_for_write(request.account_id.as_deref())?;
    check_slug("service", &request.service)?;
    let credits = check_credits("credits", request.credits)?;
    let ttl_seconds = request.ttl_seconds.unwrap_or(RESERVATION_TTL_SECONDS_DEFAULT);
    if !(1..=RESERVATION_TTL_SECONDS_MAX).contains(&ttl_seconds) {
        return Err(ApiError::validation("ttlSeconds must be 1 to 86400"));
    }
    let mut actor = principal.actor();
    if let Some(member_id) = request.member_id {
        if !principal.is_operator() {
            return Err(ApiError::new(ErrorCode::Forbidden, "only operator keys may set memberId"));
        }
        check_text("memberId", Some(&member_id))?;
        actor.member_id = Some(member_id);
    }
    let new = NewReservation { account_id, service: request.service, credits, ttl_seconds, actor };
    let command = Command::CreateReservation(new);
    write(&state, &principal, key, "POST /v2/reservations", &parsed.value, command).await
}

/// Retrieve a reservation, as it is at this instant.
#[utoipa::path(get, path = "/v2/reservations/{id}", tag = "reservations",
    responses((status = 200, body = ReservationDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationDto>, ApiError> {
    principal.require("credits:read")?;
    let lookup = id.clone();
    let hold = state.store.read(move |reader| reader.reservation(&lookup)).await?;
    match hold {
        Some(hold) if principal.sees(&hold.account_id) => {
            Ok(Json(ReservationDto::at(&hold, now())))
        }
        _ => Err(ApiError::not_found(format!("no such reservation {id}"))),
    }
}

/// Capture held credits (all, or `credits` of them) as usage and return the rest. Settling twice
/// or capturing an expired hold is 409 `invalid_state`; more than held is 422.
#[utoipa::path(post, path = "/v2/reservations/{id}/capture", tag = "reservations",
    request_body(content = Option<CaptureRequest>),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 200, body = ReservationDto), (status = 409, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn capture(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("usage:write")?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<CaptureRequest>(&body)?;
    let credits = parsed.request.credits.map(|c| check_credits("credits", c)).transpose()?;
    let path = format!("POST /v2/reservations/{id}/capture");
    let command = Command::CaptureReservation {
        id,
        credits,
        scope: principal.scope(),
        actor: principal.actor(),
    };
    write(&state, &principal, key, &path, &parsed.value, command).await
}

/// Release all held credits.
#[utoipa::path(post, path = "/v2/reservations/{id}/release", tag = "reservations",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters")),
    responses((status = 200, body = ReservationDto), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn release(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require("usage:write")?;
    let key = idempotency_key(&headers, false)?;
    let parsed = parse_json::<ReleaseRequest>(&body)?;
    let path = format!("POST /v2/reservations/{id}/release");
    let command =
        Command::ReleaseReservation { id, scope: principal.scope(), actor: principal.actor() };
    write(&state, &principal, key, &path, &parsed.value, command).await
}
