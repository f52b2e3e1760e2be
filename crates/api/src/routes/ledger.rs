//! `/v2/ledger`: every change to every credit record, never rewritten; JSON pages or a CSV export.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use credits_core::EntryType;
use credits_store::{LedgerFilter, PageRequest};

use super::list_response;
use crate::auth::Principal;
use crate::dto::{LedgerEntryDto, ListResponse};
use crate::error::ApiError;
use crate::extract::{format_time, parse_time_query, ApiQuery};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// Operators: the account (omit for every account).
    pub account_id: Option<String>,
    pub credit_id: Option<String>,
    /// `purchase`, `grant`, `usage`, `hold`, `capture`, `release`, `expiry` or `void`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub entry_type: Option<String>,
    /// Only changes attributed to this member.
    pub member_id: Option<String>,
    /// Only changes made with this API key.
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

const CSV_HEADER: [&str; 11] = [
    "id",
    "accountId",
    "creditId",
    "type",
    "credits",
    "remainingAfter",
    "usageId",
    "reservationId",
    "memberId",
    "apiKeyId",
    "createdAt",
];

fn csv_chunk(entries: &[credits_store::StoredEntry], header: bool) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        let _ = writer.write_record(CSV_HEADER);
    }
    for stored in entries {
        let entry = &stored.entry;
        let none = String::new();
        let _ = writer.write_record([
            stored.id.as_str(),
            &entry.account_id,
            &entry.credit_id,
            entry.entry_type.as_str(),
            &entry.credits.to_string(),
            &entry.remaining_after.to_string(),
            entry.usage_id.as_ref().unwrap_or(&none),
            entry.reservation_id.as_ref().unwrap_or(&none),
            entry.actor.member_id.as_ref().unwrap_or(&none),
            entry.actor.api_key_id.as_ref().unwrap_or(&none),
            &format_time(entry.created_at),
        ]);
    }
    writer.into_inner().unwrap_or_default()
}

/// Streams the whole filtered ledger as CSV, newest first, reading it a page at a time.
fn csv_response(state: AppState, filter: LedgerFilter) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut before = None;
        let mut first = true;
        loop {
            let page_filter = filter.clone();
            let page = PageRequest { limit: 1000, before };
            let read = state.store.read(move |reader| reader.ledger(&page_filter, page)).await;
            let page = match read {
                Ok(page) => page,
                Err(error) => {
                    let _ = sender.send(Err(std::io::Error::other(error.to_string()))).await;
                    return;
                }
            };
            if sender.send(Ok(csv_chunk(&page.items, first))).await.is_err() {
                return;
            }
            first = false;
            match page.next {
                Some(next) => before = Some(next),
                None => return,
            }
        }
    });
    let stream = tokio_stream_from(receiver);
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], Body::from_stream(stream)).into_response()
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

/// The ledger, newest first; with `Accept: text/csv`, all of it (filtered) as CSV.
#[utoipa::path(get, path = "/v2/ledger", tag = "ledger", params(LedgerQuery),
    responses((status = 200, body = ListResponse<LedgerEntryDto>,
        description = "JSON page, or the CSV export with Accept: text/csv")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<LedgerQuery>,
) -> Result<Response, ApiError> {
    let (account_id, page) = super::list_start(
        &state,
        &principal,
        "credits:read",
        query.account_id.as_deref(),
        false,
        (query.limit, query.cursor.as_deref(), crate::extract::Order::Time),
    )
    .await?;
    let entry_type = query
        .entry_type
        .as_deref()
        .map(|t| EntryType::parse(t).ok_or_else(|| ApiError::bad_request("unknown type")))
        .transpose()?;
    let filter = LedgerFilter {
        account_id,
        credit_id: query.credit_id,
        entry_type,
        member_id: query.member_id,
        api_key_id: query.api_key_id,
        from: parse_time_query("from", query.from.as_deref())?,
        to: parse_time_query("to", query.to.as_deref())?,
    };
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        return Ok(csv_response(state, filter));
    }
    let found = state.store.read(move |reader| reader.ledger(&filter, page)).await?;
    Ok(list_response(found, |item| LedgerEntryDto::from(&item)).into_response())
}
