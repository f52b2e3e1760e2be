//! PostgreSQL connections: the writer's and the readers' pool.

use std::time::Duration;

use crate::db::{DbError, PgConn};
use crate::StoreError;

/// How long to wait for the database to accept a connection before answering 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long what was sent on a connection may go unacknowledged (or keepalive probes
/// unanswered) before the connection is given up: a database behind a network that fails
/// silently (a partition, a host that lost power) then costs a request 503 after this long,
/// not the kernel's quarter of an hour of retransmissions. Set on both ends (the server's side
/// by [`SESSION`]), so that the database also ends the sessions of a node it cannot reach, and
/// with them their locks: the leadership's above all, which it would otherwise keep for hours.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle connection is probed after this long, then every [`KEEPALIVE_INTERVAL`].
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;

/// Each session's settings: a statement never waits longer than 20 s (a lock held by a node
/// that hangs, say), a transaction left open is ended after 60 s, and the server's side of the
/// connection gives up on a silent client as the client's side does (see [`TCP_USER_TIMEOUT`]).
const SESSION: &str = "SET statement_timeout = '20s'; \
    SET idle_in_transaction_session_timeout = '60s'; \
    SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; \
    SET tcp_user_timeout = 10000";

/// Parses a `postgres://` URL, with timeouts that keep a lost database from hanging requests.
pub(crate) fn config(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config =
        url.parse().map_err(|e: postgres::Error| StoreError::Unavailable(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES);
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("credits");
    }
    Ok(config)
}

pub(crate) fn connect(config: &postgres::Config) -> Result<PgConn, StoreError> {
    Ok(PgConn::new(client(config).map_err(DbError::from)?))
}

/// A connection with the session's settings ([`SESSION`]).
pub(crate) fn client(config: &postgres::Config) -> Result<postgres::Client, postgres::Error> {
    let mut client = config.connect(postgres::NoTls)?;
    client.batch_execute(SESSION)?;
    Ok(client)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The database's side of every connection gives up on a silent node as the node's side
    /// does (and so ends its locks); `tests/pg_outage.rs` shows the node's side at work.
    #[test]
    fn a_session_gives_up_on_a_silent_peer_within_seconds_on_both_ends() {
        let url = std::env::var("CREDITS_TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let config = config(&url).unwrap();
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        let mut client = match client(&config) {
            Ok(client) => client,
            Err(error) => {
                assert!(
                    std::env::var_os("CREDITS_TEST_DATABASE_URL").is_none(),
                    "no PostgreSQL at {url}: {error}"
                );
                println!("skipped: no PostgreSQL ({error})");
                return;
            }
        };
        let show = |client: &mut postgres::Client, name: &str| -> String {
            client.query_one(&format!("SHOW {name}"), &[]).unwrap().get(0)
        };
        assert_eq!(show(&mut client, "tcp_user_timeout"), "10000"); // milliseconds
        assert_eq!(show(&mut client, "tcp_keepalives_idle"), "5");
        assert_eq!(show(&mut client, "tcp_keepalives_interval"), "2");
        assert_eq!(show(&mut client, "tcp_keepalives_count"), "3");
        assert_eq!(show(&mut client, "statement_timeout"), "20s");
    }
}
