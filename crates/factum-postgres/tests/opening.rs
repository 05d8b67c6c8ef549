//! Opening the PostgreSQL store against the real server: migrations by many nodes at once,
//! schema names, a schema from a newer release, and health checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{SchemaGuard, append_one, open_on, open_store, unique_schema};
use factum_core::{Error, EventStore, ExpectedVersion};
use factum_postgres::PostgresEventStore;
use serde_json::json;
// SQL built by these tests splices only schema names the tests generated themselves
// (plain identifiers the store validated) and constants.
use sqlx::AssertSqlSafe;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_nodes_opening_one_schema_at_once_migrate_it_once() {
    let schema = unique_schema();
    let _guard = SchemaGuard::new(&schema);
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move { open_on(&schema).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap());
    }
    let versions: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".factum_migrations ORDER BY version"
    )))
    .fetch_all(stores[0].pool())
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    // And reopening later is a no-op that keeps the data.
    append_one(&stores[1], "a", ExpectedVersion::NoStream, "E", json!({}))
        .await
        .unwrap();
    let reopened = open_on(&schema).await;
    assert_eq!(reopened.stream_version("account", "a").await.unwrap(), 1);
    assert_eq!(reopened.schema(), schema);
}

#[tokio::test]
async fn invalid_schema_names_are_rejected_before_connecting() {
    // The URL points nowhere: a name check that came second would fail differently.
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    for name in [
        "",
        "Upper",
        "has-dash",
        "x\"; DROP SCHEMA public; --",
        "pg_temp",
        "9lives",
    ] {
        let err = PostgresEventStore::connect_with_schema(nowhere, name)
            .await
            .unwrap_err();
        assert!(
            matches!(err, factum_postgres::Error::InvalidSchemaName(ref n) if n == name),
            "{name:?}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_migrated_by_a_newer_release_is_refused() {
    let (store, guard) = open_store().await;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{}\".factum_migrations (version, name) VALUES (999, 'future')",
        guard.schema()
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let err = PostgresEventStore::from_pool(store.pool().clone(), guard.schema())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            factum_postgres::Error::SchemaTooNew {
                found: 999,
                known: 5,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_check_reports_a_closed_pool_as_unavailable() {
    let (store, _guard) = open_store().await;
    store.health_check().await.unwrap();
    store.pool().close().await;
    let err = store.health_check().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}
