//! The SQLite schema and its migrations, applied in order and recorded in `user_version`.
//!
//! Every query of the service is served by an index named here. Balances and debits read only
//! the account's open credit records (`credits_open`) and held reservations (`reservations_held`),
//! so their cost does not grow with history; lists page by `seq` on per-account indexes, usage and
//! the ledger by `created_at, seq` (see `Position`).

use std::path::Path;

use r2d2_sqlite::rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    external_id TEXT,
    low_balance_threshold INTEGER,
    expiring_soon_days INTEGER NOT NULL,
    auto_top_up_threshold INTEGER,
    auto_top_up_amount INTEGER,
    auto_top_up_service TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX accounts_external_id ON accounts(external_id, seq) WHERE external_id IS NOT NULL;

CREATE TABLE services (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    unit_cost INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE service_operations (
    service_id TEXT NOT NULL,
    name TEXT NOT NULL,
    cost INTEGER NOT NULL,
    PRIMARY KEY (service_id, name)
) WITHOUT ROWID;

CREATE TABLE credits (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    used INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    expired_amount INTEGER NOT NULL,
    voided_amount INTEGER NOT NULL,
    expires_at INTEGER,
    service TEXT NOT NULL,
    description TEXT,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    reference TEXT,
    expired INTEGER NOT NULL,
    voided INTEGER NOT NULL,
    status TEXT NOT NULL,
    open INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (amount = used + reserved + remaining + expired_amount + voided_amount),
    CHECK (used >= 0 AND reserved >= 0 AND remaining >= 0),
    CHECK (expired_amount >= 0 AND voided_amount >= 0)
);
CREATE INDEX credits_account_seq ON credits(account_id, seq);
CREATE INDEX credits_account_status_seq ON credits(account_id, status, seq);
CREATE INDEX credits_account_service_seq ON credits(account_id, service, seq);
CREATE INDEX credits_open ON credits(account_id) WHERE open = 1;
CREATE INDEX credits_due ON credits(expires_at)
    WHERE open = 1 AND expired = 0 AND voided = 0 AND expires_at IS NOT NULL;
CREATE UNIQUE INDEX credits_reference ON credits(account_id, reference) WHERE reference IS NOT NULL;

CREATE TABLE reservations (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    service TEXT NOT NULL,
    credits INTEGER NOT NULL,
    captured INTEGER NOT NULL,
    status TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    allocations TEXT NOT NULL,
    member_id TEXT,
    api_key_id TEXT,
    usage_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX reservations_held ON reservations(account_id) WHERE status = 'held';
CREATE INDEX reservations_due ON reservations(expires_at) WHERE status = 'held';

CREATE TABLE usage (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    service TEXT NOT NULL,
    operation TEXT,
    quantity INTEGER NOT NULL,
    credits INTEGER NOT NULL,
    allocations TEXT NOT NULL,
    member_id TEXT,
    api_key_id TEXT,
    metadata TEXT,
    balance_after INTEGER NOT NULL,
    reservation_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX usage_account_seq ON usage(account_id, seq);
CREATE INDEX usage_account_service_seq ON usage(account_id, service, seq);

CREATE TABLE ledger (
    seq INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL,
    credit_id TEXT NOT NULL,
    type TEXT NOT NULL,
    credits INTEGER NOT NULL,
    remaining_after INTEGER NOT NULL,
    usage_id TEXT,
    reservation_id TEXT,
    member_id TEXT,
    api_key_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX ledger_account_seq ON ledger(account_id, seq);
CREATE INDEX ledger_credit_seq ON ledger(credit_id, seq);

CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency(created_at);

CREATE TABLE api_keys (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT,
    member_id TEXT,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_account_seq ON api_keys(account_id, seq);

INSERT INTO services (id, name, unit_cost, created_at, updated_at) VALUES
    ('smartcheck', 'SmartCheck', 1, unixepoch() * 1000000, unixepoch() * 1000000),
    ('smartaccess', 'SmartAccess', 1, unixepoch() * 1000000, unixepoch() * 1000000),
    ('smartenroll', 'SmartEnroll', 1, unixepoch() * 1000000, unixepoch() * 1000000),
    ('api', 'API', 1, unixepoch() * 1000000, unixepoch() * 1000000),
    ('biometric', 'Biometric', 1, unixepoch() * 1000000, unixepoch() * 1000000);
"#,
    r#"
CREATE TABLE members (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX members_account_seq ON members(account_id, seq) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX members_account_email ON members(account_id, email) WHERE deleted_at IS NULL;
CREATE INDEX api_keys_member ON api_keys(member_id) WHERE member_id IS NOT NULL;

CREATE TABLE budgets (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    scope_type TEXT NOT NULL,
    scope_id TEXT,
    period TEXT NOT NULL,
    limit_credits INTEGER NOT NULL,
    enforcement TEXT NOT NULL,
    thresholds TEXT NOT NULL,
    spent INTEGER NOT NULL,
    period_start INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX budgets_account_seq ON budgets(account_id, seq);

CREATE INDEX usage_account_member_seq ON usage(account_id, member_id, seq)
    WHERE member_id IS NOT NULL;
CREATE INDEX usage_account_key_seq ON usage(account_id, api_key_id, seq)
    WHERE api_key_id IS NOT NULL;
"#,
    r#"
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_account_seq ON events(account_id, seq);
CREATE INDEX events_type_seq ON events(type, seq);

CREATE TABLE webhook_endpoints (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret_sealed BLOB NOT NULL,
    disabled_at INTEGER,
    deleted_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_account_seq ON webhook_endpoints(account_id, seq);

CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    response_code INTEGER,
    duration_ms INTEGER,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER
);
CREATE INDEX deliveries_endpoint_seq ON deliveries(endpoint_id, seq);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';

ALTER TABLE accounts ADD COLUMN low_balance_fired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN top_up_fired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE budgets ADD COLUMN fired_percent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE budgets ADD COLUMN exceeded_fired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credits ADD COLUMN expiring_soon_sent INTEGER NOT NULL DEFAULT 0;
CREATE INDEX credits_expiring ON credits(expires_at)
    WHERE open = 1 AND expired = 0 AND voided = 0 AND expiring_soon_sent = 0
    AND expires_at IS NOT NULL;
"#,
    r#"
CREATE TABLE usage_hourly (
    account_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    member_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    credits INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (account_id, hour, service, operation, member_id, api_key_id)
) WITHOUT ROWID;
INSERT INTO usage_hourly
    SELECT account_id, (created_at / 3600000000) * 3600000000, service, coalesce(operation, ''),
        coalesce(member_id, ''), coalesce(api_key_id, ''), sum(credits), count(*)
    FROM usage GROUP BY 1, 2, 3, 4, 5, 6;
CREATE INDEX usage_account_created ON usage(account_id, created_at);
"#,
    // Dashboard sessions, shared by every node (PostgreSQL) and kept across restarts.
    r#"
CREATE TABLE sessions (
    id_hash BLOB PRIMARY KEY,
    key_hash BLOB NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions(expires_at);
"#,
    // Usage and the ledger list in time order (`created_at`, then `seq`), each list and filter
    // on an index ending in `created_at, seq`, so that a page filtered by time, type or record
    // reads its own rows only (SPEC section 10). These replace the `seq` indexes and the
    // account/time index (same count of index entries per usage row); the ledger gains the
    // whole-table time index, and a type index that leaves out usage entries (the bulk) so the
    // debit path writes nothing more for it.
    r#"
DROP INDEX usage_account_seq;
DROP INDEX usage_account_service_seq;
DROP INDEX usage_account_member_seq;
DROP INDEX usage_account_key_seq;
DROP INDEX usage_account_created;
CREATE INDEX usage_time ON usage(created_at, seq);
CREATE INDEX usage_account_time ON usage(account_id, created_at, seq);
CREATE INDEX usage_account_service_time ON usage(account_id, service, created_at, seq);
CREATE INDEX usage_account_member_time ON usage(account_id, member_id, created_at, seq)
    WHERE member_id IS NOT NULL;
CREATE INDEX usage_account_key_time ON usage(account_id, api_key_id, created_at, seq)
    WHERE api_key_id IS NOT NULL;
DROP INDEX ledger_account_seq;
DROP INDEX ledger_credit_seq;
CREATE INDEX ledger_time ON ledger(created_at, seq);
CREATE INDEX ledger_account_time ON ledger(account_id, created_at, seq);
CREATE INDEX ledger_credit_time ON ledger(credit_id, created_at, seq);
CREATE INDEX ledger_account_type_time ON ledger(account_id, type, created_at, seq)
    WHERE type <> 'usage';
"#,
    // The usage whose rendering an answer stored with its key is, when the body itself is not
    // stored (PostgreSQL's hot path, `bulk::answer_row`): a replay renders the usage again.
    r#"
ALTER TABLE idempotency ADD COLUMN usage_id TEXT;
"#,
    // A usage drawn from one record keeps its ledger entry in its own row (that record, what it
    // had left afterwards, and the entry's place in the ledger's `seq` order) instead of a
    // `ledger` row: one row and four index entries less per usage, a fifth of a hot account's
    // throughput on PostgreSQL. The ledger's lists read both (`Reader::ledger`); listed by
    // record, such entries are found by this index.
    r#"
ALTER TABLE usage ADD COLUMN credit_id TEXT;
ALTER TABLE usage ADD COLUMN remaining_after INTEGER;
ALTER TABLE usage ADD COLUMN entry_seq INTEGER;
CREATE INDEX usage_credit_time ON usage(credit_id, created_at, entry_seq)
    WHERE credit_id IS NOT NULL;
"#,
];

/// Migrations that exist on PostgreSQL only, each after the number of translated SQLite ones it
/// was written after: a database's version counts both, so their order never changes.
const PG_ONLY_MIGRATIONS: &[(usize, &str)] = &[
    // Bumped whenever a key or member changes what it may do, so that every node drops its
    // cache of authenticated keys (see `Reader::auth_epoch`).
    (
        5,
        r#"
CREATE TABLE auth_epoch (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO auth_epoch (id, n) VALUES (1, 0);
"#,
    ),
    // The usage and ledger rows of a committed batch, until they are copied into their tables
    // after the batch's locks are released and the batch is answered (`bulk::hot_flush_pg`,
    // `bulk::journal_materialize`; reads copy what they see first, `bulk::journal_settle`).
    // One row per batch, its arrays stored out of line uncompressed (now compressed in the
    // row with lz4, below).
    (
        6,
        r#"
CREATE TABLE usage_journal (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    created_at BIGINT NOT NULL,
    usage TEXT NOT NULL,
    ledger TEXT NOT NULL
);
ALTER TABLE usage_journal ALTER COLUMN usage SET STORAGE EXTERNAL;
ALTER TABLE usage_journal ALTER COLUMN ledger SET STORAGE EXTERNAL;
"#,
    ),
    // Bumped by any change to the service catalog or the webhook endpoints, whoever makes it
    // (a node, or an operator's own SQL): a node's writer keeps its copies of them while the
    // number stays the same, instead of reading them again in every batch.
    (
        6,
        r#"
CREATE TABLE catalog_epoch (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO catalog_epoch (id, n) VALUES (1, 0);
CREATE FUNCTION credits_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_epoch SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER services_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION credits_catalog_changed();
CREATE TRIGGER service_operations_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON service_operations
    FOR EACH STATEMENT EXECUTE FUNCTION credits_catalog_changed();
CREATE TRIGGER webhook_endpoints_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON webhook_endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION credits_catalog_changed();
"#,
    ),
    // Raised by a batch's last write when another node stored one of its idempotency keys
    // meanwhile (`bulk::hot_flush_pg`): a serialization failure, so that the batch rolls back
    // and runs again, even when its `COMMIT` was sent with the write.
    (
        6,
        r#"
CREATE FUNCTION credits_conflict(message TEXT) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = message;
END
$$;
"#,
    ),
    // Where the node holding the leadership lock is reached (`cluster.rs`): other nodes forward
    // hot accounts' usages there.
    (
        6,
        r#"
CREATE TABLE cluster_leader (
    id BIGINT PRIMARY KEY,
    url TEXT NOT NULL,
    run_id TEXT NOT NULL
);
"#,
    ),
    // The journal's arrays compressed with lz4 and kept in the row: a batch's usage array
    // (about 250 bytes a usage) shrinks about eight times and fits in the row, so the locked
    // write stores no TOAST chunks (a heap row and an index entry each) and the log carries an
    // eighth of it. 3,000 journal rows of 21 usages: 20 ms inserted against 66 ms out of line
    // uncompressed (pglz inline: 78 ms), 4.3 against 34 MB. Rows written before keep their form.
    // A server built without lz4 keeps the arrays out of line, uncompressed.
    (
        8,
        r#"
DO $$
BEGIN
    ALTER TABLE usage_journal ALTER COLUMN usage SET COMPRESSION lz4,
        ALTER COLUMN ledger SET COMPRESSION lz4;
    ALTER TABLE usage_journal ALTER COLUMN usage SET STORAGE MAIN,
        ALTER COLUMN ledger SET STORAGE MAIN;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'no lz4 on this server: the usage journal stays uncompressed';
END
$$;
"#,
    ),
];

/// A SQLite migration in PostgreSQL's dialect: one schema, written once. Integers are `BIGINT`
/// (so an `i64` binds and reads the same on both), blobs `BYTEA`, the `seq` row ids identity
/// columns; sums are cast back to `BIGINT` (PostgreSQL widens them to `NUMERIC`).
fn pg_dialect(sqlite: &str) -> String {
    sqlite
        .replace(
            "seq INTEGER PRIMARY KEY",
            "seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
        .replace(") WITHOUT ROWID;", ");")
        .replace("unixepoch() * 1000000", "CAST(extract(epoch FROM now()) * 1000000 AS BIGINT)")
        .replace("sum(credits), count(*)", "CAST(sum(credits) AS BIGINT), count(*)")
}

/// Every PostgreSQL migration, in order.
fn pg_migrations() -> Vec<String> {
    let mut migrations = Vec::new();
    for (index, sqlite) in MIGRATIONS.iter().enumerate() {
        for (after, pg_only) in PG_ONLY_MIGRATIONS {
            if *after == index {
                migrations.push(pg_only.to_string());
            }
        }
        migrations.push(pg_dialect(sqlite));
    }
    for (after, pg_only) in PG_ONLY_MIGRATIONS {
        if *after >= MIGRATIONS.len() {
            migrations.push(pg_only.to_string());
        }
    }
    migrations
}

/// Opens the writing connection: WAL with `synchronous=FULL`, so a commit is on disk (WAL
/// fsynced) before it returns, surviving `kill -9` and power loss.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -64000;
         PRAGMA temp_store = MEMORY;",
    )?;
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if mode != "wal" {
        return Err(StoreError::Unavailable(format!("journal_mode is {mode}, not wal")));
    }
    Ok(connection)
}

pub(crate) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection
        .transaction_with_behavior(r2d2_sqlite::rusqlite::TransactionBehavior::Immediate)?;
    let version: usize = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        transaction.execute_batch(migration)?;
        transaction.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
    }
    transaction.commit()?;
    Ok(())
}

/// An arbitrary key for the advisory lock that serializes migrations between nodes.
const MIGRATION_LOCK: i64 = 0x0063_7265_6469_7473;

/// Applies the PostgreSQL migrations not applied yet. Nodes starting at once take turns on an
/// advisory lock, so each migration runs exactly once; each runs in its own transaction.
pub(crate) fn migrate_pg(client: &mut postgres::Client) -> Result<(), StoreError> {
    let pg = |e: postgres::Error| StoreError::from(crate::db::DbError::from(e));
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).map_err(pg)?;
    let result = (|| {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS credits_schema (version BIGINT NOT NULL)")
            .map_err(pg)?;
        let version: i64 = client
            .query_one("SELECT coalesce(max(version), 0) FROM credits_schema", &[])
            .map_err(pg)?
            .get(0);
        let applied = usize::try_from(version).unwrap_or(0);
        for (index, migration) in pg_migrations().iter().enumerate().skip(applied) {
            let mut transaction = client.transaction().map_err(pg)?;
            transaction.batch_execute(migration).map_err(pg)?;
            let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
            transaction
                .execute("INSERT INTO credits_schema (version) VALUES ($1)", &[&version])
                .map_err(pg)?;
            transaction.commit().map_err(pg)?;
        }
        // Made from the code's own column lists, not a migration: see its doc.
        client.batch_execute(&crate::rows::account_state_function().1).map_err(pg)?;
        Ok(())
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).map_err(pg)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgresql_schema_is_the_sqlite_one_in_its_dialect() {
        let pg = pg_migrations().join("\n");
        for sqlite_only in ["INTEGER", "BLOB", "WITHOUT ROWID", "unixepoch"] {
            assert!(!pg.contains(sqlite_only), "{sqlite_only} left in the PostgreSQL schema");
        }
        assert_eq!(pg_migrations().len(), MIGRATIONS.len() + PG_ONLY_MIGRATIONS.len());
    }

    #[test]
    fn postgresql_only_migrations_keep_their_place() {
        // A database migrated when `auth_epoch` came sixth must not skip a later SQLite one.
        let pg = pg_migrations();
        assert!(pg[5].contains("auth_epoch"), "{}", pg[5]);
        assert_eq!(pg[6], pg_dialect(MIGRATIONS[5]));
        assert!(pg[7].contains("usage_journal") && pg[8].contains("catalog_epoch"));
        // Written after the eight SQLite migrations there were (and the five PostgreSQL-only
        // ones before them): fourteenth, whatever comes later.
        assert_eq!(pg[12], pg_dialect(MIGRATIONS[7]));
        assert!(pg[13].contains("COMPRESSION lz4"), "{}", pg[13]);
    }
}
