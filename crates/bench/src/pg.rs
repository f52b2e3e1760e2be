//! A throw-away PostgreSQL database for one bench run.
//!
//! Goal: measure nodes sharing PostgreSQL without touching any existing database. Method:
//! connect to the server the operator named (`--database-url`), `CREATE DATABASE` with a name
//! unique to this run, hand the nodes a URL that differs from the given one only in the database
//! name, and `DROP DATABASE ... WITH (FORCE)` at the end.

use anyhow::{bail, Context};
use tokio_postgres::{Client, NoTls};

pub struct Database {
    /// The URL the operator gave: where CREATE and DROP run.
    server_url: String,
    /// The name of the database this run created.
    pub name: String,
    /// The URL the nodes use.
    pub url: String,
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot connect to the PostgreSQL server of --database-url")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `url` with its database (the path) replaced by `name`; user, password, host, port and query
/// parameters are kept.
pub fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("--database-url must be a postgres:// URL");
    };
    if scheme != "postgres" && scheme != "postgresql" {
        bail!("--database-url must be a postgres:// URL");
    }
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location.split('/').next().unwrap_or_default();
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        if query.split('&').any(|pair| pair.starts_with("dbname=")) {
            bail!("--database-url: give the database as the URL path, not as dbname=");
        }
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

impl Database {
    /// Creates `credits_bench_TAG` on the server of `server_url`.
    pub async fn create(server_url: &str, tag: &str) -> anyhow::Result<Database> {
        let name = format!("credits_bench_{tag}");
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            bail!("unexpected database name {name:?}");
        }
        let url = with_database(server_url, &name)?;
        let client = connect(server_url).await?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        Ok(Database { server_url: server_url.to_string(), name, url })
    }

    /// `VACUUM ANALYZE` and `CHECKPOINT`, as the baseline's `pg/reset.sql` does before each of
    /// its runs: each measured window starts with its tables' statistics known and without the
    /// setup's (or an earlier run's) dirty pages and log still to be written.
    pub async fn settle(&self) -> anyhow::Result<()> {
        let client = connect(&self.url).await?;
        // Two queries: one holding both would run them in one transaction, which VACUUM refuses.
        for statement in ["VACUUM ANALYZE", "CHECKPOINT"] {
            client
                .batch_execute(statement)
                .await
                .with_context(|| format!("cannot {statement} database {}", self.name))?;
        }
        Ok(())
    }

    /// `pg_database_size` of this run's database, in bytes.
    pub async fn size(&self) -> Option<u64> {
        let client = connect(&self.server_url).await.ok()?;
        let row =
            client.query_one("SELECT pg_database_size($1::text)", &[&self.name]).await.ok()?;
        let bytes: i64 = row.try_get(0).ok()?;
        u64::try_from(bytes).ok()
    }

    /// Drops the database, closing any session still on it.
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let client = connect(&self.server_url).await?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .await
            .with_context(|| format!("cannot drop database {}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_only_the_database() -> anyhow::Result<()> {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x")?,
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p%2Fq@db:6543/a?sslmode=disable", "x")?,
            "postgresql://u:p%2Fq@db:6543/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://localhost", "x")?, "postgres://localhost/x");
        assert!(with_database("mysql://localhost/a", "x").is_err());
        assert!(with_database("postgres://h/a?dbname=b", "x").is_err());
        Ok(())
    }
}
