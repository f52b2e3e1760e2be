//! The HTTP API of the credits service: the only crate that knows HTTP and JSON.
//!
//! Handlers authenticate, parse and validate, then hand one [`credits_store::Command`] to the
//! store's writer, or run a read. Every write's answer is rendered by [`render::render`] inside
//! the writer's transaction, so an idempotent replay returns exactly the first answer.

pub mod auth;
pub mod dashboard;
pub mod docs;
pub mod dto;
pub mod error;
pub mod extract;
pub mod forward;
pub mod limit;
pub mod openapi;
pub mod render;
mod routes;
pub mod session;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use credits_core::REQUEST_BYTES_MAX;
use credits_store::{Executed, Idempotency, Store, WriteRequest};

use crate::auth::{KeyCache, Principal};
use crate::error::{ApiError, PROBLEM_JSON};

/// What the API needs of webhooks: sealing new secrets and the URL rules.
pub struct WebhookConfig {
    pub secrets: Arc<credits_webhooks::SecretBox>,
    pub policy: credits_webhooks::UrlPolicy,
}

#[derive(Clone)]
pub struct AppState {
    /// Renders the Prometheus metrics for `/metrics`.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    pub store: Store,
    pub keys: Arc<KeyCache>,
    /// Per-key request rate limit; `None`: unlimited.
    pub rate_limit: Option<Arc<limit::RateLimit>>,
    pub docs: Arc<docs::Docs>,
    pub webhooks: Arc<WebhookConfig>,
    /// On PostgreSQL with nodes that can reach one another: sends hot accounts' usages to the
    /// leader node (`forward.rs`).
    pub forward: Option<Arc<forward::Forwarder>>,
}

impl AppState {
    pub fn new(
        store: Store,
        webhooks: Arc<WebhookConfig>,
        metrics: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> AppState {
        AppState {
            metrics,
            store,
            keys: Arc::default(),
            rate_limit: None,
            docs: Arc::new(docs::Docs::build()),
            webhooks,
            forward: None,
        }
    }

    /// Sends hot accounts' usages to the leader node (see `forward.rs`).
    pub fn with_forwarder(mut self, forwarder: Arc<forward::Forwarder>) -> AppState {
        self.forward = Some(forwarder);
        self
    }
}

impl AppState {
    /// Limits every key to `per_second` requests a second (bursts of as many); 0: no limit.
    pub fn with_rate_limit(mut self, per_second: u32) -> AppState {
        self.rate_limit = limit::RateLimit::per_second(per_second).map(Arc::new);
        self
    }
}

/// The renderer the store needs to keep answers for replay.
pub fn renderer() -> credits_store::Render {
    Arc::new(render::JsonRenderer)
}

pub fn router(state: AppState) -> Router {
    let v2 = Router::new()
        .route("/accounts", post(routes::accounts::create).get(routes::accounts::list))
        .route("/accounts/{id}", get(routes::accounts::retrieve).patch(routes::accounts::update))
        .route("/services", get(routes::services::list).post(routes::services::create))
        .route("/services/{id}", get(routes::services::retrieve).patch(routes::services::update))
        .route("/credits", get(routes::credits::list).post(routes::credits::create))
        .route("/credits/{id}", get(routes::credits::retrieve))
        .route("/credits/{id}/void", post(routes::credits::void))
        .route("/balance", get(routes::balance::retrieve))
        .route("/usage", get(routes::usage::list).post(routes::usage::create))
        .route("/usage/batch", post(routes::usage::batch))
        .route("/usage/summary", get(routes::summary::summary))
        .route("/reservations", post(routes::reservations::create))
        .route("/reservations/{id}", get(routes::reservations::retrieve))
        .route("/reservations/{id}/capture", post(routes::reservations::capture))
        .route("/reservations/{id}/release", post(routes::reservations::release))
        .route("/ledger", get(routes::ledger::list))
        .route("/members", post(routes::members::create).get(routes::members::list))
        .route(
            "/members/{id}",
            get(routes::members::retrieve)
                .patch(routes::members::update)
                .delete(routes::members::delete),
        )
        .route("/api-keys", post(routes::api_keys::create).get(routes::api_keys::list))
        .route("/api-keys/{id}", axum::routing::delete(routes::api_keys::revoke))
        .route("/webhook-endpoints", post(routes::webhooks::create).get(routes::webhooks::list))
        .route("/webhook-endpoints/{id}", axum::routing::delete(routes::webhooks::delete))
        .route("/webhook-endpoints/{id}/deliveries", get(routes::webhooks::deliveries))
        .route("/webhook-endpoints/{id}/redeliver", post(routes::webhooks::redeliver))
        .route("/events", get(routes::webhooks::events))
        .route("/budgets", post(routes::budgets::create).get(routes::budgets::list))
        .route(
            "/budgets/{id}",
            get(routes::budgets::retrieve)
                .patch(routes::budgets::update)
                .delete(routes::budgets::delete),
        );
    Router::new()
        .nest("/v2", v2)
        .merge(dashboard::routes())
        .route("/healthz", get(routes::system::healthz))
        .route("/readyz", get(routes::system::readyz))
        .route("/session", post(session::create).get(session::current).delete(session::delete))
        .route("/metrics", get(routes::system::metrics))
        .route(forward::FORWARD_PATH, post(forward::receive))
        .route("/openapi.json", get(routes::system::openapi_json))
        .route("/docs", get(routes::system::docs_page))
        .fallback(routes::system::not_found)
        .method_not_allowed_fallback(routes::system::method_not_allowed)
        .layer(DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(routes::system::panic_response))
        .with_state(state)
}

/// Turns an executed write into the HTTP answer, marking replays.
pub(crate) fn respond(executed: Executed) -> Response {
    let status = axum::http::StatusCode::from_u16(executed.rendered.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if status.is_success() { "application/json" } else { PROBLEM_JSON };
    let mut response = (status, executed.rendered.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if executed.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Submits one write with its idempotency key (if any) and answers with its result.
pub(crate) async fn write(
    state: &AppState,
    principal: &Principal,
    key: Option<String>,
    method_and_path: &str,
    body: &serde_json::Value,
    command: credits_store::Command,
) -> Result<Response, ApiError> {
    Ok(respond(submit(state, principal, key, method_and_path, body, command).await?))
}

/// Submits one write with its idempotency key (if any) and returns what the writer did.
pub(crate) async fn submit(
    state: &AppState,
    principal: &Principal,
    key: Option<String>,
    method_and_path: &str,
    body: &serde_json::Value,
    command: credits_store::Command,
) -> Result<Executed, ApiError> {
    let idempotency = key.map(|key| Idempotency {
        scope: principal.idempotency_scope(),
        key,
        request_hash: extract::request_hash(method_and_path, body),
    });
    let request = WriteRequest { idempotency, command };
    Ok(match &state.forward {
        Some(forwarder) => forwarder.write(&state.store, request).await?,
        None => state.store.write(request).await?,
    })
}

/// The answer to a create whose secret is shown once: the stored answer, which a replay returns,
/// never holds the secret; only the live, successful answer gets it added.
pub(crate) fn respond_with_secret(mut executed: Executed, secret: &str) -> Response {
    let success = (200..300).contains(&executed.rendered.status);
    if success && !executed.replayed {
        let parsed = serde_json::from_slice(&executed.rendered.body);
        if let Ok(serde_json::Value::Object(mut object)) = parsed {
            object.insert("secret".into(), secret.into());
            executed.rendered.body = serde_json::to_vec(&object).unwrap_or_default();
        }
    }
    respond(executed)
}
