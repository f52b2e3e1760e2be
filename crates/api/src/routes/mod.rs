//! The handlers, one module per resource. Each validates, then runs one read or one write.

pub mod accounts;
pub mod api_keys;
pub mod balance;
pub mod budgets;
pub mod credits;
pub mod ledger;
pub mod members;
pub mod reservations;
pub mod services;
pub mod summary;
pub mod system;
pub mod usage;
pub mod webhooks;

use axum::Json;
use serde::Serialize;

use credits_core::{credits_valid, SLUG_LENGTH_MAX, TEXT_LENGTH_MAX};
use credits_store::Page;

use crate::dto::ListResponse;
use crate::error::ApiError;
use crate::extract::cursor_encode;
use crate::AppState;

pub(crate) fn check_credits(field: &str, amount: u64) -> Result<u64, ApiError> {
    if credits_valid(amount) {
        Ok(amount)
    } else {
        Err(ApiError::validation(format!("{field} must be an integer from 1 to 9007199254740991")))
    }
}

pub(crate) fn check_text(field: &str, text: Option<&str>) -> Result<(), ApiError> {
    match text {
        Some(text) if text.is_empty() || text.chars().count() > TEXT_LENGTH_MAX => {
            Err(ApiError::validation(format!("{field} must be 1 to {TEXT_LENGTH_MAX} characters")))
        }
        _ => Ok(()),
    }
}

/// Service and operation ids: 1 to 64 of `a-z`, `0-9`, `-`, `_` (`slug_pattern`).
pub(crate) fn check_slug(field: &str, id: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty()
        && id.len() <= SLUG_LENGTH_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::validation(format!("{field} must be 1 to 64 of a-z, 0-9, - and _")))
    }
}

/// What `check_slug` accepts, as a pattern for the OpenAPI document.
pub(crate) fn slug_pattern() -> String {
    format!("^[a-z0-9_-]{{1,{SLUG_LENGTH_MAX}}}$")
}

pub(crate) fn list_response<T, D: Serialize>(
    page: Page<T>,
    map: impl FnMut(T) -> D,
) -> Json<ListResponse<D>> {
    Json(ListResponse {
        data: page.items.into_iter().map(map).collect(),
        has_more: page.next.is_some(),
        next_cursor: page.next.map(cursor_encode),
    })
}

/// The query of a list that is about one account: `accountId` (required for operators where
/// the list is per account; elsewhere an operator omits it to list every account's) and paging.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AccountPageQuery {
    /// The account (account keys: their own, may be omitted).
    pub account_id: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The common start of a list: the caller's scope, the page asked for, and the account the list
/// is about (which must exist; `required` makes it mandatory for operators). The page is
/// `limit`, `cursor` and the list's order.
pub(crate) async fn list_start(
    state: &AppState,
    principal: &crate::auth::Principal,
    scope: &str,
    account_id: Option<&str>,
    required: bool,
    (limit, cursor, order): (Option<usize>, Option<&str>, crate::extract::Order),
) -> Result<(Option<String>, credits_store::PageRequest), ApiError> {
    principal.require(scope)?;
    let page = crate::extract::page_request(limit, cursor, order)?;
    let account_id = principal.account_for_read(account_id, required)?;
    if let Some(account_id) = &account_id {
        account_exists(state, account_id).await?;
    }
    Ok((account_id, page))
}

/// 404 unless the account exists (so that a list filtered by an unknown account says so).
pub(crate) async fn account_exists(state: &AppState, account_id: &str) -> Result<(), ApiError> {
    let id = account_id.to_string();
    let found = state.store.read(move |reader| reader.account(&id)).await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("no such account {account_id}"))),
    }
}
