//! Writing many rows at once, for the end of a batch.
//!
//! On SQLite a statement is a function call: rows go one by one through cached statements. On
//! PostgreSQL each statement is a network round trip, made while the batch holds its accounts'
//! locks: everything the batch's usages wrote goes in one statement, each table's rows as a JSON
//! array that the server expands with `jsonb_array_elements` (one prepared statement whatever
//! the row count).

use std::collections::HashMap;

use credits_core::{LedgerEntry, Timestamp, IDEMPOTENCY_TTL_SECONDS};
use serde::Serialize;
use serde_json::{json, Value};

use crate::db::{params, Conn, Optional};
use crate::hot::HotEntry;
use crate::rows::{self, encode_allocations, HourlyKey, HOURLY_UPSERT};
use crate::types::UsageRecord;
use crate::writer::StoredAnswer;
use crate::StoreError;

// The PostgreSQL statements that expand a JSON array `r` of rows (each row an array), for
// `journal_copy`: the usage rows with, last, the place of the entry a row keeps (the statement
// goes on with it), the ledger rows with their places.
const USAGE_INSERT: &str = "INSERT INTO usage (id, account_id, service, operation, quantity, \
    credits, allocations, member_id, api_key_id, metadata, balance_after, reservation_id, \
    created_at, credit_id, remaining_after, entry_seq) SELECT t.r->>0, t.r->>1, t.r->>2, \
    t.r->>3, (t.r->>4)::bigint, (t.r->>5)::bigint, t.r->>6, t.r->>7, t.r->>8, t.r->>9, \
    (t.r->>10)::bigint, t.r->>11, (t.r->>12)::bigint, t.r->>13, (t.r->>14)::bigint";
const HOURLY_INSERT: &str = "INSERT INTO usage_hourly (account_id, hour, service, operation, \
    member_id, api_key_id, credits, count) SELECT r->>0, (r->>1)::bigint, r->>2, r->>3, r->>4, \
    r->>5, (r->>6)::bigint, (r->>7)::bigint";
const LEDGER_INSERT: &str = "INSERT INTO ledger (seq, account_id, credit_id, type, credits, \
    remaining_after, usage_id, reservation_id, member_id, api_key_id, created_at) \
    SELECT e.seq, e.r->>0, e.r->>1, e.r->>2, (e.r->>3)::bigint, (e.r->>4)::bigint, e.r->>5, \
    e.r->>6, e.r->>7, e.r->>8, (e.r->>9)::bigint";
/// Replaces only a key no longer fresh: parameter `fresh_after` is the freshness bound.
fn idempotency_upsert(fresh_after: usize) -> String {
    format!(
        "ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, \
         status = excluded.status, body = excluded.body, created_at = excluded.created_at, \
         usage_id = excluded.usage_id \
         WHERE idempotency.created_at <= ?{fresh_after}"
    )
}

/// A usage as a row of [`USAGE_INSERT`] (without its entry's place, which the copy adds).
type UsageRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a Option<String>,
    u64,
    u64,
    String,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    u64,
    &'a Option<String>,
    i64,
    Option<&'a str>,
    Option<u64>,
);

fn usage_row(u: &UsageRecord) -> UsageRow<'_> {
    (
        &u.id,
        &u.account_id,
        &u.service,
        &u.operation,
        u.quantity,
        u.credits,
        encode_allocations(&u.allocations),
        &u.actor.member_id,
        &u.actor.api_key_id,
        &u.metadata,
        u.balance_after,
        &u.reservation_id,
        u.created_at.0,
        u.entry_credit_id(),
        u.remaining_after,
    )
}

/// A ledger entry as a row of [`LEDGER_INSERT`] (without its place).
type EntryRow<'a> = (
    &'a str,
    &'a str,
    &'static str,
    u64,
    u64,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    i64,
);

fn entry_row(e: &LedgerEntry) -> EntryRow<'_> {
    assert!(e.credits > 0, "a ledger entry moves a positive amount: {e:?}");
    (
        &e.account_id,
        &e.credit_id,
        e.entry_type.as_str(),
        e.credits,
        e.remaining_after,
        &e.usage_id,
        &e.reservation_id,
        &e.actor.member_id,
        &e.actor.api_key_id,
        e.created_at.0,
    )
}

