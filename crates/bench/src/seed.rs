//! Seeding a stopped service's SQLite file with history, for the `scale` measurements.
//!
//! Goal: a store holding millions of ledger entries (or accounts) in minutes, that the service
//! cannot tell from one it wrote itself. Method: the service first writes a template through
//! its API (an account, its funding purchase, and for history some usages); with the service
//! stopped, every seeded row is a copy of the template row of its table (`SELECT *`, so every
//! column the store writes, in its own encoding) with only the values that differ replaced:
//! ids (`prefix_` + ULID, ascending like the writer's), account and record ids, amounts,
//! `remaining`/`remainingAfter`/`balanceAfter`, and times. Amounts stay consistent: a record's
//! `used` is the sum of its usage entries, `remaining` what is left, the hourly rollup sums the
//! usage rows, every usage keeps its ledger entry in its row (as the writer's usages of one
//! record do). Rows are inserted in time order, so `seq` and the ledger's places follow
//! `created_at` and ids as they do in a store the writer filled.
//!
//! Seeded history has no idempotency keys: its usages are older than the 24 h the service keeps
//! keys for. The file is written without a journal and without fsync (a scratch directory; if
//! seeding fails the run fails), then put back in WAL mode, as the service expects, and synced
//! to disk before the service starts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

const HOUR_MICROS: i64 = 3_600_000_000;

/// One row of a table as the store wrote it, without its `seq`.
struct Template {
    table: &'static str,
    columns: Vec<String>,
    values: Vec<Value>,
}

impl Template {
    /// The first row of `table` matching `filter` (a SQL condition on `?1`), by `seq` where
    /// the table has one.
    fn read(
        connection: &Connection,
        table: &'static str,
        filter: &str,
        value: &str,
    ) -> anyhow::Result<Template> {
        let order = if table == "usage_hourly" { "" } else { "ORDER BY seq" };
        let sql = format!("SELECT * FROM {table} WHERE {filter} {order} LIMIT 1");
        let mut statement = connection.prepare(&sql)?;
        let names: Vec<String> = statement.column_names().iter().map(|n| n.to_string()).collect();
        let mut rows = statement.query([value])?;
        let Some(row) = rows.next()? else {
            bail!("no template row in {table} where {filter} ({value})");
        };
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name != "seq" {
                columns.push(name.clone());
                values.push(row.get::<_, Value>(i)?);
            }
        }
        Ok(Template { table, columns, values })
    }

    fn index(&self, column: &str) -> anyhow::Result<usize> {
        self.columns
            .iter()
            .position(|c| c == column)
            .with_context(|| format!("{} has no column {column}", self.table))
    }

    fn get(&self, column: &str) -> anyhow::Result<&Value> {
        Ok(&self.values[self.index(column)?])
    }

    fn insert_sql(&self) -> String {
        let marks: Vec<String> = (1..=self.columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table,
            self.columns.join(", "),
            marks.join(", ")
        )
    }
}

/// Copies of one template with some columns replaced, inserted through one statement.
struct Copier<'c> {
    template: Template,
    statement: rusqlite::Statement<'c>,
    row: Vec<Value>,
}

impl<'c> Copier<'c> {
    fn new(connection: &'c Connection, template: Template) -> anyhow::Result<Copier<'c>> {
        let statement = connection.prepare(&template.insert_sql())?;
        let row = template.values.clone();
        Ok(Copier { template, statement, row })
    }

    fn column(&self, name: &str) -> anyhow::Result<usize> {
        self.template.index(name)
    }

    /// Inserts the template with `(column index, value)` replaced.
    fn insert(&mut self, changes: &mut [(usize, Value)]) -> anyhow::Result<()> {
        for (index, value) in changes.iter_mut() {
            self.row[*index] = std::mem::replace(value, Value::Null);
        }
        self.statement.execute(params_from_iter(self.row.iter()))?;
        Ok(())
    }
}

fn integer(value: &Value) -> anyhow::Result<i64> {
    match value {
        Value::Integer(n) => Ok(*n),
        other => bail!("expected an integer, found {other:?}"),
    }
}

fn text(value: &Value) -> anyhow::Result<String> {
    match value {
        Value::Text(s) => Ok(s.clone()),
        other => bail!("expected text, found {other:?}"),
    }
}

/// ULIDs in ascending order, as the service's monotonic generator makes them.
struct Ids {
    random: u128,
}

impl Ids {
    fn new(seed: u64) -> Ids {
        Ids { random: (u128::from(seed) << 16) & ((1u128 << 79) - 1) }
    }

