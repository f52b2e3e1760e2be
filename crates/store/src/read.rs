//! Reads on committed data. What they return is viewed at the caller's `now`: a credit record or
//! hold whose instant has passed reads as expired whether or not the sweep has applied it.

use std::collections::BTreeMap;

use crate::db::{params, Conn, DbResult, Optional, OwnedValue, Row};

use credits_core::{
    book::Balance, Book, CreditRecord, CreditStatus, Effects, EntryType, Reservation, Timestamp,
};

use credits_core::access::Role;
use credits_core::budget::Budget;

use crate::rows::{self, book_load};
use crate::types::*;
use crate::StoreError;

/// How long a node's claim on a due delivery lasts by default (PostgreSQL): longer than an
/// attempt's timeout, so that only a node that died lets another deliver the event again.
pub const DELIVERY_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) fn service_find(connection: &Conn<'_>, id: &str) -> Result<Option<Service>, StoreError> {
    let row = connection
        .prepare_cached(
            "SELECT id, name, unit_cost, created_at, updated_at FROM services WHERE id = ?1",
        )?
        .query_row([id], |row| {
            Ok(Service {
                id: row.get(0)?,
                name: row.get(1)?,
                unit_cost: row.get(2)?,
                operations: BTreeMap::new(),
                created_at: Timestamp(row.get(3)?),
                updated_at: Timestamp(row.get(4)?),
            })
        })
        .optional()?;
    let Some(mut service) = row else {
        return Ok(None);
    };
    let mut statement = connection
        .prepare_cached("SELECT name, cost FROM service_operations WHERE service_id = ?1")?;
    for operation in statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))? {
        let (name, cost) = operation?;
        service.operations.insert(name, cost);
    }
    Ok(Some(service))
}