/// An entry of the journal's ledger array: a `ledger` row, or the ordinal (from 1) of the usage
/// that keeps it (see [`hot_flush_pg`]).
enum JournalEntry<'a> {
    Row(EntryRow<'a>),
    Kept(usize),
}

impl Serialize for JournalEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JournalEntry::Row(row) => row.serialize(serializer),
            JournalEntry::Kept(ordinal) => ordinal.serialize(serializer),
        }
    }
}

/// Rows as the text of a JSON array of arrays, serialized straight from the values they borrow
/// (a tuple is an array): a hot account's write is on its critical path, and building
/// `serde_json::Value`s first (a copy of every string, an allocation per field) took twice as
/// long (19 against 9 µs for a batch of 23 usages, docs/PERFORMANCE.md).
fn json_rows<T: Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows)
        .map_err(|e| StoreError::Unavailable(format!("cannot write rows as JSON: {e}")))
}

/// The PostgreSQL statement that expands a JSON array `r` of answers (see [`answer_row`]).
const IDEMPOTENCY_INSERT: &str = "INSERT INTO idempotency (scope, key, request_hash, status, \
    body, created_at, usage_id) SELECT r->>0, r->>1, decode(r->>2, 'base64'), (r->>3)::bigint, \
    decode(r->>4, 'base64'), (r->>5)::bigint, r->>6";

/// An answer as a JSON row of [`IDEMPOTENCY_INSERT`], its bytes base64: the batch's last write
/// goes as the text of a simple query (see [`hot_flush_pg`]). A usage's answer is stored by
/// reference, its usage's id with an empty body (SQLite stores every body), and rendered again
/// for a replay (`writer::usage_answer`): its body was three fifths of the write's text and two
/// thirds of the stored row, and a hot account's locked write lexes and parses every byte of it.
fn answer_row(a: &StoredAnswer) -> AnswerRow<'_> {
    let body = match a.usage_id {
        Some(_) => String::new(),
        None => base64(&a.rendered.body),
    };
    (&a.scope, &a.key, base64(&a.request_hash), a.rendered.status, body, a.created_at, &a.usage_id)
}

type AnswerRow<'a> = (&'a str, &'a str, String, u16, String, i64, &'a Option<String>);

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// SQLite: the batch's ledger entries and usage rows one by one, each entry in its place in the
/// ledger (`seq`) in the order the batch made them, whether a `ledger` row or kept in its usage's
/// row; then the usages' hourly rollup, summed per row of the rollup first. (PostgreSQL writes
/// them inside [`hot_flush_pg`].)
pub(crate) fn usage_insert(
    connection: &Conn<'_>,
    places: &mut rows::LedgerSeq,
    usage: &[UsageRecord],
    entries: &[HotEntry],
) -> Result<(), StoreError> {
    let mut entry_seqs = vec![None; usage.len()];
    for entry in entries {
        let seq = places.take(connection)?;
        match entry {
            HotEntry::Row(entry) => rows::entry_insert(connection, entry, Some(seq))?,
            HotEntry::Kept { usage } => entry_seqs[*usage] = Some(seq),
        }
    }
    for (usage, entry_seq) in usage.iter().zip(entry_seqs) {
        rows::usage_row_insert(connection, usage, entry_seq)?;
    }
    for (key, (credits, count)) in &hourly_sums(usage) {
        rows::hourly_add(connection, key, *credits, *count)?;
    }
    Ok(())
}

fn hourly_sums(usage: &[UsageRecord]) -> HashMap<HourlyKey, (u64, u64)> {
    let mut hourly: HashMap<HourlyKey, (u64, u64)> = HashMap::new();
    for usage in usage {
        let sum = hourly.entry(HourlyKey::of(usage)).or_default();
        sum.0 += usage.credits;
        sum.1 += 1;
    }
    hourly
}

