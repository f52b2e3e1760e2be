//! One small SQL interface over both backends, SQLite (rusqlite) and PostgreSQL (postgres), so
//! that every statement of the store is written once.
//!
//! Statements are written in SQLite's placeholder style (`?1`, or bare `?` numbered in order);
//! for PostgreSQL they are rewritten to `$1` once, when first prepared, and cached per connection.
//! Values cross as four kinds (integer, text, blob, null), which is all the schema uses: every
//! integer column is `BIGINT` on PostgreSQL, so an `i64` reads and binds the same on both.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as _;

use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use r2d2_sqlite::rusqlite;

use crate::StoreError;

/// Why a statement failed.
#[derive(Debug)]
pub(crate) enum DbError {
    /// `query_row` found no row (see [`Optional`]).
    NoRows,
    /// A value did not fit its Rust type, or a column held what the schema forbids.
    Invalid(String),
    Sqlite(rusqlite::Error),
    Pg(postgres::Error),
}

pub(crate) type DbResult<T> = Result<T, DbError>;

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::NoRows => write!(f, "no row"),
            DbError::Invalid(what) => write!(f, "invalid value: {what}"),
            DbError::Sqlite(error) => write!(f, "{error}"),
            DbError::Pg(error) => match error.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                None => match error.source() {
                    Some(source) => write!(f, "{error}: {source}"),
                    None => write!(f, "{error}"),
                },
            },
        }
    }
}

impl DbError {
    /// A race lost to another node on PostgreSQL: a deadlock, a serialization failure, or a
    /// unique key another node inserted meanwhile (two nodes creating one service, or storing
    /// the admin key at once). The batch runs again and then sees the other node's row, which
    /// its checks turn into the proper answer (409, 422, or an update).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            DbError::Pg(error) => error.code().is_some_and(|code| {
                *code == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                    || *code == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == postgres::error::SqlState::UNIQUE_VIOLATION
            }),
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> DbError {
        match error {
            rusqlite::Error::QueryReturnedNoRows => DbError::NoRows,
            error => DbError::Sqlite(error),
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(error: postgres::Error) -> DbError {
        DbError::Pg(error)
    }
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> StoreError {
        if error.is_retryable() {
            return StoreError::Conflict(error.to_string());
        }
        StoreError::Unavailable(error.to_string())
    }
}

/// `query_row(..).optional()`: no row is `None`, not an error.
pub(crate) trait Optional<T> {
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> Optional<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(DbError::NoRows) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// A value bound to a placeholder, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A value owned, for statements whose filters are built at run time.
#[derive(Debug, Clone)]
pub(crate) enum OwnedValue {
    Int(i64),
    Text(String),
}

pub(crate) trait ToValue {
    fn to_value(&self) -> DbResult<Value<'_>>;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> DbResult<Value<'_>> {
                i64::try_from(*self)
                    .map(Value::Int)
                    .map_err(|_| DbError::Invalid(format!("{} does not fit a BIGINT", self)))
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, u64, usize, u16, u8);

impl ToValue for bool {
    fn to_value(&self) -> DbResult<Value<'_>> {
        Ok(Value::Int(i64::from(*self)))
    }
}
impl ToValue for str {
    fn to_value(&self) -> DbResult<Value<'_>> {
        Ok(Value::Text(self))
    }
}
impl ToValue for String {
    fn to_value(&self) -> DbResult<Value<'_>> {
        Ok(Value::Text(self))
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> DbResult<Value<'_>> {
        Ok(Value::Blob(self))
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> DbResult<Value<'_>> {
        Ok(Value::Blob(self))
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> DbResult<Value<'_>> {
        Ok(Value::Blob(self))
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> DbResult<Value<'_>> {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> DbResult<Value<'_>> {
        match self {
            Some(value) => value.to_value(),
            None => Ok(Value::Null),
        }
    }
}
impl ToValue for OwnedValue {
    fn to_value(&self) -> DbResult<Value<'_>> {
        Ok(match self {
            OwnedValue::Int(value) => Value::Int(*value),
            OwnedValue::Text(value) => Value::Text(value),
        })
    }
}

/// The parameters of one statement.
pub(crate) trait Params {
    fn values(&self) -> DbResult<Vec<Value<'_>>>;
}

