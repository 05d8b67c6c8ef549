//! A PostgreSQL database of a test's own (feature `postgres`), for tests that start several
//! service processes on one database.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::{AssertSqlSafe, Connection};

/// The server tests use: `FACTUM_TEST_DATABASE_URL`, or the local one.
pub fn admin_url() -> String {
    std::env::var("FACTUM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own on the test server, created by [`TestDatabase::create`] and dropped
/// (`WITH (FORCE)`, so connections of killed processes do not keep it alive) when the guard
/// drops, even when the test panics. Creating it fails the test when the server is missing.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// Creates `{prefix}_{pid}_{nanos}`; `prefix` must be a plain lower-case identifier.
    pub async fn create(prefix: &str) -> Self {
        assert!(
            prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "a plain identifier: {prefix:?}"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL is required for this test and is not usable at {admin} \
                     (set FACTUM_TEST_DATABASE_URL to another server): {error}"
                )
            });
        // `name` is the checked plain identifier above plus digits: nothing to inject.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self { name }
    }

    /// The database's URL, on the admin URL's server.
    pub fn url(&self) -> String {
        let admin = admin_url();
        let server = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(server, _)| server);
        format!("{server}/{}", self.name)
    }
}

/// Runs `sql` on the server of [`admin_url`] from a thread and a runtime of its own, so that
/// a guard's `drop` can run it inside the test's runtime or outside any.
pub fn execute_detached(sql: String) -> Result<(), String> {
    crate::detached::block_on_detached(move || async move {
        let mut conn = sqlx::PgConnection::connect(&admin_url()).await?;
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
        conn.close().await?;
        Ok::<_, sqlx::Error>(())
    })?
    .map_err(|error| error.to_string())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The plain identifier `create` checked and built.
        let dropped = execute_detached(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        if let Err(error) = dropped
            && !std::thread::panicking()
        {
            panic!("could not drop database {}: {error}", self.name);
        }
    }
}