/// Stores answers with their keys, replacing only keys no longer fresh. A key stored meanwhile
/// by another node (PostgreSQL) is fresh: nothing is replaced, and the batch runs again, to
/// replay that node's answer.
pub(crate) fn idempotency_store(
    connection: &Conn<'_>,
    answers: &[StoredAnswer],
    now: Timestamp,
) -> Result<(), StoreError> {
    if answers.is_empty() {
        return Ok(());
    }
    let fresh_after = now.0 - IDEMPOTENCY_TTL_SECONDS * 1_000_000;
    let conflict = || StoreError::Conflict("idempotency key stored concurrently".into());
    if !connection.is_pg() {
        let mut statement = connection.prepare_cached(&format!(
            "INSERT INTO idempotency (scope, key, request_hash, status, body, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) {}",
            idempotency_upsert(7)
        ))?;
        for answer in answers {
            let stored = statement.execute(params![
                answer.scope,
                answer.key,
                answer.request_hash.as_slice(),
                answer.rendered.status,
                answer.rendered.body,
                answer.created_at,
                fresh_after
            ])?;
            if stored == 0 {
                return Err(conflict());
            }
        }
        return Ok(());
    }
    let rows: Vec<AnswerRow<'_>> = answers.iter().map(answer_row).collect();
    let json = json_rows(&rows)?;
    let stored = connection
        .prepare_cached(&format!(
            "{IDEMPOTENCY_INSERT} FROM jsonb_array_elements(?1::text::jsonb) AS r {}",
            idempotency_upsert(2)
        ))?
        .execute(params![json, fresh_after])?;
    if stored != answers.len() {
        return Err(conflict());
    }
    Ok(())
}

/// Reads the answers stored with the given keys in one statement: each key maps to its answer,
/// or to `None` when none is stored.
pub(crate) fn idempotency_prefetch<'k>(
    connection: &Conn<'_>,
    keys: impl Iterator<Item = &'k crate::types::Idempotency>,
) -> Result<HashMap<(String, String), Option<StoredAnswer>>, StoreError> {
    let mut known: HashMap<(String, String), Option<StoredAnswer>> =
        keys.map(|k| ((k.scope.clone(), k.key.clone()), None)).collect();
    if known.is_empty() {
        return Ok(known);
    }
    let json = Value::Array(known.keys().map(|(scope, key)| json!([scope, key])).collect());
    let mut statement = connection.prepare_cached(
        // A lateral lookup per key, so that each is one probe of the primary key whatever the
        // planner guesses of the table (an `IN` over the array chose a scan of all keys).
        "SELECT i.scope, i.key, i.request_hash, i.status, i.body, i.created_at, i.usage_id \
         FROM jsonb_array_elements(?1::text::jsonb) AS r CROSS JOIN LATERAL \
         (SELECT * FROM idempotency WHERE scope = r->>0 AND key = r->>1 LIMIT 1) AS i",
    )?;
    let rows = statement.query_map(params![json.to_string()], |row| {
        let request_hash: Vec<u8> = row.get(2)?;
        Ok(StoredAnswer {
            scope: row.get(0)?,
            key: row.get(1)?,
            request_hash: request_hash.try_into().unwrap_or([0; 32]),
            rendered: crate::types::Rendered { status: row.get(3)?, body: row.get(4)? },
            created_at: row.get(5)?,
            usage_id: row.get(6)?,
        })
    })?;
    for row in rows {
        let answer = row?;
        known.insert((answer.scope.clone(), answer.key.clone()), Some(answer));
    }
    Ok(known)
}

/// The answers a batch stores, by whether their key was read as stored (see [`hot_flush_pg`]).
pub(crate) struct NewAnswers<'a> {
    /// Keys read as absent: inserted.
    pub(crate) fresh: Vec<&'a StoredAnswer>,
    /// Keys read as stored past their retention: replaced.
    pub(crate) replacing: Vec<&'a StoredAnswer>,
}

