//! Mapping between rows and values, and the statements that persist them.

use crate::db::{json_rows, params, Conn, DbError, DbResult, Optional, Row};

use credits_core::{
    Actor, Allocation, CreditKind, CreditRecord, EntryType, LedgerEntry, Reservation,
    ReservationStatus, Timestamp,
};

use credits_core::access::Role;
use credits_core::budget::{Budget, BudgetScope, Enforcement, Period};

use crate::types::{
    Account, ApiKey, AutoTopUp, Delivery, DeliveryStatus, Event, Member, StoredEntry, UsageRecord,
    WebhookEndpoint,
};
use crate::StoreError;

type SqlResult<T> = DbResult<T>;

fn invalid(column: usize, what: &str) -> DbError {
    DbError::Invalid(format!("column {column} holds {what}"))
}

fn timestamp(row: &Row<'_>, column: usize) -> SqlResult<Timestamp> {
    Ok(Timestamp(row.get(column)?))
}

fn timestamp_opt(row: &Row<'_>, column: usize) -> SqlResult<Option<Timestamp>> {
    Ok(row.get::<Option<i64>>(column)?.map(Timestamp))
}

pub(crate) fn encode_allocations(allocations: &[Allocation]) -> String {
    let parts: Vec<String> =
        allocations.iter().map(|a| format!("{}:{}", a.credit_id, a.credits)).collect();
    parts.join(";")
}

pub(crate) fn decode_allocations(text: &str, column: usize) -> SqlResult<Vec<Allocation>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(';')
        .map(|part| {
            let (credit_id, credits) = part.split_once(':').ok_or_else(|| invalid(column, part))?;
            let credits = credits.parse().map_err(|_| invalid(column, part))?;
            Ok(Allocation { credit_id: credit_id.to_string(), credits })
        })
        .collect()
}

pub(crate) const ACCOUNT_COLUMNS: &str = "seq, id, name, external_id, low_balance_threshold, \
    expiring_soon_days, auto_top_up_threshold, auto_top_up_amount, auto_top_up_service, \
    created_at, updated_at, low_balance_fired, top_up_fired";

pub(crate) fn account_from_row(row: &Row<'_>) -> SqlResult<(i64, Account)> {
    let threshold: Option<u64> = row.get(6)?;
    let amount: Option<u64> = row.get(7)?;
    let service: Option<String> = row.get(8)?;
    let auto_top_up = match (threshold, amount, service) {
        (Some(threshold), Some(amount), Some(service)) => {
            Some(AutoTopUp { threshold, amount, service })
        }
        _ => None,
    };
    Ok((
        row.get(0)?,
        Account {
            id: row.get(1)?,
            name: row.get(2)?,
            external_id: row.get(3)?,
            low_balance_threshold: row.get(4)?,
            expiring_soon_days: row.get(5)?,
            auto_top_up,
            created_at: timestamp(row, 9)?,
            updated_at: timestamp(row, 10)?,
            low_balance_fired: row.get(11)?,
            top_up_fired: row.get(12)?,
        },
    ))
}

pub(crate) fn account_save(connection: &Conn<'_>, account: &Account) -> SqlResult<()> {
    let top_up = account.auto_top_up.as_ref();
    connection
        .prepare_cached(
            "INSERT INTO accounts (id, name, external_id, low_balance_threshold, \
             expiring_soon_days, auto_top_up_threshold, auto_top_up_amount, auto_top_up_service, \
             created_at, updated_at, low_balance_fired, top_up_fired) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT(id) DO UPDATE SET name = ?2, external_id = ?3, \
             low_balance_threshold = ?4, expiring_soon_days = ?5, auto_top_up_threshold = ?6, \
             auto_top_up_amount = ?7, auto_top_up_service = ?8, updated_at = ?10, \
             low_balance_fired = ?11, top_up_fired = ?12",
        )?
        .execute(params![
            account.id,
            account.name,
            account.external_id,
            account.low_balance_threshold,
            account.expiring_soon_days,
            top_up.map(|t| t.threshold),
            top_up.map(|t| t.amount),
            top_up.map(|t| t.service.as_str()),
            account.created_at.0,
            account.updated_at.0,
            account.low_balance_fired,
            account.top_up_fired,
        ])?;
    Ok(())
}

pub(crate) const CREDIT_COLUMNS: &str = "seq, id, account_id, amount, used, reserved, remaining, \
    expired_amount, voided_amount, expires_at, service, description, kind, priority, reference, \
    expired, voided, created_at, updated_at";

