//! Health, readiness, the OpenAPI document, the docs page and the problem+json fallbacks.

use std::any::Any;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "system", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "the database cannot be reached", body = crate::error::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.read(|reader| reader.ping()).await?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// Prometheus metrics: writer batches and commits, webhook attempts and delivery lag.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = (state.metrics)();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

pub async fn openapi_json(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.docs.openapi_json.clone()).into_response()
}

pub async fn docs_page(State(state): State<AppState>) -> Html<String> {
    Html(state.docs.html.clone())
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such path")
}

/// 405, with the path's methods in `Allow` (axum adds it). The SPEC has no code of its own for
/// it: the problem's code is `bad_request`, its status 405.
pub async fn method_not_allowed() -> Response {
    let error = ApiError::bad_request("this method is not allowed on this path");
    let mut problem = error.problem();
    problem.status = StatusCode::METHOD_NOT_ALLOWED.as_u16();
    problem.title = "Method not allowed".to_string();
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, Json(problem)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(crate::error::PROBLEM_JSON));
    response
}

pub fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let error = ApiError::new(ErrorCode::Unavailable, "internal error");
    let mut response = error.into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