/// Everything a batch's usages wrote on PostgreSQL, in one statement (one round trip made while
/// the batch holds its accounts' locks): the changed credit records, the hourly rollup of the
/// usages, the answers stored with their keys, and one row of the usage journal holding the usage
/// rows and ledger entries. Those are copied into their tables (and their dozen index entries per
/// usage written) by [`journal_materialize`] after the commit, outside the locks: a hot account's
/// lock covers a handful of rows per batch and one index entry pair per keyed usage. Each part is
/// a data-modifying `WITH` clause. The answers of keys the batch read as absent (`fresh`) are
/// plain inserts: a key another node stored meanwhile fails the statement with a unique
/// violation, so the batch rolls back and runs again, reading every key first. Only the answers
/// replacing a stored key past its retention (`replacing`, rare) pay for an upsert, which stores
/// nothing when the key became fresh meanwhile; an answer not stored makes the statement raise a
/// serialization failure (`credits_conflict`), with the same effect. The journal row's id is
/// returned (none when the batch wrote no usage and no entry). An upsert for every answer, as
/// before, made the batch's locked write 13% slower (a 21-usage write, 0.44 against 0.38 ms). With
/// `commit` (say `COMMIT`), the statements of `commit` follow in the same round trip
/// ([`Conn::query_then`]), so that the batch's last write and its commit make one round trip
/// while the locks are held.
pub(crate) fn hot_flush_pg(
    connection: &Conn<'_>,
    records: &[&credits_core::CreditRecord],
    usage: &[UsageRecord],
    entries: &[HotEntry],
    answers: &NewAnswers<'_>,
    now: Timestamp,
    commit: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    let NewAnswers { fresh, replacing } = answers;
    let records: Vec<_> = records
        .iter()
        .map(|r| {
            r.assert_equation();
            (
                &r.id,
                r.used,
                r.reserved,
                r.remaining,
                r.expired_amount,
                r.voided_amount,
                r.expired,
                r.voided,
                r.status().as_str(),
                r.open(),
                r.updated_at.0,
            )
        })
        .collect();
    let mut hourly: Vec<_> = hourly_sums(usage).into_iter().collect();
    // In key order, so that two transactions upserting the same rollup rows take them in one order.
    hourly.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let usage_rows: Vec<UsageRow<'_>> = usage.iter().map(usage_row).collect();
    let hourly_rows: Vec<_> = hourly
        .iter()
        .map(|(k, (credits, count))| {
            (
                &k.account_id,
                k.hour,
                &k.service,
                &k.operation,
                &k.member_id,
                &k.api_key_id,
                credits,
                count,
            )
        })
        .collect();
    // A usage's kept entry is its usage's ordinal in the usage array (from 1), in its place
    // among the others: the copy numbers them all in one order (see `journal_copy`).
    let entry_rows: Vec<JournalEntry<'_>> = entries
        .iter()
        .map(|entry| match entry {
            HotEntry::Row(entry) => JournalEntry::Row(entry_row(entry)),
            HotEntry::Kept { usage } => JournalEntry::Kept(usage + 1),
        })
        .collect();
    let fresh_rows: Vec<AnswerRow<'_>> = fresh.iter().copied().map(answer_row).collect();
    let replacing_rows: Vec<AnswerRow<'_>> = replacing.iter().copied().map(answer_row).collect();
    let fresh_after = now.0 - IDEMPOTENCY_TTL_SECONDS * 1_000_000;
    let journal = !usage.is_empty() || !entries.is_empty();
    // Keys past their retention are replaced by an upsert, in a clause of their own (`b`) that
    // only a batch with such keys carries: nearly every batch has none, and each clause of the
    // statement costs PostgreSQL its set-up (relations, indexes, the conflict arbiter) whether
    // it writes a row or not. Its parameters come last, so that the other form stops before
    // them.
    let replace = !replacing.is_empty();
    let (b_clause, b_count) = if replace {
        (
            format!(
                "b AS ({IDEMPOTENCY_INSERT} FROM jsonb_array_elements(?10::text::jsonb) AS r {} \
                 RETURNING 1), ",
                idempotency_upsert(9)
            ),
            " + (SELECT count(*) FROM b)",
        )
    } else {
        (String::new(), "")
    };
    // `credits.id = ANY(ARRAY(…))` makes the records a probe of `credits.id` each: joined with
    // the array alone, the planner (which takes any JSON array for 100 rows) scans the table.
    let sql = format!(
        "WITH c AS (UPDATE credits SET used = (r->>1)::bigint, reserved = (r->>2)::bigint, \
         remaining = (r->>3)::bigint, expired_amount = (r->>4)::bigint, \
         voided_amount = (r->>5)::bigint, expired = (r->>6)::bool::int, \
         voided = (r->>7)::bool::int, status = r->>8, open = (r->>9)::bool::int, \
         updated_at = (r->>10)::bigint \
         FROM jsonb_array_elements(?1::text::jsonb) AS r WHERE credits.id = r->>0 \
         AND credits.id = ANY(ARRAY(SELECT x->>0 FROM jsonb_array_elements(?1::text::jsonb) \
         AS x))), \
         h AS ({HOURLY_INSERT} FROM jsonb_array_elements(?2::text::jsonb) WITH ORDINALITY \
         AS t(r, n) ORDER BY n {HOURLY_UPSERT}), \
         a AS ({IDEMPOTENCY_INSERT} FROM jsonb_array_elements(?3::text::jsonb) AS r \
         RETURNING 1), \
         {b_clause}\
         j AS (INSERT INTO usage_journal (created_at, usage, ledger) \
         SELECT ?4::bigint, ?5::text, ?6::text WHERE ?7::bigint = 1 RETURNING id) \
         SELECT CASE WHEN (SELECT count(*) FROM a){b_count} = ?8::bigint \
         THEN (SELECT id FROM j) \
         ELSE credits_conflict('idempotency key stored concurrently') END"
    );
    let records = json_rows(&records)?;
    let hourly = json_rows(&hourly_rows)?;
    let fresh_json = json_rows(&fresh_rows)?;
    let replacing_json = json_rows(&replacing_rows)?;
    let usage_json = json_rows(&usage_rows)?;
    let entries_json = json_rows(&entry_rows)?;
    let all = params![
        records,
        hourly,
        fresh_json,
        now.0,
        usage_json,
        entries_json,
        i64::from(journal),
        fresh.len() + replacing.len(),
        fresh_after,
        replacing_json
    ];
    let params = if replace { all } else { &all[..8] };
    let journal_id = match commit {
        None => connection.prepare_cached(&sql)?.query_row(params, |row| row.get(0))?,
        Some(then) => match connection.query_then(&sql, params, then)? {
            Some(id) => Some(id.parse::<i64>().map_err(|e| {
                StoreError::Unavailable(format!("journal id {id:?} is not an integer: {e}"))
            })?),
            None => None,
        },
    };
    Ok(journal_id)
}

