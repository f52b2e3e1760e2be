//! `GET /v2/usage/summary`: usage analytics grouped by service, operation, member, key, day or
//! hour, read from the hourly rollup (plus raw usage for the partial hours at either end), so it
//! is real time and a 90-day range never scans raw usage.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::OffsetDateTime;

use credits_core::Timestamp;
use credits_store::{SummaryFilter, SummaryRow};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{format_time, now, parse_time_query, ApiQuery};
use crate::AppState;

/// The longest range one summary may cover.
const SUMMARY_DAYS_MAX: i64 = 400;
const DAY_MICROS: i64 = 86_400_000_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Operators: the account (omit for every account).
    pub account_id: Option<String>,
    /// RFC 3339, inclusive; default 30 days before `to`.
    pub from: Option<String>,
    /// RFC 3339, exclusive; default now.
    pub to: Option<String>,
    /// Comma list of `service`, `operation`, `member`, `apiKey`, `day`, `hour`.
    pub group_by: Option<String>,
    pub service: Option<String>,
    pub member_id: Option<String>,
    pub api_key_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Service,
    Operation,
    Member,
    ApiKey,
    Day,
    Hour,
}

/// The names `groupBy` lists, in order: the one list `Dimension::parse` reads and the OpenAPI
/// document states.
pub const GROUP_BY_NAMES: [&str; 6] = ["service", "operation", "member", "apiKey", "day", "hour"];

impl Dimension {
    const ALL: [Dimension; 6] = [
        Dimension::Service,
        Dimension::Operation,
        Dimension::Member,
        Dimension::ApiKey,
        Dimension::Day,
        Dimension::Hour,
    ];

    fn parse(text: &str) -> Option<Dimension> {
        let index = GROUP_BY_NAMES.iter().position(|name| *name == text)?;
        Some(Dimension::ALL[index])
    }

    /// The field naming this dimension in each row of the answer.
    fn field(self) -> &'static str {
        match self {
            Dimension::Service => "service",
            Dimension::Operation => "operation",
            Dimension::Member => "memberId",
            Dimension::ApiKey => "apiKeyId",
            Dimension::Day => "day",
            Dimension::Hour => "hour",
        }
    }

    fn value(self, row: &SummaryRow) -> Option<String> {
        match self {
            Dimension::Service => Some(row.service.clone()),
            Dimension::Operation => row.operation.clone(),
            Dimension::Member => row.member_id.clone(),
            Dimension::ApiKey => row.api_key_id.clone(),
            Dimension::Day => day_of(row.hour),
            Dimension::Hour => Some(format_time(row.hour)),
        }
    }
}

fn day_of(at: Timestamp) -> Option<String> {
    let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1000).ok()?;
    instant.date().format(format_description!("[year]-[month]-[day]")).ok()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummaryDto {
    pub from: String,
    pub to: String,
    /// One row per group: a field per `groupBy` name (`service`, `operation`, `memberId`,
    /// `apiKeyId`, `day` as YYYY-MM-DD, `hour` as RFC 3339), then `credits` and `count`.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Usage analytics: sums of credits and counts, grouped as asked.
#[utoipa::path(get, path = "/v2/usage/summary", tag = "usage", params(SummaryQuery),
    responses((status = 200, body = UsageSummaryDto), (status = 400, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn summary(
    State(state): State<AppState>,
    principal: Arc<Principal>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Json<UsageSummaryDto>, ApiError> {
    principal.require("usage:read")?;
    let account_id = principal.account_for_read(query.account_id.as_deref(), false)?;
    if let Some(account_id) = &account_id {
        super::account_exists(&state, account_id).await?;
    }
    let to = parse_time_query("to", query.to.as_deref())?.unwrap_or_else(now);
    let from = parse_time_query("from", query.from.as_deref())?
        .unwrap_or(Timestamp(to.0 - 30 * DAY_MICROS));
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    if to.0 - from.0 > SUMMARY_DAYS_MAX * DAY_MICROS {
        return Err(ApiError::bad_request("a summary covers at most 400 days"));
    }
    let mut dimensions: Vec<Dimension> = Vec::new();
    for name in query.group_by.as_deref().unwrap_or("").split(',').filter(|n| !n.is_empty()) {
        let dimension = Dimension::parse(name.trim()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown groupBy {name}: use service, operation, member, apiKey, day, hour"
            ))
        })?;
        if !dimensions.contains(&dimension) {
            dimensions.push(dimension);
        }
    }
    let filter = SummaryFilter {
        account_id,
        service: query.service,
        member_id: query.member_id,
        api_key_id: query.api_key_id,
    };
    let rows = state.store.read(move |reader| reader.usage_summary(&filter, from, to)).await?;
    let mut groups: BTreeMap<Vec<Option<String>>, (u64, u64)> = BTreeMap::new();
    for row in &rows {
        let key = dimensions.iter().map(|d| d.value(row)).collect();
        let group = groups.entry(key).or_default();
        group.0 = group.0.saturating_add(row.credits);
        group.1 = group.1.saturating_add(row.count);
    }
    let data = groups
        .into_iter()
        .map(|(key, (credits, count))| {
            let mut item = serde_json::Map::new();
            for (dimension, value) in dimensions.iter().zip(key) {
                item.insert(dimension.field().to_string(), value.into());
            }
            item.insert("credits".to_string(), credits.into());
            item.insert("count".to_string(), count.into());
            item
        })
        .collect();
    Ok(Json(UsageSummaryDto { from: format_time(from), to: format_time(to), data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_by_name_parses_to_its_own_dimension() {
        let parsed: Vec<Dimension> =
            GROUP_BY_NAMES.iter().filter_map(|name| Dimension::parse(name)).collect();
        assert_eq!(parsed, Dimension::ALL);
        assert_eq!(Dimension::parse("month"), None);
        assert_eq!(Dimension::parse("Service"), None);
    }
}
