//! `/v2/balance`: what an account can spend now, exact to the instant.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::auth::Principal;
use crate::dto::BalanceDto;
use crate::error::ApiError;
use crate::extract::{now, ApiQuery};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct BalanceQuery {
    /// Required for operator keys.
    pub account_id: Option<String>,
}

/// The account's available and reserved credits, in total and by service, and the next expiry.
#[utoipa::path(get, path = "/v2/balance", tag = "balance", params(BalanceQuery),
    responses((status = 200, body = BalanceDto), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn retrieve(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<Json<BalanceDto>, ApiError> {
    principal.require("credits:read")?;
    let account_id = principal
        .account_for_read(query.account_id.as_deref(), true)?
        .ok_or_else(|| ApiError::bad_request("accountId is required"))?;
    let at = now();
    let lookup = account_id.clone();
    // One trip to a read connection: the account check and the balance together.
    let balance = state
        .store
        .read(move |reader| match reader.account(&lookup)? {
            Some(_) => reader.balance(&lookup, at).map(Some),
            None => Ok(None),
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no such account {account_id}")))?;
    Ok(Json(BalanceDto::new(account_id, &balance, at)))
}