pub(crate) fn credit_from_row(row: &Row<'_>) -> SqlResult<(i64, CreditRecord)> {
    let kind: String = row.get(12)?;
    let record = CreditRecord {
        id: row.get(1)?,
        account_id: row.get(2)?,
        amount: row.get(3)?,
        used: row.get(4)?,
        reserved: row.get(5)?,
        remaining: row.get(6)?,
        expired_amount: row.get(7)?,
        voided_amount: row.get(8)?,
        expires_at: timestamp_opt(row, 9)?,
        service: row.get(10)?,
        description: row.get(11)?,
        kind: CreditKind::parse(&kind).ok_or_else(|| invalid(12, &kind))?,
        priority: row.get(13)?,
        reference: row.get(14)?,
        expired: row.get(15)?,
        voided: row.get(16)?,
        created_at: timestamp(row, 17)?,
        updated_at: timestamp(row, 18)?,
    };
    Ok((row.get(0)?, record))
}

pub(crate) fn credit_save(connection: &Conn<'_>, record: &CreditRecord) -> SqlResult<()> {
    record.assert_equation();
    connection
        .prepare_cached(
            "INSERT INTO credits (id, account_id, amount, used, reserved, remaining, \
             expired_amount, voided_amount, expires_at, service, description, kind, priority, \
             reference, expired, voided, status, open, created_at, updated_at) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
             ?19, ?20) ON CONFLICT(id) DO UPDATE SET used = ?4, reserved = ?5, remaining = ?6, \
             expired_amount = ?7, voided_amount = ?8, expired = ?15, voided = ?16, status = ?17, \
             open = ?18, updated_at = ?20",
        )?
        .execute(params![
            record.id,
            record.account_id,
            record.amount,
            record.used,
            record.reserved,
            record.remaining,
            record.expired_amount,
            record.voided_amount,
            record.expires_at.map(Timestamp::micros),
            record.service,
            record.description,
            record.kind.as_str(),
            record.priority,
            record.reference,
            record.expired,
            record.voided,
            record.status().as_str(),
            record.open(),
            record.created_at.0,
            record.updated_at.0,
        ])?;
    Ok(())
}

pub(crate) const RESERVATION_COLUMNS: &str = "seq, id, account_id, service, credits, captured, \
    status, expires_at, allocations, member_id, api_key_id, usage_id, created_at, updated_at";

pub(crate) fn reservation_from_row(row: &Row<'_>) -> SqlResult<Reservation> {
    let status: String = row.get(6)?;
    let allocations: String = row.get(8)?;
    Ok(Reservation {
        id: row.get(1)?,
        account_id: row.get(2)?,
        service: row.get(3)?,
        credits: row.get(4)?,
        captured: row.get(5)?,
        status: ReservationStatus::parse(&status).ok_or_else(|| invalid(6, &status))?,
        expires_at: timestamp(row, 7)?,
        allocations: decode_allocations(&allocations, 8)?,
        actor: Actor { member_id: row.get(9)?, api_key_id: row.get(10)? },
        usage_id: row.get(11)?,
        created_at: timestamp(row, 12)?,
        updated_at: timestamp(row, 13)?,
    })
}

pub(crate) fn reservation_save(connection: &Conn<'_>, hold: &Reservation) -> SqlResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO reservations (id, account_id, service, credits, captured, status, \
             expires_at, allocations, member_id, api_key_id, usage_id, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT(id) DO UPDATE SET captured = ?5, status = ?6, usage_id = ?11, \
             updated_at = ?13",
        )?
        .execute(params![
            hold.id,
            hold.account_id,
            hold.service,
            hold.credits,
            hold.captured,
            hold.status.as_str(),
            hold.expires_at.0,
            encode_allocations(&hold.allocations),
            hold.actor.member_id,
            hold.actor.api_key_id,
            hold.usage_id,
            hold.created_at.0,
            hold.updated_at.0,
        ])?;
    Ok(())
}

pub(crate) const USAGE_COLUMNS: &str = "seq, id, account_id, service, operation, quantity, \
    credits, allocations, member_id, api_key_id, metadata, balance_after, reservation_id, \
    created_at, remaining_after";

