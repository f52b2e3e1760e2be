//! PostgreSQL connections: the writer's and the readers' pool.

use std::time::Duration;

use crate::db::{DbError, PgConn};
use crate::StoreError;

/// How long to wait for the database to accept a connection before answering 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Parses a `postgres://` URL, with timeouts that keep a lost database from hanging requests.
pub(crate) fn config(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config =
        url.parse().map_err(|e: postgres::Error| StoreError::Unavailable(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.keepalives(true).keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("credits");
    }
    Ok(config)
}

pub(crate) fn connect(config: &postgres::Config) -> Result<PgConn, StoreError> {
    let mut client = config.connect(postgres::NoTls).map_err(DbError::from)?;
    // A statement never waits longer than this (a lock held by a node that hangs, say).
    client
        .batch_execute(
            "SET statement_timeout = '20s'; SET idle_in_transaction_session_timeout = '60s'",
        )
        .map_err(DbError::from)?;
    Ok(PgConn::new(client))
}

/// Opens pooled PostgreSQL connections for reads.
pub(crate) struct Manager(pub(crate) postgres::Config);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = StoreError;

    fn connect(&self) -> Result<PgConn, StoreError> {
        connect(&self.0)
    }

    fn is_valid(&self, connection: &mut PgConn) -> Result<(), StoreError> {
        connection.client.simple_query("").map(|_| ()).map_err(|e| DbError::from(e).into())
    }

    fn has_broken(&self, connection: &mut PgConn) -> bool {
        connection.client.is_closed()
    }
}
