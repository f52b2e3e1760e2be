//! Dashboard sessions: `POST /session` trades an API key for an HttpOnly, SameSite=Strict cookie,
//! so the key never reaches browser storage. The session, stored in the database by the hash of
//! its id, keeps only the key's hash (the same
//! lookup as a bearer key, so revocation and role changes apply at once) and a CSRF token that
//! every unsafe request made with the cookie must echo in `X-CSRF-Token`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::auth::{principal_for_hash, secret_hash, Principal};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{now, parse_json, RawBody};
use crate::AppState;
use credits_core::Timestamp;
use credits_store::{Command, WriteRequest};

pub const COOKIE_NAME: &str = "credits_session";
const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sessions live in the database (only the SHA-256 of their id), so that every node behind a
/// load balancer, and a restarted one, knows them.
async fn session_create(
    state: &AppState,
    key_hash: [u8; 32],
) -> Result<(String, String), ApiError> {
    let id = random_token();
    let csrf_token = random_token();
    let ttl = i64::try_from(SESSION_TTL.as_micros()).unwrap_or(i64::MAX);
    let command = Command::CreateSession {
        id_hash: secret_hash(&id),
        key_hash,
        csrf_token: csrf_token.clone(),
        expires_at: Timestamp(now().0.saturating_add(ttl)),
    };
    state.store.write(WriteRequest { idempotency: None, command }).await?;
    Ok((id, csrf_token))
}

async fn session_find(state: &AppState, id: &str) -> Result<Option<([u8; 32], String)>, ApiError> {
    if id.is_empty() || id.len() > 128 {
        return Ok(None);
    }
    let id_hash = secret_hash(id);
    let at = now();
    Ok(state.store.read(move |reader| reader.session(&id_hash, at)).await?)
}

async fn session_remove(state: &AppState, id: &str) -> Result<(), ApiError> {
    let command = Command::DeleteSession { id_hash: secret_hash(id) };
    state.store.write(WriteRequest { idempotency: None, command }).await?;
    Ok(())
}

/// The session id from the request's cookies, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|h| h.to_str().ok()).find_map(|h| {
        cookie::Cookie::split_parse(h)
            .filter_map(Result::ok)
            .find(|c| c.name() == COOKIE_NAME)
            .map(|c| c.value().to_string())
    })
}

/// Whether the request echoes the session's CSRF token (compared in constant time).
fn csrf_matches(headers: &HeaderMap, csrf_token: &str) -> bool {
    let sent = headers.get("x-csrf-token").map(HeaderValue::as_bytes).unwrap_or(b"");
    bool::from(sent.ct_eq(csrf_token.as_bytes()))
}

fn unsafe_method(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authenticates a request by its session cookie; unsafe methods must carry the CSRF token.
pub async fn principal_from_session(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<Arc<Principal>>, ApiError> {
    let Some(id) = session_id(&parts.headers) else { return Ok(None) };
    let Some((key_hash, csrf_token)) = session_find(state, &id).await? else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "the session has ended; sign in again"));
    };
    if unsafe_method(&parts.method) && !csrf_matches(&parts.headers, &csrf_token) {
        return Err(ApiError::new(ErrorCode::Forbidden, "missing or wrong X-CSRF-Token"));
    }
    principal_for_hash(state, key_hash).await.map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalDto {
    key_id: String,
    account_id: Option<String>,
    member_id: Option<String>,
    /// The member's role, for a member-bound key.
    role: Option<String>,
    scopes: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto {
    principal: PrincipalDto,
    csrf_token: String,
}

fn session_dto(principal: &Principal, csrf_token: String) -> SessionDto {
    let scopes = if principal.has("*") {
        credits_core::access::SCOPES.iter().map(|s| s.to_string()).collect()
    } else {
        principal.scopes.clone()
    };
    SessionDto {
        principal: PrincipalDto {
            key_id: principal.key_id.clone(),
            account_id: principal.account_id.clone(),
            member_id: principal.member_id.clone(),
            role: principal.role.map(|r| r.as_str().to_string()),
            scopes,
        },
        csrf_token,
    }
}

fn cookie(value: &str, max_age_seconds: u64) -> HeaderValue {
    let text = format!(
        "{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_seconds}"
    );
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

/// A browser's sign-in must come from this site: when an `Origin` header is sent, its host must
/// be the `Host` the request was sent to (login CSRF protection on top of SameSite).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Sign in: the key is checked like a bearer key and traded for a session cookie.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::new(ErrorCode::Forbidden, "sign in from this site only"));
    }
    let sign_in = parse_json::<SignIn>(&body)?.request;
    if sign_in.key.is_empty() || sign_in.key.len() > 512 {
        return Err(ApiError::new(ErrorCode::Unauthorized, "unknown or revoked key"));
    }
    let key_hash = secret_hash(&sign_in.key);
    let principal = principal_for_hash(&state, key_hash).await?;
    let (id, csrf_token) = session_create(&state, key_hash).await?;
    let mut response = Json(session_dto(&principal, csrf_token)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie(&id, SESSION_TTL.as_secs()));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Who is signed in, with the CSRF token for the page to send back.
pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionDto>, ApiError> {
    let signed_out = || ApiError::new(ErrorCode::Unauthorized, "not signed in");
    let id = session_id(&headers).ok_or_else(signed_out)?;
    let (key_hash, csrf_token) = session_find(&state, &id).await?.ok_or_else(signed_out)?;
    let principal = principal_for_hash(&state, key_hash).await?;
    Ok(Json(session_dto(&principal, csrf_token)))
}

/// Sign out (needs the CSRF token).
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = session_id(&headers)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "not signed in"))?;
    let Some((_, csrf_token)) = session_find(&state, &id).await? else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "not signed in"));
    };
    if !csrf_matches(&headers, &csrf_token) {
        return Err(ApiError::new(ErrorCode::Forbidden, "missing or wrong X-CSRF-Token"));
    }
    session_remove(&state, &id).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    Ok(response)
}