pub(crate) fn usage_from_row(row: &Row<'_>) -> SqlResult<(i64, UsageRecord)> {
    let allocations: String = row.get(7)?;
    Ok((
        row.get(0)?,
        UsageRecord {
            id: row.get(1)?,
            account_id: row.get(2)?,
            service: row.get(3)?,
            operation: row.get(4)?,
            quantity: row.get(5)?,
            credits: row.get(6)?,
            allocations: decode_allocations(&allocations, 7)?,
            actor: Actor { member_id: row.get(8)?, api_key_id: row.get(9)? },
            metadata: row.get(10)?,
            balance_after: row.get(11)?,
            reservation_id: row.get(12)?,
            created_at: timestamp(row, 13)?,
            remaining_after: row.get(14)?,
        },
    ))
}

/// A usage that keeps no ledger entry (a captured hold's) with its hourly rollup.
pub(crate) fn usage_insert(connection: &Conn<'_>, usage: &UsageRecord) -> SqlResult<()> {
    assert!(
        usage.remaining_after.is_none(),
        "a usage keeping its entry needs its place: {usage:?}"
    );
    usage_row_insert(connection, usage, None)?;
    // The hourly rollup that usage summaries read instead of raw usage.
    hourly_add(connection, &HourlyKey::of(usage), usage.credits, 1)
}

/// The usage row alone (its hourly rollup is the caller's), with the place in the ledger of
/// the entry it keeps, if it keeps one (see `UsageRecord::remaining_after`).
pub(crate) fn usage_row_insert(
    connection: &Conn<'_>,
    usage: &UsageRecord,
    entry_seq: Option<i64>,
) -> SqlResult<()> {
    assert_eq!(usage.remaining_after.is_some(), entry_seq.is_some(), "{usage:?}");
    connection
        .prepare_cached(
            "INSERT INTO usage (id, account_id, service, operation, quantity, credits, \
             allocations, member_id, api_key_id, metadata, balance_after, reservation_id, \
             created_at, credit_id, remaining_after, entry_seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?
        .execute(params![
            usage.id,
            usage.account_id,
            usage.service,
            usage.operation,
            usage.quantity,
            usage.credits,
            encode_allocations(&usage.allocations),
            usage.actor.member_id,
            usage.actor.api_key_id,
            usage.metadata,
            usage.balance_after,
            usage.reservation_id,
            usage.created_at.0,
            usage.entry_credit_id(),
            usage.remaining_after,
            entry_seq,
        ])?;
    Ok(())
}

/// The row of the hourly rollup a usage counts in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct HourlyKey {
    pub(crate) account_id: String,
    pub(crate) hour: i64,
    pub(crate) service: String,
    pub(crate) operation: String,
    pub(crate) member_id: String,
    pub(crate) api_key_id: String,
}

impl HourlyKey {
    pub(crate) fn of(usage: &UsageRecord) -> HourlyKey {
        HourlyKey {
            account_id: usage.account_id.clone(),
            hour: usage.created_at.0 - usage.created_at.0.rem_euclid(HOUR_MICROS),
            service: usage.service.clone(),
            operation: usage.operation.clone().unwrap_or_default(),
            member_id: usage.actor.member_id.clone().unwrap_or_default(),
            api_key_id: usage.actor.api_key_id.clone().unwrap_or_default(),
        }
    }
}

pub(crate) const HOURLY_UPSERT: &str = "ON CONFLICT (account_id, hour, service, operation, \
    member_id, api_key_id) DO UPDATE SET credits = usage_hourly.credits + excluded.credits, \
    count = usage_hourly.count + excluded.count";

pub(crate) fn hourly_add(
    connection: &Conn<'_>,
    key: &HourlyKey,
    credits: u64,
    count: u64,
) -> SqlResult<()> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO usage_hourly (account_id, hour, service, operation, member_id, \
             api_key_id, credits, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) {HOURLY_UPSERT}"
        ))?
        .execute(params![
            key.account_id,
            key.hour,
            key.service,
            key.operation,
            key.member_id,
            key.api_key_id,
            credits,
            count,
        ])?;
    Ok(())
}

pub(crate) const HOUR_MICROS: i64 = 3_600_000_000;

pub(crate) const LEDGER_COLUMNS: &str = "seq, account_id, credit_id, type, credits, \
    remaining_after, usage_id, reservation_id, member_id, api_key_id, created_at";

pub(crate) fn ledger_id(seq: i64) -> String {
    format!("le_{seq:012}")
}

