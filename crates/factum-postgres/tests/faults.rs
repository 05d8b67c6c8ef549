//! PostgreSQL refusing writes for lack of space (SQLSTATE 53100, `disk_full`): the append is
//! `StoreFull` (a 507 over HTTP, never a generic failure), nothing is stored, and the health
//! check reports it until an append succeeds. The server raises the real error from a
//! trigger on the events table, as it would when it cannot extend a file.
//! (Losing the server altogether is the outage test of the bank example.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{append_one, open_store};
use factum_core::{Error, EventStore, ExpectedVersion};
use serde_json::json;
// SQL built by these tests splices only schema names the tests generated themselves
// (plain identifiers the store validated) and constants.
use sqlx::AssertSqlSafe;

#[tokio::test]
async fn disk_full_is_store_full_and_the_health_check_says_so_until_an_append_succeeds() {
    let (store, guard) = open_store().await;
    let schema = guard.schema();
    append_one(&store, "a", ExpectedVersion::NoStream, "Opened", json!({}))
        .await
        .unwrap();
    store.health_check().await.unwrap();

    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE FUNCTION \"{schema}\".no_space() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'
               USING ERRCODE = 'disk_full'; END $$;
         CREATE TRIGGER no_space BEFORE INSERT ON \"{schema}\".events
         FOR EACH ROW EXECUTE FUNCTION \"{schema}\".no_space();"
    )))
    .execute(store.pool())
    .await
    .unwrap();

    let deposit = || {
        append_one(
            &store,
            "a",
            ExpectedVersion::Exact(1),
            "Deposited",
            json!({"amount": 1}),
        )
    };
    let error = deposit().await.unwrap_err();
    assert!(matches!(error, Error::StoreFull(_)), "{error}");
    assert_eq!(
        (error.status(), error.code()),
        (507, "STORE_FULL".to_owned())
    );
    assert!(!error.to_cqrs_error().message.contains("No space"));
    assert_eq!(store.stream_version("account", "a").await.unwrap(), 1);
    let health = store.health_check().await.unwrap_err();
    assert!(matches!(health, Error::StoreFull(_)), "{health}");

    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP TRIGGER no_space ON \"{schema}\".events"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    deposit().await.unwrap();
    store.health_check().await.unwrap();
}

#[tokio::test]
async fn the_error_mapping_reads_the_sqlstate_not_the_message() {
    let (store, _guard) = open_store().await;
    let raised = |code: &'static str| {
        let pool = store.pool().clone();
        async move {
            let sql = format!(
                "DO $$ BEGIN RAISE EXCEPTION 'disk full (or not)' USING ERRCODE = '{code}'; END $$"
            );
            let error = sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap_err();
            factum_core::Error::from(factum_postgres::Error::Database(error))
        }
    };
    assert!(matches!(raised("53100").await, Error::StoreFull(_)));
    // Out of memory (53200) is not a full disk, whatever the message says.
    assert!(matches!(raised("53200").await, Error::Store(_)));
    // A server shutting down or starting up is unreachable for now, not broken.
    for code in ["57P01", "57P03", "08006"] {
        let error = raised(code).await;
        assert!(matches!(error, Error::Unavailable(_)), "{code}: {error}");
        assert_eq!(error.code(), "STORE_UNAVAILABLE");
    }
}