/// One row by key: `sql` selects with `?1`, `map` turns the row into `(seq, value)`.
pub(crate) fn find_one<T>(
    connection: &Conn<'_>,
    sql: &str,
    key: &str,
    map: impl FnOnce(&Row<'_>) -> DbResult<(i64, T)>,
) -> Result<Option<T>, StoreError> {
    let row = connection.prepare_cached(sql)?.query_row([key], map).optional()?;
    Ok(row.map(|(_, value)| value))
}

pub(crate) fn account_find(connection: &Conn<'_>, id: &str) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {} FROM accounts WHERE id = ?1", rows::ACCOUNT_COLUMNS);
    find_one(connection, &sql, id, rows::account_from_row)
}

pub(crate) fn api_key_find(connection: &Conn<'_>, id: &str) -> Result<Option<ApiKey>, StoreError> {
    let sql = format!("SELECT {} FROM api_keys WHERE id = ?1", rows::API_KEY_COLUMNS);
    find_one(connection, &sql, id, rows::api_key_from_row)
}

/// A member that has not been deleted.
pub(crate) fn member_find(connection: &Conn<'_>, id: &str) -> Result<Option<Member>, StoreError> {
    let sql = format!(
        "SELECT {} FROM members WHERE id = ?1 AND deleted_at IS NULL",
        rows::MEMBER_COLUMNS
    );
    find_one(connection, &sql, id, rows::member_from_row)
}

pub(crate) fn budget_find(connection: &Conn<'_>, id: &str) -> Result<Option<Budget>, StoreError> {
    let sql = format!("SELECT {} FROM budgets WHERE id = ?1", rows::BUDGET_COLUMNS);
    find_one(connection, &sql, id, rows::budget_from_row)
}

pub(crate) fn event_find(connection: &Conn<'_>, id: &str) -> Result<Option<Event>, StoreError> {
    let sql = format!("SELECT {} FROM events WHERE id = ?1", rows::EVENT_COLUMNS);
    find_one(connection, &sql, id, rows::event_from_row)
}

/// An endpoint that was not deleted.
pub(crate) fn endpoint_find(
    connection: &Conn<'_>,
    id: &str,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    let sql = format!(
        "SELECT {} FROM webhook_endpoints WHERE id = ?1 AND deleted_at IS NULL",
        rows::ENDPOINT_COLUMNS
    );
    find_one(connection, &sql, id, rows::endpoint_from_row)
}

pub(crate) fn credit_find(
    connection: &Conn<'_>,
    id: &str,
) -> Result<Option<CreditRecord>, StoreError> {
    let sql = format!("SELECT {} FROM credits WHERE id = ?1", rows::CREDIT_COLUMNS);
    find_one(connection, &sql, id, rows::credit_from_row)
}

pub(crate) fn reservation_find(
    connection: &Conn<'_>,
    id: &str,
) -> Result<Option<Reservation>, StoreError> {
    let sql = format!("SELECT {} FROM reservations WHERE id = ?1", rows::RESERVATION_COLUMNS);
    Ok(connection.prepare_cached(&sql)?.query_row([id], rows::reservation_from_row).optional()?)
}

/// Builds `WHERE` clauses and their parameters for the list queries.
#[derive(Default, Clone)]
struct Where {
    clauses: Vec<String>,
    values: Vec<OwnedValue>,
}

impl Where {
    fn push(&mut self, clause: &str, values: impl IntoIterator<Item = OwnedValue>) {
        self.clauses.push(clause.to_string());
        self.values.extend(values);
    }
    fn text(value: &str) -> OwnedValue {
        OwnedValue::Text(value.to_string())
    }
    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

pub struct Reader<'c> {
    connection: &'c Conn<'c>,
}

impl<'c> Reader<'c> {
    pub(crate) fn new(connection: &'c Conn<'c>) -> Reader<'c> {
        Reader { connection }
    }

    fn page<T>(
        &self,
        table_sql: &str,
        mut filter: Where,
        page: PageRequest,
        map: impl Fn(&Row<'_>) -> DbResult<(i64, T)>,
    ) -> Result<Page<T>, StoreError> {
        if let Some(before) = page.before {
            filter.push("seq < ?", [OwnedValue::Int(before.seq)]);
        }
        let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
        let sql = format!("{table_sql} {} ORDER BY seq DESC LIMIT {limit}", filter.sql());
        let items = self.page_rows(&sql, &filter, page.limit, map)?;
        Ok(Page::ending(items, page.limit, |(seq, _)| Position { created_at: None, seq: *seq }))
    }

    /// A page of a list in time order (`created_at`, then `seq`, newest first), read through an
    /// index that starts with the filter's equalities and ends with `created_at, seq`, so that
    /// neither a time filter nor the cursor makes the page read more than its own rows.
    fn page_in_time<T>(
        &self,
        table_sql: &str,
        filter: Where,
        page: PageRequest,
        map: impl Fn(&Row<'_>) -> DbResult<(i64, T)>,
        created_at: impl Fn(&T) -> i64,
    ) -> Result<Page<T>, StoreError> {
        let items = self.rows_in_time(table_sql, "seq", filter, page.before, page.limit, map)?;
        Ok(Page::ending(items, page.limit, |(seq, item)| Position {
            created_at: Some(created_at(item)),
            seq: *seq,
        }))
    }

    /// The first `limit + 1` rows of a list in time order (`created_at`, then the column `seq`)
    /// after `before` (see [`Reader::page_in_time`]), each with its `seq`.
    fn rows_in_time<T>(
        &self,
        table_sql: &str,
        seq: &str,
        mut filter: Where,
        before: Option<Position>,
        limit: usize,
        map: impl Fn(&Row<'_>) -> DbResult<(i64, T)>,
    ) -> Result<Vec<(i64, T)>, StoreError> {
        if let Some(before) = before {
            let at = before.created_at.unwrap_or(i64::MAX);
            filter.push(
                &format!("created_at <= ? AND (created_at < ? OR {seq} < ?)"),
                [OwnedValue::Int(at), OwnedValue::Int(at), OwnedValue::Int(before.seq)],
            );
        }
        let rows = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let sql = format!(
            "{table_sql} {} ORDER BY created_at DESC, {seq} DESC LIMIT {rows}",
            filter.sql()
        );
        self.page_rows(&sql, &filter, limit, map)
    }

    fn page_rows<T>(
        &self,
        sql: &str,
        filter: &Where,
        limit: usize,
        map: impl Fn(&Row<'_>) -> DbResult<(i64, T)>,
    ) -> Result<Vec<(i64, T)>, StoreError> {
        let mut statement = self.connection.prepare_cached(sql)?;
        let mut items = Vec::with_capacity(limit + 1);
        for row in statement.query_map(&filter.values, map)? {
            items.push(row?);
        }
        Ok(items)
    }

    /// The active key with this SHA-256 secret hash, with the current role of the member it is
    /// bound to. A key bound to a deleted member is not active.
    pub fn api_key_by_hash(
        &self,
        secret_hash: &[u8; 32],
    ) -> Result<Option<(ApiKey, Option<Role>)>, StoreError> {
        let sql = "SELECT k.seq, k.id, k.account_id, k.member_id, k.name, k.prefix, k.scopes, \
             k.created_at, k.last_used_at, k.revoked_at, m.role, m.deleted_at \
             FROM api_keys k LEFT JOIN members m ON m.id = k.member_id \
             WHERE k.secret_hash = ?1 AND k.revoked_at IS NULL";
        let found = self
            .connection
            .prepare_cached(sql)?
            .query_row([secret_hash.as_slice()], |row| {
                let (_, key) = rows::api_key_from_row(row)?;
                let role: Option<String> = row.get(10)?;
                let deleted_at: Option<i64> = row.get(11)?;
                Ok((key, role, deleted_at))
            })
            .optional()?;
        let Some((key, role, deleted_at)) = found else {
            return Ok(None);
        };
        if key.member_id.is_none() {
            return Ok(Some((key, None)));
        }
        match (role.as_deref().and_then(Role::parse), deleted_at) {
            (Some(role), None) => Ok(Some((key, Some(role)))),
            _ => Ok(None),
        }
    }

    pub fn api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        api_key_find(self.connection, id)
    }

    /// Keys of one account, or (operators, `None`) every key.
    pub fn api_keys(
        &self,
        account_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        let mut filter = Where::default();
        if let Some(account_id) = account_id {
            filter.push("account_id = ?", [Where::text(account_id)]);
        }
        let table = format!("SELECT {} FROM api_keys", rows::API_KEY_COLUMNS);
        self.page(&table, filter, page, rows::api_key_from_row)
    }

    pub fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
        member_find(self.connection, id)
    }

    pub fn members(&self, account_id: &str, page: PageRequest) -> Result<Page<Member>, StoreError> {
        let mut filter = Where::default();
        filter.push("account_id = ? AND deleted_at IS NULL", [Where::text(account_id)]);
        let table = format!("SELECT {} FROM members", rows::MEMBER_COLUMNS);
        self.page(&table, filter, page, rows::member_from_row)
    }

    /// Events newest first, of one account (or all, for operators), optionally of one type.
    pub fn events(
        &self,
        account_id: Option<&str>,
        event_type: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        let mut filter = Where::default();
        if let Some(account_id) = account_id {
            filter.push("account_id = ?", [Where::text(account_id)]);
        }
        if let Some(event_type) = event_type {
            filter.push("type = ?", [Where::text(event_type)]);
        }
        let table = format!("SELECT {} FROM events", rows::EVENT_COLUMNS);
        self.page(&table, filter, page, rows::event_from_row)
    }

    pub fn event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        event_find(self.connection, id)
    }

    /// Endpoints that were not deleted, of one account, or (operators, `None`) all of them.
    pub fn webhook_endpoints(
        &self,
        account_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<WebhookEndpoint>, StoreError> {
        let mut filter = Where::default();
        filter.push("deleted_at IS NULL", []);
        if let Some(account_id) = account_id {
            filter.push("account_id = ?", [Where::text(account_id)]);
        }
        let table = format!("SELECT {} FROM webhook_endpoints", rows::ENDPOINT_COLUMNS);
        self.page(&table, filter, page, rows::endpoint_from_row)
    }

    pub fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
        endpoint_find(self.connection, id)
    }

    /// Every attempt to deliver to an endpoint, newest first.
    pub fn deliveries(
        &self,
        endpoint_id: &str,
        page: PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        let mut filter = Where::default();
        filter.push("endpoint_id = ?", [Where::text(endpoint_id)]);
        let table = format!("SELECT {} FROM deliveries", rows::DELIVERY_COLUMNS);
        self.page(&table, filter, page, rows::delivery_from_row)
    }

    /// Pending attempts due at `now`, oldest first, with their endpoint and event. On
    /// PostgreSQL they are claimed for `lease` (see [`DELIVERY_LEASE`]).
    pub fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(100);
        let sql = format!(
            "SELECT {} FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1 \
             AND endpoint_id NOT IN (SELECT id FROM webhook_endpoints \
             WHERE disabled_at IS NOT NULL OR deleted_at IS NOT NULL) \
             ORDER BY next_attempt_at LIMIT ?2",
            rows::DELIVERY_COLUMNS
        );
        // With several nodes on one database, each due delivery is claimed by one of them: its
        // next attempt moves a lease ahead, so another node retries it only if this one died.
        let sql = if self.connection.is_pg() {
            format!(
                "UPDATE deliveries SET next_attempt_at = ?1 + {lease} WHERE id IN \
                 (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1 \
                 AND endpoint_id NOT IN (SELECT id FROM webhook_endpoints \
                 WHERE disabled_at IS NOT NULL OR deleted_at IS NOT NULL) \
                 ORDER BY next_attempt_at LIMIT ?2 FOR UPDATE SKIP LOCKED) RETURNING {}",
                rows::DELIVERY_COLUMNS,
                lease = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 4)
            )
        } else {
            sql
        };
        let mut statement = self.connection.prepare_cached(&sql)?;
        let deliveries: Vec<Delivery> = statement
            .query_map(params![now.0, limit], rows::delivery_from_row)?
            .map(|row| row.map(|(_, delivery)| delivery))
            .collect::<Result<_, _>>()?;
        let mut due = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let endpoint = endpoint_find(self.connection, &delivery.endpoint_id)?;
            let event = self.event(&delivery.event_id)?;
            if let (Some(endpoint), Some(event)) = (endpoint, event) {
                due.push(DueDelivery { delivery, endpoint, event });
            }
        }
        Ok(due)
    }

    pub fn budget(&self, id: &str, now: Timestamp) -> Result<Option<Budget>, StoreError> {
        let Some(budget) = budget_find(self.connection, id)? else { return Ok(None) };
        let mut budgets = [budget];
        self.budgets_viewed(&mut budgets, now)?;
        let [budget] = budgets;
        Ok(Some(budget))
    }

    /// Applies to budgets, without writing, the holds that expired but were not swept yet, so
    /// that `spent` is exact at `now` like balances are.
    fn budgets_viewed(&self, budgets: &mut [Budget], now: Timestamp) -> Result<(), StoreError> {
        let Some(account_id) = budgets.first().map(|b| b.account_id.clone()) else {
            return Ok(());
        };
        let sql = format!(
            "SELECT {} FROM reservations WHERE account_id = ?1 AND status = 'held' \
             AND expires_at <= ?2",
            rows::RESERVATION_COLUMNS
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let due: Vec<Reservation> = statement
            .query_map(params![account_id, now.0], rows::reservation_from_row)?
            .collect::<Result<_, _>>()?;
        for budget in budgets.iter_mut() {
            for hold in &due {
                if hold.account_id == budget.account_id
                    && budget.scope.covers(&hold.actor, &hold.service)
                {
                    budget.refund(hold.credits, hold.created_at, now);
                }
            }
        }
        Ok(())
    }

    pub fn budgets(
        &self,
        account_id: &str,
        page: PageRequest,
        now: Timestamp,
    ) -> Result<Page<Budget>, StoreError> {
        let mut filter = Where::default();
        filter.push("account_id = ?", [Where::text(account_id)]);
        let table = format!("SELECT {} FROM budgets", rows::BUDGET_COLUMNS);
        let mut page = self.page(&table, filter, page, rows::budget_from_row)?;
        self.budgets_viewed(&mut page.items, now)?;
        Ok(page)
    }

    pub fn admin_key_exists(&self) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .prepare_cached("SELECT 1 FROM api_keys WHERE id = 'key_admin' AND revoked_at IS NULL")?
            .exists(params![])?)
    }

    /// A number that changes whenever some node revokes a key or changes a member (PostgreSQL;
    /// `None` on SQLite, where this process is the only writer and forgets keys itself).
    pub fn auth_epoch(&self) -> Result<Option<i64>, StoreError> {
        if !self.connection.is_pg() {
            return Ok(None);
        }
        let epoch = self
            .connection
            .prepare_cached("SELECT n FROM auth_epoch WHERE id = 1")?
            .query_row(params![], |row| row.get(0))?;
        Ok(Some(epoch))
    }

    /// A dashboard session not expired at `now`: the hash of its key and its CSRF token.
    pub fn session(
        &self,
        id_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<([u8; 32], String)>, StoreError> {
        let found = self
            .connection
            .prepare_cached(
                "SELECT key_hash, csrf_token FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![id_hash.as_slice(), now.0], |row| {
                Ok((row.get::<Vec<u8>>(0)?, row.get::<String>(1)?))
            })
            .optional()?;
        Ok(found.and_then(|(key_hash, csrf)| Some((key_hash.try_into().ok()?, csrf))))
    }

    /// Whether the database answers: for `/readyz`.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.connection.prepare_cached("SELECT 1")?.query_row(params![], |_| Ok(()))?;
        Ok(())
    }

    pub fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        account_find(self.connection, id)
    }

    pub fn accounts(
        &self,
        external_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Account>, StoreError> {
        let mut filter = Where::default();
        if let Some(external_id) = external_id {
            filter.push("external_id = ?", [Where::text(external_id)]);
        }
        let table = format!("SELECT {} FROM accounts", rows::ACCOUNT_COLUMNS);
        self.page(&table, filter, page, rows::account_from_row)
    }

    pub fn services(&self) -> Result<Vec<Service>, StoreError> {
        let mut statement =
            self.connection.prepare_cached("SELECT id FROM services ORDER BY id")?;
        let ids: Vec<String> =
            statement.query_map(params![], |row| row.get(0))?.collect::<Result<_, _>>()?;
        let mut services = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(service) = service_find(self.connection, &id)? {
                services.push(service);
            }
        }
        Ok(services)
    }

    pub fn service(&self, id: &str) -> Result<Option<Service>, StoreError> {
        service_find(self.connection, id)
    }

    /// Applies to `records` what time has made due at `now`, without writing.
    fn view_records(&self, records: &mut [CreditRecord], now: Timestamp) -> Result<(), StoreError> {
        let mut accounts_with_holds: Vec<String> = Vec::new();
        for record in records.iter() {
            if record.reserved > 0 && !accounts_with_holds.contains(&record.account_id) {
                accounts_with_holds.push(record.account_id.clone());
            }
        }
        let mut due_holds: Vec<Reservation> = Vec::new();
        for account_id in &accounts_with_holds {
            let sql = format!(
                "SELECT {} FROM reservations WHERE account_id = ?1 AND status = 'held' \
                 AND expires_at <= ?2",
                rows::RESERVATION_COLUMNS
            );
            let mut statement = self.connection.prepare_cached(&sql)?;
            for hold in
                statement.query_map(params![account_id, now.0], rows::reservation_from_row)?
            {
                due_holds.push(hold?);
            }
        }
        for record in records.iter_mut() {
            let mut book = Book::new(record.account_id.clone());
            book.records.push(record.clone());
            book.holds = due_holds
                .iter()
                .filter(|hold| hold.allocations.iter().any(|a| a.credit_id == record.id))
                .cloned()
                .collect();
            book.settle(now, &mut Effects::default());
            if let Some(viewed) = book.records.pop() {
                *record = viewed;
            }
        }
        Ok(())
    }

    pub fn credit(&self, id: &str, now: Timestamp) -> Result<Option<CreditRecord>, StoreError> {
        let Some(record) = credit_find(self.connection, id)? else {
            return Ok(None);
        };
        let mut records = [record];
        self.view_records(&mut records, now)?;
        let [record] = records;
        Ok(Some(record))
    }

    pub fn credits(
        &self,
        filter: &CreditFilter,
        page: PageRequest,
        now: Timestamp,
    ) -> Result<Page<CreditRecord>, StoreError> {
        let mut sql = Where::default();
        if let Some(account_id) = &filter.account_id {
            sql.push("account_id = ?", [Where::text(account_id)]);
        }
        if let Some(service) = &filter.service {
            sql.push("service = ?", [Where::text(service)]);
        }
        let now_value = OwnedValue::Int(now.0);
        match filter.status {
            None => {}
            Some(CreditStatus::Active) => sql
                .push("status = 'active' AND (expires_at IS NULL OR expires_at > ?)", [now_value]),
            Some(CreditStatus::Expired) => sql.push(
                "(status = 'expired' OR (status = 'active' AND expires_at <= ?))",
                [now_value],
            ),
            Some(CreditStatus::Depleted) => sql.push("status = 'depleted'", []),
            Some(CreditStatus::Voided) => sql.push("status = 'voided'", []),
        }
        let table = format!("SELECT {} FROM credits", rows::CREDIT_COLUMNS);
        let mut page = self.page(&table, sql, page, rows::credit_from_row)?;
        self.view_records(&mut page.items, now)?;
        Ok(page)
    }

    /// The account's balance at `now`: only its open records and held reservations are read.
    pub fn balance(&self, account_id: &str, now: Timestamp) -> Result<Balance, StoreError> {
        let mut book = book_load(self.connection, account_id)?;
        book.settle(now, &mut Effects::default());
        Ok(book.balance())
    }

    pub fn usage(
        &self,
        filter: &UsageFilter,
        page: PageRequest,
    ) -> Result<Page<UsageRecord>, StoreError> {
        self.settle()?;
        let mut sql = Where::default();
        if let Some(account_id) = &filter.account_id {
            sql.push("account_id = ?", [Where::text(account_id)]);
        }
        if let Some(service) = &filter.service {
            sql.push("service = ?", [Where::text(service)]);
        }
        if let Some(member_id) = &filter.member_id {
            sql.push("member_id = ?", [Where::text(member_id)]);
        }
        if let Some(api_key_id) = &filter.api_key_id {
            sql.push("api_key_id = ?", [Where::text(api_key_id)]);
        }
        if let Some(from) = filter.from {
            sql.push("created_at >= ?", [OwnedValue::Int(from.0)]);
        }
        if let Some(to) = filter.to {
            sql.push("created_at < ?", [OwnedValue::Int(to.0)]);
        }
        let table = format!("SELECT {} FROM usage", rows::USAGE_COLUMNS);
        self.page_in_time(&table, sql, page, rows::usage_from_row, |usage| usage.created_at.0)
    }

    /// Usage in `[from, to)` by hour: whole hours from the hourly rollup, the partial hours at
    /// either end from raw usage (indexed by account and time), so the answer is exact and real
    /// time while a long range reads at most one rollup row per hour and combination.
    pub fn usage_summary(
        &self,
        filter: &SummaryFilter,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<SummaryRow>, StoreError> {
        self.settle()?;
        let hour = rows::HOUR_MICROS;
        let first_whole = from.0 + (hour - from.0.rem_euclid(hour)) % hour;
        let last_whole = to.0 - to.0.rem_euclid(hour);
        let mut rows = Vec::new();
        if first_whole < last_whole {
            self.summary_part(filter, "usage_hourly", first_whole, last_whole, &mut rows)?;
            self.summary_part(filter, "usage", from.0, first_whole, &mut rows)?;
            self.summary_part(filter, "usage", last_whole, to.0, &mut rows)?;
        } else {
            self.summary_part(filter, "usage", from.0, to.0, &mut rows)?;
        }
        Ok(rows)
    }

    fn summary_part(
        &self,
        filter: &SummaryFilter,
        table: &str,
        from: i64,
        to: i64,
        out: &mut Vec<SummaryRow>,
    ) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        let rollup = table == "usage_hourly";
        let time = if rollup { "hour" } else { "created_at" };
        let mut sql = Where::default();
        if let Some(account_id) = &filter.account_id {
            sql.push("account_id = ?", [Where::text(account_id)]);
        }
        sql.push(
            &format!("{time} >= ? AND {time} < ?"),
            [OwnedValue::Int(from), OwnedValue::Int(to)],
        );
        if let Some(service) = &filter.service {
            sql.push("service = ?", [Where::text(service)]);
        }
        if let Some(member_id) = &filter.member_id {
            let column = if rollup { "member_id" } else { "coalesce(member_id, '')" };
            sql.push(&format!("{column} = ?"), [Where::text(member_id)]);
        }
        if let Some(api_key_id) = &filter.api_key_id {
            let column = if rollup { "api_key_id" } else { "coalesce(api_key_id, '')" };
            sql.push(&format!("{column} = ?"), [Where::text(api_key_id)]);
        }
        let select = if rollup {
            "SELECT hour, service, operation, member_id, api_key_id, CAST(sum(credits) AS BIGINT), CAST(sum(count) AS BIGINT) \
             FROM usage_hourly"
                .to_string()
        } else {
            format!(
                "SELECT (created_at / {hour}) * {hour}, service, coalesce(operation, ''), \
                 coalesce(member_id, ''), coalesce(api_key_id, ''), CAST(sum(credits) AS BIGINT), count(*) \
                 FROM usage",
                hour = rows::HOUR_MICROS
            )
        };
        let query = format!("{select} {} GROUP BY 1, 2, 3, 4, 5", sql.sql());
        let mut statement = self.connection.prepare_cached(&query)?;
        let found = statement.query_map(&sql.values, |row| {
            let text = |i: usize| -> DbResult<Option<String>> {
                let value: String = row.get(i)?;
                Ok(if value.is_empty() { None } else { Some(value) })
            };
            Ok(SummaryRow {
                hour: Timestamp(row.get(0)?),
                service: row.get(1)?,
                operation: text(2)?,
                member_id: text(3)?,
                api_key_id: text(4)?,
                credits: row.get(5)?,
                count: row.get(6)?,
            })
        })?;
        for row in found {
            out.push(row?);
        }
        Ok(())
    }

    /// On PostgreSQL, usage answered but not yet copied from the journal is copied first, so
    /// that a read after an answer shows its usage (see `copier`). SQLite writes usage at once.
    fn settle(&self) -> Result<(), StoreError> {
        if self.connection.is_pg() {
            crate::bulk::journal_settle(self.connection)?;
        }
        Ok(())
    }

    pub fn reservation(&self, id: &str) -> Result<Option<Reservation>, StoreError> {
        reservation_find(self.connection, id)
    }

    /// The ledger: the `ledger` rows, and the entries kept in usage rows (a usage drawn from
    /// one record, see [`UsageRecord::remaining_after`]), merged in time order. Both take their
    /// places (`seq`, and the usage rows' `entry_seq`) from one count, so the order is one. Each
    /// is read as a page of its own through its indexes, and the newest `limit` of both make
    /// the page.
    pub fn ledger(
        &self,
        filter: &LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<StoredEntry>, StoreError> {
        self.settle()?;
        // The filters on columns both tables have, under the same names.
        let mut shared = Where::default();
        if let Some(account_id) = &filter.account_id {
            shared.push("account_id = ?", [Where::text(account_id)]);
        }
        if let Some(credit_id) = &filter.credit_id {
            shared.push("credit_id = ?", [Where::text(credit_id)]);
        }
        if let Some(member_id) = &filter.member_id {
            shared.push("member_id = ?", [Where::text(member_id)]);
        }
        if let Some(api_key_id) = &filter.api_key_id {
            shared.push("api_key_id = ?", [Where::text(api_key_id)]);
        }
        if let Some(from) = filter.from {
            shared.push("created_at >= ?", [OwnedValue::Int(from.0)]);
        }
        if let Some(to) = filter.to {
            shared.push("created_at < ?", [OwnedValue::Int(to.0)]);
        }
        let mut entries = shared.clone();
        if let Some(entry_type) = filter.entry_type {
            entries.push("type = ?", [Where::text(entry_type.as_str())]);
            if entry_type != EntryType::Usage {
                // The condition of `ledger_account_type_time`, stated so that the index (which
                // leaves out the many usage entries) may serve the page.
                entries.push("type <> 'usage'", []);
            }
        }
        let table = format!("SELECT {} FROM ledger", rows::LEDGER_COLUMNS);
        let mut items = self.rows_in_time(
            &table,
            "seq",
            entries,
            page.before,
            page.limit,
            rows::entry_from_row,
        )?;
        if filter.entry_type.is_none_or(|t| t == EntryType::Usage) {
            let mut kept = shared;
            // Implied by `credit_id = ?`, and the condition of `usage_credit_time`.
            kept.push("credit_id IS NOT NULL", []);
            let table = format!("SELECT {} FROM usage", rows::USAGE_ENTRY_COLUMNS);
            items.extend(self.rows_in_time(
                &table,
                "entry_seq",
                kept,
                page.before,
                page.limit,
                rows::entry_from_row,
            )?);
            items.sort_unstable_by_key(|(seq, stored)| {
                std::cmp::Reverse((stored.entry.created_at.0, *seq))
            });
            items.truncate(page.limit + 1);
        }
        Ok(Page::ending(items, page.limit, |(seq, stored)| Position {
            created_at: Some(stored.entry.created_at.0),
            seq: *seq,
        }))
    }
}