pub(crate) fn entry_from_row(row: &Row<'_>) -> SqlResult<(i64, StoredEntry)> {
    let seq: i64 = row.get(0)?;
    let entry_type: String = row.get(3)?;
    Ok((
        seq,
        StoredEntry {
            id: ledger_id(seq),
            entry: LedgerEntry {
                account_id: row.get(1)?,
                credit_id: row.get(2)?,
                entry_type: EntryType::parse(&entry_type).ok_or_else(|| invalid(3, &entry_type))?,
                credits: row.get(4)?,
                remaining_after: row.get(5)?,
                usage_id: row.get(6)?,
                reservation_id: row.get(7)?,
                actor: Actor { member_id: row.get(8)?, api_key_id: row.get(9)? },
                created_at: timestamp(row, 10)?,
            },
        },
    ))
}

/// The ledger entry a usage row keeps (see `UsageRecord::remaining_after`), in the order of
/// [`LEDGER_COLUMNS`] (read with [`entry_from_row`]): its `seq` is `entry_seq`, from the
/// ledger's own.
pub(crate) const USAGE_ENTRY_COLUMNS: &str = "entry_seq, account_id, credit_id, 'usage', \
    credits, remaining_after, id, reservation_id, member_id, api_key_id, created_at";

/// A `ledger` row, in its place `seq` when given (SQLite, see [`LedgerSeq`]), else the next of
/// the table's sequence (PostgreSQL).
pub(crate) fn entry_insert(
    connection: &Conn<'_>,
    entry: &LedgerEntry,
    seq: Option<i64>,
) -> SqlResult<()> {
    assert!(entry.credits > 0, "a ledger entry moves a positive amount: {entry:?}");
    let sql = match seq {
        Some(_) => {
            "INSERT INTO ledger (account_id, credit_id, type, credits, remaining_after, \
             usage_id, reservation_id, member_id, api_key_id, created_at, seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        }
        None => {
            "INSERT INTO ledger (account_id, credit_id, type, credits, remaining_after, \
             usage_id, reservation_id, member_id, api_key_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        }
    };
    let values = params![
        entry.account_id,
        entry.credit_id,
        entry.entry_type.as_str(),
        entry.credits,
        entry.remaining_after,
        entry.usage_id,
        entry.reservation_id,
        entry.actor.member_id,
        entry.actor.api_key_id,
        entry.created_at.0,
        seq,
    ];
    let values = if seq.is_some() { values } else { &values[..10] };
    connection.prepare_cached(sql)?.execute(values)?;
    Ok(())
}

/// The ledger's places (`seq`) on SQLite, shared by `ledger` rows and the entries usage rows
/// keep (see `UsageRecord::remaining_after`), so that one order holds them all. The writer is
/// the database's only writer: it reads the highest place taken once, then counts on. A place
/// taken by a batch that rolls back is left unused. On PostgreSQL the table's sequence gives
/// both (`bulk::journal_copy`).
#[derive(Debug, Default)]
pub(crate) struct LedgerSeq {
    next: Option<i64>,
}

impl LedgerSeq {
    pub(crate) fn take(&mut self, connection: &Conn<'_>) -> SqlResult<i64> {
        let next = match self.next {
            Some(next) => next,
            None => {
                let ledger: Option<i64> = connection
                    .prepare_cached("SELECT max(seq) FROM ledger")?
                    .query_row(params![], |row| row.get(0))?;
                // Usage rows take their places in `seq` order, so the newest keeping one has
                // the highest.
                let usage: Option<i64> = connection
                    .prepare_cached(
                        "SELECT entry_seq FROM usage WHERE entry_seq IS NOT NULL \
                         ORDER BY seq DESC LIMIT 1",
                    )?
                    .query_row(params![], |row| row.get(0))
                    .optional()?
                    .flatten();
                ledger.unwrap_or(0).max(usage.unwrap_or(0)) + 1
            }
        };
        self.next = Some(next + 1);
        Ok(next)
    }
}

pub(crate) const API_KEY_COLUMNS: &str = "seq, id, account_id, member_id, name, prefix, scopes, \
    created_at, last_used_at, revoked_at";

pub(crate) fn api_key_from_row(row: &Row<'_>) -> SqlResult<(i64, ApiKey)> {
    let scopes: String = row.get(6)?;
    Ok((
        row.get(0)?,
        ApiKey {
            id: row.get(1)?,
            account_id: row.get(2)?,
            member_id: row.get(3)?,
            name: row.get(4)?,
            prefix: row.get(5)?,
            scopes: scopes.split_whitespace().map(str::to_string).collect(),
            created_at: timestamp(row, 7)?,
            last_used_at: timestamp_opt(row, 8)?,
            revoked_at: timestamp_opt(row, 9)?,
        },
    ))
}

pub(crate) const MEMBER_COLUMNS: &str =
    "seq, id, account_id, email, name, role, created_at, updated_at";

pub(crate) fn member_from_row(row: &Row<'_>) -> SqlResult<(i64, Member)> {
    let role: String = row.get(5)?;
    Ok((
        row.get(0)?,
        Member {
            id: row.get(1)?,
            account_id: row.get(2)?,
            email: row.get(3)?,
            name: row.get(4)?,
            role: Role::parse(&role).ok_or_else(|| invalid(5, &role))?,
            created_at: timestamp(row, 6)?,
            updated_at: timestamp(row, 7)?,
        },
    ))
}

pub(crate) fn member_save(connection: &Conn<'_>, member: &Member) -> SqlResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO members (id, account_id, email, name, role, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET email = ?3, \
             name = ?4, role = ?5, updated_at = ?7",
        )?
        .execute(params![
            member.id,
            member.account_id,
            member.email,
            member.name,
            member.role.as_str(),
            member.created_at.0,
            member.updated_at.0,
        ])?;
    Ok(())
}

pub(crate) const BUDGET_COLUMNS: &str = "seq, id, account_id, name, scope_type, scope_id, period, \
    limit_credits, enforcement, thresholds, spent, period_start, created_at, updated_at, \
    fired_percent, exceeded_fired";

pub(crate) fn budget_from_row(row: &Row<'_>) -> SqlResult<(i64, Budget)> {
    let scope_type: String = row.get(4)?;
    let period: String = row.get(6)?;
    let enforcement: String = row.get(8)?;
    let thresholds: String = row.get(9)?;
    Ok((
        row.get(0)?,
        Budget {
            id: row.get(1)?,
            account_id: row.get(2)?,
            name: row.get(3)?,
            scope: BudgetScope::parse(&scope_type, row.get(5)?)
                .ok_or_else(|| invalid(4, &scope_type))?,
            period: Period::parse(&period).ok_or_else(|| invalid(6, &period))?,
            limit: row.get(7)?,
            enforcement: Enforcement::parse(&enforcement)
                .ok_or_else(|| invalid(8, &enforcement))?,
            thresholds: thresholds
                .split_whitespace()
                .map(|t| t.parse().map_err(|_| invalid(9, t)))
                .collect::<SqlResult<_>>()?,
            spent: row.get(10)?,
            period_start: timestamp(row, 11)?,
            created_at: timestamp(row, 12)?,
            updated_at: timestamp(row, 13)?,
            fired_percent: row.get(14)?,
            exceeded_fired: row.get(15)?,
        },
    ))
}

pub(crate) fn budget_save(connection: &Conn<'_>, budget: &Budget) -> SqlResult<()> {
    let thresholds: Vec<String> = budget.thresholds.iter().map(u32::to_string).collect();
    connection
        .prepare_cached(
            "INSERT INTO budgets (id, account_id, name, scope_type, scope_id, period, \
             limit_credits, enforcement, thresholds, spent, period_start, created_at, updated_at, \
             fired_percent, exceeded_fired) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
             ON CONFLICT(id) DO UPDATE SET name = ?3, limit_credits = ?7, enforcement = ?8, \
             thresholds = ?9, spent = ?10, period_start = ?11, updated_at = ?13, \
             fired_percent = ?14, exceeded_fired = ?15",
        )?
        .execute(params![
            budget.id,
            budget.account_id,
            budget.name,
            budget.scope.kind(),
            budget.scope.id(),
            budget.period.as_str(),
            budget.limit,
            budget.enforcement.as_str(),
            thresholds.join(" "),
            budget.spent,
            budget.period_start.0,
            budget.created_at.0,
            budget.updated_at.0,
            budget.fired_percent,
            budget.exceeded_fired,
        ])?;
    Ok(())
}

pub(crate) fn budgets_of_account(
    connection: &Conn<'_>,
    account_id: &str,
) -> Result<Vec<Budget>, StoreError> {
    let mut statement = connection
        .prepare_cached(&format!("SELECT {BUDGET_COLUMNS} FROM budgets WHERE account_id = ?1"))?;
    let budgets = statement
        .query_map([account_id], budget_from_row)?
        .map(|row| row.map(|(_, budget)| budget))
        .collect::<SqlResult<_>>()?;
    Ok(budgets)
}

/// An account's open records, held reservations and budgets: all a usage needs. On PostgreSQL,
/// where it is read with the account locked, one round trip instead of three, so that the lock
/// is held for less. (It cannot come with the lock statement itself: that statement's snapshot
/// is taken before it waits for the lock, and would miss the commit of the batch it waited for.)
pub(crate) fn account_state(
    connection: &Conn<'_>,
    account_id: &str,
) -> Result<(credits_core::Book, Vec<Budget>), StoreError> {
    if !connection.is_pg() {
        return Ok((
            book_load(connection, account_id)?,
            budgets_of_account(connection, account_id)?,
        ));
    }
    let mut statement = connection.prepare_cached(&account_state_select("?1"))?;
    let (credits, holds, budgets) = statement.query_row([account_id], |row| {
        Ok((
            row.get::<Option<String>>(0)?,
            row.get::<Option<String>>(1)?,
            row.get::<Option<String>>(2)?,
        ))
    })?;
    Ok(account_state_of(account_id, credits.as_deref(), holds.as_deref(), budgets.as_deref())?)
}

/// PostgreSQL: the select of [`account_state`], its account id being `account` (a placeholder).
fn account_state_select(account: &str) -> String {
    format!("SELECT {}", account_state_columns(account))
}

/// The three JSON columns of an account's state (open records, held reservations, budgets),
/// its id being the expression `account`.
fn account_state_columns(account: &str) -> String {
    format!(
        "(SELECT json_agg(json_build_array({CREDIT_COLUMNS})) FROM credits \
          WHERE account_id = {account} AND open = 1)::text, \
         (SELECT json_agg(json_build_array({RESERVATION_COLUMNS})) FROM reservations \
          WHERE account_id = {account} AND status = 'held')::text, \
         (SELECT json_agg(json_build_array({BUDGET_COLUMNS})) FROM budgets \
          WHERE account_id = {account})::text"
    )
}

/// The account's state from the three JSON columns of [`account_state_select`].
pub(crate) fn account_state_of(
    account_id: &str,
    credits: Option<&str>,
    holds: Option<&str>,
    budgets: Option<&str>,
) -> DbResult<(credits_core::Book, Vec<Budget>)> {
    let mut book = credits_core::Book::new(account_id);
    book.records = json_rows(credits, 0, |row| credit_from_row(row).map(|(_, r)| r))?;
    book.holds = json_rows(holds, 1, reservation_from_row)?;
    let budgets = json_rows(budgets, 2, |row| budget_from_row(row).map(|(_, b)| b))?;
    Ok((book, budgets))
}

/// PostgreSQL: the name and the `CREATE OR REPLACE` of a function that reads the state
/// ([`account_state_select`]) of each account in its array argument, one row per account
/// (`o_account`, then the three JSON columns), so that a batch's lock statement brings the state
/// of the accounts it locked in the same round trip (`Writer::lock_rows`). A statement reads with
/// the snapshot it started with, taken before it waited for the locks; a volatile PL/pgSQL
/// function takes a fresh snapshot for each query it runs, so the state is read after the locks
/// are granted and shows what their previous holders committed. It is one query for all the
/// accounts (a batch over many accounts pays one function call and one executor start, not
/// three queries an account). The name carries a hash of the body: nodes of two versions (a
/// rolling upgrade) each call their own.
pub(crate) fn account_state_function() -> &'static (String, String) {
    static FUNCTION: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    FUNCTION.get_or_init(|| {
        use sha2::Digest;
        let select = format!(
            "SELECT a.id, {} FROM unnest(p_accounts) AS a(id)",
            account_state_columns("a.id")
        );
        // The query's plan is the same whatever the accounts, but PostgreSQL's plan cache
        // estimates the argument's array at one element when it knows it and at many when it
        // does not, so it found every custom plan cheaper than the generic one and planned the
        // query anew in each call: an eighth of the leader's locked round trip. The generic plan is
        // kept until the writer discards its connection's plans (`writer::PLANS_KEPT`), so that a
        // plan made while the tables were small does not scan them whole once they have grown, on
        // a server that never analyzes them (an `ANALYZE` discards it too).
        let settings = "SET plan_cache_mode = force_generic_plan";
        let hash = sha2::Sha256::digest(format!("{select} {settings}").as_bytes());
        let name: String = std::iter::once("credits_account_states_".to_string())
            .chain(hash.iter().take(6).map(|b| format!("{b:02x}")))
            .collect();
        let create = format!(
            "CREATE OR REPLACE FUNCTION {name}(p_accounts TEXT[]) \
             RETURNS TABLE (o_account TEXT, o_credits TEXT, o_holds TEXT, o_budgets TEXT) \
             LANGUAGE plpgsql VOLATILE {settings} \
             AS $state$ BEGIN RETURN QUERY {select}; END $state$"
        );
        (name, create)
    })
}

