//! PostgreSQL: every test gets a database of its own on the dev server.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::{Error, Result, service_var, unique_name};

const SERVICE: &str = "PostgreSQL";
const URL_VAR: &str = "EP_POSTGRES_URL";

/// A freshly created, empty database.
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// Connection URL of the database, for services started by the test.
    pub url: String,
    /// A small pool connected to it.
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates a new database named after `prefix` on the server of `EP_POSTGRES_URL`.
    pub async fn create(prefix: &str) -> Result<Self> {
        let admin_url = service_var(SERVICE, URL_VAR)?;
        let admin = PgConnectOptions::from_str(&admin_url)
            .map_err(|e| Error::refused(SERVICE, format!("parse {URL_VAR}"), e))?;
        let address = format!("{}:{}", admin.get_host(), admin.get_port());

        let mut conn = PgConnection::connect_with(&admin)
            .await
            .map_err(|e| Error::unreachable(SERVICE, &address, e))?;
        // Names from unique_name hold only [a-z0-9-]; quoting keeps the dash legal.
        let name = unique_name(prefix).replace('-', "_");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .map_err(|e| Error::refused(SERVICE, format!("create database {name}"), e))?;
        conn.close().await.ok();

        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(admin.database(&name))
            .await
            .map_err(|e| Error::unreachable(SERVICE, &address, e))?;
        Ok(Self { name, url, pool })
    }
}

/// Replaces the database of a `postgres://` URL, keeping user, host, port and parameters.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_and_keeps_parameters() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5/postgres?sslmode=disable", "t1"),
            "postgres://u@127.0.0.1:5/t1?sslmode=disable"
        );
    }

    #[test]
    fn adds_a_database_to_a_url_without_one() {
        assert_eq!(
            with_database("postgres://u@h:5", "t1"),
            "postgres://u@h:5/t1"
        );
    }
}