/// Copies journal rows into the usage and ledger tables and deletes them, in one statement, so
/// each row is copied exactly once whoever runs it: of two nodes copying one row, the second
/// waits for the first's delete and then finds nothing. `which` selects the rows' ids (made an
/// array, so that each is a probe of the primary key); the count of rows copied is returned.
/// The entries (`e`) take their places from the ledger's sequence in the order their batches
/// made them, whether they become `ledger` rows (`l`) or stay in their usage's row (a number,
/// the usage's ordinal in its journal row: `u`), so that the ledger's one order holds both.
fn journal_copy(
    connection: &Conn<'_>,
    which: &str,
    value: &dyn crate::db::ToValue,
) -> Result<i64, StoreError> {
    let copied = connection
        .prepare_cached(&format!(
            "WITH j AS (DELETE FROM usage_journal WHERE id = ANY(ARRAY({which})) \
             RETURNING id, usage, ledger), \
             e AS (SELECT x.id, x.r, \
             CASE WHEN jsonb_typeof(x.r) = 'number' THEN (x.r #>> '{{}}')::bigint END AS kept, \
             nextval('ledger_seq_seq'::regclass) AS seq \
             FROM (SELECT j.id, t.r FROM j CROSS JOIN LATERAL \
             jsonb_array_elements(j.ledger::jsonb) WITH ORDINALITY AS t(r, n) \
             ORDER BY j.id, t.n) AS x), \
             u AS ({USAGE_INSERT}, k.seq FROM j CROSS JOIN LATERAL \
             jsonb_array_elements(j.usage::jsonb) WITH ORDINALITY AS t(r, n) \
             LEFT JOIN e AS k ON k.id = j.id AND k.kept = t.n ORDER BY j.id, t.n), \
             l AS ({LEDGER_INSERT} FROM e WHERE e.kept IS NULL ORDER BY e.seq) \
             SELECT count(*) FROM j"
        ))?
        .query_row(params![value], |row| row.get::<i64>(0))?;
    Ok(copied)
}

/// Copies the journal rows a batch of this node committed (see [`hot_flush_pg`]).
pub(crate) fn journal_materialize(connection: &Conn<'_>, ids: &[i64]) -> Result<(), StoreError> {
    let ids = Value::Array(ids.iter().map(|&id| json!(id)).collect()).to_string();
    journal_copy(
        connection,
        "SELECT value::bigint FROM jsonb_array_elements_text(?1::text::jsonb)",
        &ids,
    )?;
    Ok(())
}