impl Params for [&dyn ToValue] {
    fn values(&self) -> DbResult<Vec<Value<'_>>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(&self) -> DbResult<Vec<Value<'_>>> {
        self.iter().map(ToValue::to_value).collect()
    }
}
impl<T: ToValue> Params for Vec<T> {
    fn values(&self) -> DbResult<Vec<Value<'_>>> {
        self.iter().map(ToValue::to_value).collect()
    }
}
impl<P: Params + ?Sized> Params for &P {
    fn values(&self) -> DbResult<Vec<Value<'_>>> {
        (**self).values()
    }
}

/// `params![a, b]`: heterogeneous parameters.
macro_rules! params {
    () => { &[] as &[&dyn $crate::db::ToValue] };
    ($($value:expr),+ $(,)?) => { &[$(&$value as &dyn $crate::db::ToValue),+] as &[&dyn $crate::db::ToValue] };
}
pub(crate) use params;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Integer(value),
            Value::Text(value) => ValueRef::Text(value.as_bytes()),
            Value::Blob(value) => ValueRef::Blob(value),
        }))
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(value) => match *ty {
                Type::INT2 => i16::try_from(value)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
                Type::BOOL => (value != 0).to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
            Value::Text(value) => value.to_sql(ty, out),
            Value::Blob(value) => value.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One cell of a row, borrowed.
pub(crate) enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A value read from a column.
pub(crate) trait FromCell: Sized {
    fn from_cell(cell: Cell<'_>, column: usize) -> DbResult<Self>;
}

fn wrong(column: usize, want: &str) -> DbError {
    DbError::Invalid(format!("column {column} is not {want}"))
}

macro_rules! int_from_cell {
    ($($t:ty),*) => {$(
        impl FromCell for $t {
            fn from_cell(cell: Cell<'_>, column: usize) -> DbResult<Self> {
                match cell {
                    Cell::Int(value) => <$t>::try_from(value)
                        .map_err(|_| wrong(column, stringify!($t))),
                    _ => Err(wrong(column, "an integer")),
                }
            }
        }
    )*};
}
int_from_cell!(i64, i32, u32, u64, usize, u16, u8);

impl FromCell for bool {
    fn from_cell(cell: Cell<'_>, column: usize) -> DbResult<Self> {
        i64::from_cell(cell, column).map(|value| value != 0)
    }
}
impl FromCell for String {
    fn from_cell(cell: Cell<'_>, column: usize) -> DbResult<Self> {
        match cell {
            Cell::Text(value) => Ok(value.to_string()),
            _ => Err(wrong(column, "text")),
        }
    }
}
impl FromCell for Vec<u8> {
    fn from_cell(cell: Cell<'_>, column: usize) -> DbResult<Self> {
        match cell {
            Cell::Blob(value) => Ok(value.to_vec()),
            Cell::Text(value) => Ok(value.as_bytes().to_vec()),
            _ => Err(wrong(column, "a blob")),
        }
    }
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(cell: Cell<'_>, column: usize) -> DbResult<Self> {
        match cell {
            Cell::Null => Ok(None),
            cell => T::from_cell(cell, column).map(Some),
        }
    }
}

/// A row of either backend; or one element of a JSON array of rows (`json_build_array` of
/// the same columns), which lets one PostgreSQL statement bring back several tables' rows for
/// the same mappers.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
    Json(&'a [serde_json::Value]),
}

impl Row<'_> {
    pub(crate) fn get<T: FromCell>(&self, column: usize) -> DbResult<T> {
        match self {
            Row::Sqlite(row) => {
                use rusqlite::types::ValueRef;
                let cell = match row.get_ref(column)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(value) => Cell::Int(value),
                    ValueRef::Real(value) => Cell::Int(value as i64),
                    ValueRef::Text(value) => {
                        Cell::Text(std::str::from_utf8(value).map_err(|_| wrong(column, "UTF-8"))?)
                    }
                    ValueRef::Blob(value) => Cell::Blob(value),
                };
                T::from_cell(cell, column)
            }
            Row::Pg(row) => {
                let ty =
                    row.columns().get(column).ok_or_else(|| wrong(column, "a column"))?.type_();
                let cell = match *ty {
                    Type::INT8 => row.try_get::<_, Option<i64>>(column)?.map(Cell::Int),
                    Type::INT4 => {
                        row.try_get::<_, Option<i32>>(column)?.map(|v| Cell::Int(v.into()))
                    }
                    Type::INT2 => {
                        row.try_get::<_, Option<i16>>(column)?.map(|v| Cell::Int(v.into()))
                    }
                    Type::BOOL => {
                        row.try_get::<_, Option<bool>>(column)?.map(|v| Cell::Int(v.into()))
                    }
                    Type::BYTEA => row.try_get::<_, Option<&[u8]>>(column)?.map(Cell::Blob),
                    _ => row.try_get::<_, Option<&str>>(column)?.map(Cell::Text),
                };
                T::from_cell(cell.unwrap_or(Cell::Null), column)
            }
            Row::Json(values) => {
                use serde_json::Value;
                let cell = match values.get(column).ok_or_else(|| wrong(column, "a column"))? {
                    Value::Null => Cell::Null,
                    Value::Bool(value) => Cell::Int((*value).into()),
                    Value::Number(value) => {
                        Cell::Int(value.as_i64().ok_or_else(|| wrong(column, "an integer"))?)
                    }
                    Value::String(value) => Cell::Text(value),
                    Value::Array(_) | Value::Object(_) => return Err(wrong(column, "a scalar")),
                };
                T::from_cell(cell, column)
            }
        }
    }
}