/// Loads the open records and held reservations of an account: all a debit needs.
pub(crate) fn book_load(
    connection: &Conn<'_>,
    account_id: &str,
) -> Result<credits_core::Book, StoreError> {
    let mut book = credits_core::Book::new(account_id);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {CREDIT_COLUMNS} FROM credits WHERE account_id = ?1 AND open = 1"
    ))?;
    for row in statement.query_map([account_id], credit_from_row)? {
        book.records.push(row?.1);
    }
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE account_id = ?1 AND status = 'held'"
    ))?;
    for row in statement.query_map([account_id], reservation_from_row)? {
        book.holds.push(row?);
    }
    Ok(book)
}

pub(crate) const EVENT_COLUMNS: &str = "seq, id, account_id, type, data, created_at";

pub(crate) fn event_from_row(row: &Row<'_>) -> SqlResult<(i64, Event)> {
    Ok((
        row.get(0)?,
        Event {
            id: row.get(1)?,
            account_id: row.get(2)?,
            event_type: row.get(3)?,
            data: row.get(4)?,
            created_at: timestamp(row, 5)?,
        },
    ))
}

pub(crate) fn event_insert(connection: &Conn<'_>, event: &Event) -> SqlResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO events (id, account_id, type, data, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            event.id,
            event.account_id,
            event.event_type,
            event.data,
            event.created_at.0
        ])?;
    Ok(())
}