/// Copies the journal rows visible when it starts (up to the newest id it sees), waiting for
/// those another connection is copying and then finding them gone: afterwards `usage` and
/// `ledger` hold every usage answered before the call began, since a batch is answered only
/// after its commit (see `copier`). Reads of usage and the ledger call it first; most find the
/// journal empty or nearly so.
pub(crate) fn journal_settle(connection: &Conn<'_>) -> Result<(), StoreError> {
    let newest = connection
        .prepare_cached("SELECT id FROM usage_journal ORDER BY id DESC LIMIT 1")?
        .query_row(params![], |row| row.get::<i64>(0))
        .optional()?;
    if let Some(newest) = newest {
        journal_copy(connection, "SELECT id FROM usage_journal WHERE id <= ?1", &newest)?;
    }
    Ok(())
}

/// Copies journal rows written before `before` (microseconds) that nobody is copying: those of a
/// node that stopped between its commit and the copy. Up to 256 rows; how many were copied.
pub(crate) fn journal_recover(connection: &Conn<'_>, before: i64) -> Result<i64, StoreError> {
    let pending = connection
        .prepare_cached("SELECT 1 FROM usage_journal WHERE created_at < ?1 LIMIT 1")?
        .exists(params![before])?;
    if !pending {
        return Ok(0);
    }
    journal_copy(
        connection,
        "SELECT id FROM usage_journal WHERE created_at < ?1 ORDER BY id LIMIT 256 \
         FOR UPDATE SKIP LOCKED",
        &before,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use credits_core::{Actor, Allocation, EntryType};

    use super::*;

    /// The rows' JSON is what the statements read by position (`r->>0` …): each field in its
    /// place, strings as strings, numbers as numbers, absent values as `null`. Every field of a
    /// row holds a value no other field holds, so that two fields swapped fail the test.
    #[test]
    fn rows_are_json_arrays_of_their_fields_in_the_statements_order() {
        let usage = UsageRecord {
            id: "use_1".into(),
            account_id: "acct_1".into(),
            service: "smartcheck".into(),
            operation: Some("scan".into()),
            quantity: 3,
            credits: 6,
            allocations: vec![Allocation { credit_id: "credit_1".into(), credits: 6 }],
            actor: Actor { member_id: Some("mem_1".into()), api_key_id: Some("key_1".into()) },
            metadata: Some("{\"a\":\"b\"}".into()),
            balance_after: 194,
            reservation_id: Some("res_1".into()),
            created_at: Timestamp(1_700_000_000_000_000),
            remaining_after: Some(94),
        };
        let usage_json: Value =
            serde_json::from_str(&json_rows(&[usage_row(&usage)]).unwrap()).unwrap();
        assert_eq!(
            usage_json,
            json!([[
                "use_1",
                "acct_1",
                "smartcheck",
                "scan",
                3,
                6,
                "credit_1:6",
                "mem_1",
                "key_1",
                "{\"a\":\"b\"}",
                194,
                "res_1",
                1_700_000_000_000_000_i64,
                "credit_1",
                94
            ]])
        );
        let spanning = UsageRecord { remaining_after: None, operation: None, ..usage };
        let spanning_json: Value =
            serde_json::from_str(&json_rows(&[usage_row(&spanning)]).unwrap()).unwrap();
        assert_eq!(spanning_json[0][3], Value::Null, "no operation");
        assert_eq!(spanning_json[0][13], Value::Null, "no kept entry: no record");
        assert_eq!(spanning_json[0][14], Value::Null, "no kept entry: no remainder");

        let entry = LedgerEntry {
            account_id: "acct_1".into(),
            credit_id: "credit_2".into(),
            entry_type: EntryType::Usage,
            credits: 2,
            remaining_after: 8,
            usage_id: Some("use_2".into()),
            reservation_id: Some("res_2".into()),
            actor: Actor { member_id: Some("mem_2".into()), api_key_id: Some("key_2".into()) },
            created_at: Timestamp(1_700_000_000_000_001),
        };
        let entries = [JournalEntry::Kept(1), JournalEntry::Row(entry_row(&entry))];
        let entries_json: Value = serde_json::from_str(&json_rows(&entries).unwrap()).unwrap();
        assert_eq!(
            entries_json,
            json!([
                1,
                [
                    "acct_1",
                    "credit_2",
                    "usage",
                    2,
                    8,
                    "use_2",
                    "res_2",
                    "mem_2",
                    "key_2",
                    1_700_000_000_000_001_i64
                ]
            ])
        );
    }
}