/// Rows sent as one JSON array of arrays (`json_agg(json_build_array(…))`, `NULL` for none),
/// each read by `map` as a [`Row`].
pub(crate) fn json_rows<T>(
    json: Option<&str>,
    column: usize,
    mut map: impl FnMut(&Row<'_>) -> DbResult<T>,
) -> DbResult<Vec<T>> {
    let Some(json) = json else { return Ok(Vec::new()) };
    let rows: Vec<Vec<serde_json::Value>> = serde_json::from_str(json)
        .map_err(|e| DbError::Invalid(format!("column {column}: {e}")))?;
    rows.iter().map(|row| map(&Row::Json(row))).collect()
}

/// A PostgreSQL connection with its prepared statements.
pub struct PgConn {
    pub(crate) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    /// Statements prepared by SQL `PREPARE` for [`Conn::query_then`], by their text: the name.
    named: HashMap<String, String>,
}

impl PgConn {
    pub(crate) fn new(client: postgres::Client) -> PgConn {
        PgConn { client, statements: HashMap::new(), named: HashMap::new() }
    }

    fn statement(&mut self, sql: &str) -> DbResult<postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&pg_placeholders(sql))?;
        if self.statements.len() > 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// `?1` becomes `$1`; a bare `?` takes the next number.
fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0;
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        out.push('$');
        if chars.peek().is_some_and(char::is_ascii_digit) {
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
        } else {
            next += 1;
            out.push_str(&next.to_string());
        }
    }
    out
}

/// A connection of either backend, borrowed for a unit of work.
pub(crate) enum Conn<'a> {
    Sqlite(&'a rusqlite::Connection),
    Pg(RefCell<&'a mut PgConn>),
}

/// A prepared statement of either backend.
pub(crate) enum Stmt<'c, 'a> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Pg(&'c RefCell<&'a mut PgConn>, postgres::Statement),
}

