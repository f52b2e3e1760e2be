//! `ApiError`: every failure as RFC 9457 problem+json with one of the SPEC's stable codes.
//! 4xx are the caller's and not logged; 5xx log their cause and hide it from the caller.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use credits_core::Rejection;
use credits_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    InsufficientCredits,
    BudgetExceeded,
    Forbidden,
    NotFound,
    IdempotencyConflict,
    DuplicateReference,
    InvalidState,
    PayloadTooLarge,
    ValidationFailed,
    RateLimited,
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InsufficientCredits => "insufficient_credits",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::DuplicateReference => "duplicate_reference",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientCredits | ErrorCode::BudgetExceeded => {
                StatusCode::PAYMENT_REQUIRED
            }
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::IdempotencyConflict
            | ErrorCode::DuplicateReference
            | ErrorCode::InvalidState => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::InsufficientCredits => "Insufficient credits",
            ErrorCode::BudgetExceeded => "Budget exceeded",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotFound => "Not found",
            ErrorCode::IdempotencyConflict => "Idempotency key reused with another request",
            ErrorCode::DuplicateReference => "Duplicate reference",
            ErrorCode::InvalidState => "Invalid state",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::ValidationFailed => "Validation failed",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::Unavailable => "Service unavailable",
        }
    }
}

/// The problem+json body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:credits:error:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable machine code, for example `insufficient_credits`.
    pub code: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    /// Seconds to wait, sent as `Retry-After` (429).
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError { code, detail: detail.into(), retry_after_seconds: None }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, detail)
    }
    pub fn validation(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::ValidationFailed, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, detail)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:credits:error:{}", self.code.as_str()),
            title: self.code.title().to_string(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_string(),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.problem()).unwrap_or_default()
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        match rejection {
            Rejection::NotFound(what) => ApiError::not_found(format!("no such {what}")),
            Rejection::Validation(detail) => ApiError::validation(detail),
            Rejection::InvalidState(detail) => ApiError::new(ErrorCode::InvalidState, detail),
            Rejection::InsufficientCredits { available, required } => ApiError::new(
                ErrorCode::InsufficientCredits,
                format!("{required} credits required, {available} available"),
            ),
            Rejection::BudgetExceeded { budget_id, limit, spent, required } => ApiError::new(
                ErrorCode::BudgetExceeded,
                format!(
                    "budget {budget_id} allows {limit} credits this period; \
                     {spent} are spent and {required} more were asked"
                ),
            ),
            Rejection::DuplicateReference(reference) => ApiError::new(
                ErrorCode::DuplicateReference,
                format!("a credit record with reference {reference} exists on this account"),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Unavailable(cause) | StoreError::Conflict(cause) => {
                tracing::error!(%cause, "store unavailable");
                ApiError::new(ErrorCode::Unavailable, "the database is unavailable; retry later")
            }
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), self.body()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