    fn next(&mut self, prefix: &str, micros: i64) -> String {
        self.random += 1;
        let millis = u64::try_from(micros / 1000).unwrap_or(0);
        format!("{prefix}_{}", ulid::Ulid::from_parts(millis, self.random))
    }
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let connection =
        Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // A scratch file, written by this process alone: no journal, no fsync, a large cache.
    connection.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; \
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(connection)
}

/// Back to WAL, then the file and its directory to disk: the seeding wrote gigabytes without
/// fsync, and the kernel's writeback of them would otherwise compete with the service's own
/// fsyncs while it is measured.
fn close(connection: Connection, path: &Path) -> anyhow::Result<()> {
    connection.execute_batch("PRAGMA journal_mode = WAL;")?;
    connection.close().map_err(|(_, error)| error)?;
    std::fs::File::open(path)?.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What [`history`] made.
pub struct History {
    pub account_id: String,
    /// The account's creation, its first and its last seeded usage (µs since the epoch).
    pub created_at: i64,
    pub first_usage_at: i64,
    pub last_usage_at: i64,
    /// Credits of each usage (as the template's) and what the record has left.
    pub cost: u64,
    pub remaining: u64,
    pub rows: u64,
    pub seconds: f64,
}

/// The rows the service wrote for a funded account: the account, its record and the purchase.
struct Funded {
    account: Template,
    credit: Template,
    purchase: Template,
}

impl Funded {
    fn read(connection: &Connection, account_id: &str) -> anyhow::Result<Funded> {
        Ok(Funded {
            account: Template::read(connection, "accounts", "id = ?1", account_id)?,
            credit: Template::read(connection, "credits", "account_id = ?1", account_id)?,
            purchase: Template::read(
                connection,
                "ledger",
                "account_id = ?1 AND type = 'purchase'",
                account_id,
            )?,
        })
    }
}

/// Seeds one new account, created `span_micros` before `now_micros`, funded with one purchase of
/// `fund` like `template_account`'s, and `entries` usages of it spread evenly over that span up to
/// a minute before `now_micros`: each a usage row keeping its ledger entry, copied from the
/// template account's first usage (same service, quantity, cost and actor); plus their hourly
/// rollup.
pub fn history(
    database: &Path,
    template_account: &str,
    entries: u64,
    fund: u64,
    now_micros: i64,
    span_micros: i64,
) -> anyhow::Result<History> {
    let started = Instant::now();
    let mut connection = open(database)?;
    let transaction = connection.transaction()?;
    let Funded { account, credit, purchase } = Funded::read(&transaction, template_account)?;
    let usage = Template::read(&transaction, "usage", "account_id = ?1", template_account)?;
    let hourly = Template::read(&transaction, "usage_hourly", "account_id = ?1", template_account)?;
    let cost = u64::try_from(integer(usage.get("credits")?)?)?;
    if matches!(usage.get("entry_seq")?, Value::Null) {
        bail!("the template usage does not keep its ledger entry in its row");
    }
    // The ledger's places (`seq` of `ledger` rows, `entry_seq` of the entries usage rows keep)
    // are one count: the seeded entries take the next ones, in time order.
    let mut place: i64 = transaction.query_row(
        "SELECT max(coalesce((SELECT max(seq) FROM ledger), 0), \
         coalesce((SELECT max(entry_seq) FROM usage), 0)) + 1",
        [],
        |row| row.get(0),
    )?;
    let fund_i = i64::try_from(fund)?;
    let used = cost.checked_mul(entries).context("entries x cost overflows")?;
    if used > fund {
        bail!("{entries} usages of {cost} need more than the {fund} credits funded");
    }

    let created_at = now_micros - span_micros;
    let first_usage_at = created_at + 1_000_000;
    let last_usage_at = now_micros - 60_000_000;
    let step = (last_usage_at - first_usage_at) as f64 / entries.max(1) as f64;
    let mut ids = Ids::new(now_micros as u64);
    let account_id = ids.next("acct", created_at);
    let credit_id = ids.next("credit", created_at);

    let mut rows = 0u64;
    {
        let mut accounts = Copier::new(&transaction, account)?;
        let (id, name, created, updated) = (
            accounts.column("id")?,
            accounts.column("name")?,
            accounts.column("created_at")?,
            accounts.column("updated_at")?,
        );
        accounts.insert(&mut [
            (id, Value::Text(account_id.clone())),
            (name, Value::Text("scale: seeded history".into())),
            (created, Value::Integer(created_at)),
            (updated, Value::Integer(created_at)),
        ])?;

        let mut credits = Copier::new(&transaction, credit)?;
        let last_at = if entries > 0 { last_usage_at } else { created_at };
        let mut changes = vec![
            (credits.column("id")?, Value::Text(credit_id.clone())),
            (credits.column("account_id")?, Value::Text(account_id.clone())),
            (credits.column("amount")?, Value::Integer(fund_i)),
            (credits.column("used")?, Value::Integer(i64::try_from(used)?)),
            (credits.column("reserved")?, Value::Integer(0)),
            (credits.column("remaining")?, Value::Integer(i64::try_from(fund - used)?)),
            (credits.column("created_at")?, Value::Integer(created_at)),
            (credits.column("updated_at")?, Value::Integer(last_at)),
        ];
        credits.insert(&mut changes)?;

        let mut ledger = Copier::new(&transaction, purchase)?;
        ledger.insert(&mut [
            (ledger.column("account_id")?, Value::Text(account_id.clone())),
            (ledger.column("credit_id")?, Value::Text(credit_id.clone())),
            (ledger.column("credits")?, Value::Integer(fund_i)),
            (ledger.column("remaining_after")?, Value::Integer(fund_i)),
            (ledger.column("created_at")?, Value::Integer(created_at)),
        ])?;
        transaction.execute(
            "UPDATE ledger SET seq = ?1 WHERE seq = ?2",
            [place, transaction.last_insert_rowid()],
        )?;
        place += 1;
        rows += 3;

        let mut usages = Copier::new(&transaction, usage)?;
        let u = (
            usages.column("id")?,
            usages.column("account_id")?,
            usages.column("allocations")?,
            usages.column("balance_after")?,
            usages.column("created_at")?,
            usages.column("credit_id")?,
            usages.column("remaining_after")?,
            usages.column("entry_seq")?,
        );
        let allocation = format!("{credit_id}:{cost}");
        let mut per_hour: BTreeMap<i64, u64> = BTreeMap::new();
        let mut last_report = Instant::now();
        for i in 0..entries {
            let at = first_usage_at + (i as f64 * step) as i64;
            let usage_id = ids.next("use", at);
            let left = i64::try_from(fund - cost * (i + 1))?;
            usages.insert(&mut [
                (u.0, Value::Text(usage_id)),
                (u.1, Value::Text(account_id.clone())),
                (u.2, Value::Text(allocation.clone())),
                (u.3, Value::Integer(left)),
                (u.4, Value::Integer(at)),
                (u.5, Value::Text(credit_id.clone())),
                (u.6, Value::Integer(left)),
                (u.7, Value::Integer(place)),
            ])?;
            place += 1;
            *per_hour.entry(at - at.rem_euclid(HOUR_MICROS)).or_default() += 1;
            rows += 1;
            if last_report.elapsed().as_secs() >= 10 {
                last_report = Instant::now();
                eprintln!(
                    "credits-bench: seeded {} of {entries} usages and entries ({:.0} rows/s)",
                    i + 1,
                    rows as f64 / started.elapsed().as_secs_f64()
                );
            }
        }

        let mut rollup = Copier::new(&transaction, hourly)?;
        let h = (
            rollup.column("account_id")?,
            rollup.column("hour")?,
            rollup.column("credits")?,
            rollup.column("count")?,
        );
        for (hour, count) in per_hour {
            rollup.insert(&mut [
                (h.0, Value::Text(account_id.clone())),
                (h.1, Value::Integer(hour)),
                (h.2, Value::Integer(i64::try_from(count * cost)?)),
                (h.3, Value::Integer(i64::try_from(count)?)),
            ])?;
            rows += 1;
        }
    }
    transaction.commit()?;
    close(connection, database)?;
    Ok(History {
        account_id,
        created_at,
        first_usage_at,
        last_usage_at,
        cost,
        remaining: fund - used,
        rows,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Seeds `count` accounts like `template_account`, created at `now_micros`, each funded with one
/// purchase of `fund` like the template's (its credit record and ledger entry). Returns their ids
/// in order and the seconds it took.
pub fn accounts(
    database: &Path,
    template_account: &str,
    count: usize,
    fund: u64,
    now_micros: i64,
) -> anyhow::Result<(Vec<String>, f64)> {
    let started = Instant::now();
    let mut connection = open(database)?;
    let transaction = connection.transaction()?;
    let Funded { account, credit, purchase } = Funded::read(&transaction, template_account)?;
    if text(credit.get("status")?)? != "active" {
        bail!("the template account's record is not active");
    }
    let fund = i64::try_from(fund)?;
    let mut ids = Ids::new(now_micros as u64 ^ 0x5eed);
    let mut made = Vec::with_capacity(count);
    {
        let mut accounts = Copier::new(&transaction, account)?;
        let a = (
            accounts.column("id")?,
            accounts.column("name")?,
            accounts.column("created_at")?,
            accounts.column("updated_at")?,
        );
        let mut credits = Copier::new(&transaction, credit)?;
        let c = (
            credits.column("id")?,
            credits.column("account_id")?,
            credits.column("amount")?,
            credits.column("used")?,
            credits.column("reserved")?,
            credits.column("remaining")?,
            credits.column("created_at")?,
            credits.column("updated_at")?,
        );
        let mut ledger = Copier::new(&transaction, purchase)?;
        let l = (
            ledger.column("account_id")?,
            ledger.column("credit_id")?,
            ledger.column("credits")?,
            ledger.column("remaining_after")?,
            ledger.column("created_at")?,
        );
        for i in 0..count {
            let at = now_micros;
            let account_id = ids.next("acct", at);
            let credit_id = ids.next("credit", at);
            accounts.insert(&mut [
                (a.0, Value::Text(account_id.clone())),
                (a.1, Value::Text(format!("scale account {i}"))),
                (a.2, Value::Integer(at)),
                (a.3, Value::Integer(at)),
            ])?;
            credits.insert(&mut [
                (c.0, Value::Text(credit_id.clone())),
                (c.1, Value::Text(account_id.clone())),
                (c.2, Value::Integer(fund)),
                (c.3, Value::Integer(0)),
                (c.4, Value::Integer(0)),
                (c.5, Value::Integer(fund)),
                (c.6, Value::Integer(at)),
                (c.7, Value::Integer(at)),
            ])?;
            ledger.insert(&mut [
                (l.0, Value::Text(account_id.clone())),
                (l.1, Value::Text(credit_id)),
                (l.2, Value::Integer(fund)),
                (l.3, Value::Integer(fund)),
                (l.4, Value::Integer(at)),
            ])?;
            made.push(account_id);
        }
    }
    transaction.commit()?;
    close(connection, database)?;
    Ok((made, started.elapsed().as_secs_f64()))
}