impl<'a> Conn<'a> {
    pub(crate) fn pg(connection: &'a mut PgConn) -> Conn<'a> {
        Conn::Pg(RefCell::new(connection))
    }

    pub(crate) fn is_pg(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    pub(crate) fn prepare_cached<'c>(&'c self, sql: &str) -> DbResult<Stmt<'c, 'a>> {
        match self {
            Conn::Sqlite(connection) => Ok(Stmt::Sqlite(connection.prepare_cached(sql)?)),
            Conn::Pg(connection) => {
                let statement = connection.borrow_mut().statement(sql)?;
                Ok(Stmt::Pg(connection, statement))
            }
        }
    }

    /// Runs statements without parameters (transaction control, DDL).
    pub(crate) fn batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(connection) => Ok(connection.execute_batch(sql)?),
            Conn::Pg(connection) => Ok(connection.borrow_mut().client.batch_execute(sql)?),
        }
    }

    /// PostgreSQL: runs `sql` with `params` and then the statements of `then` (say `COMMIT`), in
    /// one round trip: the first column of the first row `sql` returns. The protocol's prepared
    /// statements take one round trip each, so `sql` is prepared once per connection by SQL
    /// `PREPARE` and run by an `EXECUTE` whose arguments are literals (escaped by
    /// `postgres-protocol`), sent with `then` as one simple query. When `sql` fails the server
    /// skips `then`. Parameters are integers, text or NULL.
    pub(crate) fn query_then(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
        then: &str,
    ) -> DbResult<Option<String>> {
        let Conn::Pg(connection) = self else {
            return Err(DbError::Invalid("query_then is PostgreSQL's".into()));
        };
        let mut arguments = Vec::with_capacity(params.len());
        for value in params.values()? {
            arguments.push(match value {
                Value::Null => "NULL".to_string(),
                Value::Int(value) => value.to_string(),
                Value::Text(value) => postgres_protocol::escape::escape_literal(value),
                _ => return Err(DbError::Invalid("query_then takes integers and text".into())),
            });
        }
        let mut connection = connection.borrow_mut();
        let name = match connection.named.get(sql) {
            Some(name) => name.clone(),
            None => {
                let name = format!("credits_named_{}", connection.named.len());
                let prepare = format!("PREPARE {name} AS {}", pg_placeholders(sql));
                connection.client.batch_execute(&prepare)?;
                connection.named.insert(sql.to_string(), name.clone());
                name
            }
        };
        let query = format!("EXECUTE {name}({}); {then}", arguments.join(", "));
        let messages = connection.client.simple_query(&query)?;
        Ok(messages
            .iter()
            .find_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    }

    /// The larger of two integers: `max(a, b)` on SQLite, `greatest(a, b)` on PostgreSQL.
    pub(crate) fn greatest(&self) -> &'static str {
        if self.is_pg() {
            "greatest"
        } else {
            "max"
        }
    }
}

fn sqlite_values<'v>(values: &'v [Value<'_>]) -> Vec<&'v dyn rusqlite::ToSql> {
    values.iter().map(|v| v as &dyn rusqlite::ToSql).collect()
}

fn pg_values<'v>(values: &'v [Value<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Stmt<'_, '_> {
    pub(crate) fn execute<P: Params>(&mut self, params: P) -> DbResult<usize> {
        crate::faults::statement()?;
        let values = params.values()?;
        match self {
            Stmt::Sqlite(statement) => Ok(statement.execute(&*sqlite_values(&values))?),
            Stmt::Pg(connection, statement) => {
                let count =
                    connection.borrow_mut().client.execute(&*statement, &pg_values(&values))?;
                usize::try_from(count).map_err(|_| DbError::Invalid("row count".into()))
            }
        }
    }

    pub(crate) fn query_map<T, P, F>(
        &mut self,
        params: P,
        mut map: F,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> DbResult<T>,
    {
        crate::faults::statement()?;
        let values = params.values()?;
        let mut out = Vec::new();
        match self {
            Stmt::Sqlite(statement) => {
                let mut rows = statement.query(&*sqlite_values(&values))?;
                while let Some(row) = rows.next()? {
                    out.push(map(&Row::Sqlite(row)));
                }
            }
            Stmt::Pg(connection, statement) => {
                let rows =
                    connection.borrow_mut().client.query(&*statement, &pg_values(&values))?;
                out.extend(rows.iter().map(|row| map(&Row::Pg(row))));
            }
        }
        Ok(out.into_iter())
    }

    /// Whether the statement returns a row.
    pub(crate) fn exists<P: Params>(&mut self, params: P) -> DbResult<bool> {
        self.query_row(params, |_| Ok(())).optional().map(|row| row.is_some())
    }

    /// The first row; [`DbError::NoRows`] when there is none.
    pub(crate) fn query_row<T, P, F>(&mut self, params: P, map: F) -> DbResult<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> DbResult<T>,
    {
        crate::faults::statement()?;
        let values = params.values()?;
        match self {
            Stmt::Sqlite(statement) => {
                let mut rows = statement.query(&*sqlite_values(&values))?;
                match rows.next()? {
                    Some(row) => map(&Row::Sqlite(row)),
                    None => Err(DbError::NoRows),
                }
            }
            Stmt::Pg(connection, statement) => {
                let row =
                    connection.borrow_mut().client.query_opt(&*statement, &pg_values(&values))?;
                match row {
                    Some(row) => map(&Row::Pg(&row)),
                    None => Err(DbError::NoRows),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pg_placeholders;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(pg_placeholders("a = ?1 AND b = ?12"), "a = $1 AND b = $12");
        assert_eq!(pg_placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(pg_placeholders("a = '?' AND b = ?"), "a = '?' AND b = $1");
    }
}