pub(crate) const ENDPOINT_COLUMNS: &str =
    "seq, id, account_id, url, events, secret_sealed, disabled_at, created_at";

pub(crate) fn endpoint_from_row(row: &Row<'_>) -> SqlResult<(i64, WebhookEndpoint)> {
    let events: String = row.get(4)?;
    Ok((
        row.get(0)?,
        WebhookEndpoint {
            id: row.get(1)?,
            account_id: row.get(2)?,
            url: row.get(3)?,
            events: events.split_whitespace().map(str::to_string).collect(),
            secret_sealed: row.get(5)?,
            disabled_at: timestamp_opt(row, 6)?,
            created_at: timestamp(row, 7)?,
        },
    ))
}

pub(crate) const DELIVERY_COLUMNS: &str = "seq, id, endpoint_id, event_id, attempt, status, \
    response_code, duration_ms, created_at, next_attempt_at";

pub(crate) fn delivery_from_row(row: &Row<'_>) -> SqlResult<(i64, Delivery)> {
    let status: String = row.get(5)?;
    Ok((
        row.get(0)?,
        Delivery {
            id: row.get(1)?,
            endpoint_id: row.get(2)?,
            event_id: row.get(3)?,
            attempt: row.get(4)?,
            status: DeliveryStatus::parse(&status).ok_or_else(|| invalid(5, &status))?,
            response_code: row.get(6)?,
            duration_ms: row.get(7)?,
            created_at: timestamp(row, 8)?,
            next_attempt_at: timestamp_opt(row, 9)?,
        },
    ))
}

pub(crate) fn delivery_save(connection: &Conn<'_>, delivery: &Delivery) -> SqlResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO deliveries (id, endpoint_id, event_id, attempt, status, response_code, \
             duration_ms, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT(id) DO UPDATE SET status = ?5, response_code = ?6, duration_ms = ?7, \
             next_attempt_at = ?9",
        )?
        .execute(params![
            delivery.id,
            delivery.endpoint_id,
            delivery.event_id,
            delivery.attempt,
            delivery.status.as_str(),
            delivery.response_code,
            delivery.duration_ms,
            delivery.created_at.0,
            delivery.next_attempt_at.map(Timestamp::micros),
        ])?;
    Ok(())
}
