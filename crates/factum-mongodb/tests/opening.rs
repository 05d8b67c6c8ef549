//! Opening a store: indexes created idempotently, the schema version checked, and the view
//! changes of a writer that died between its commit and its views applied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use factum_core::store::{AppendRequest, NewEvent};
use factum_core::{EventStore, ExpectedVersion, ViewChange, ViewRecord, ViewStore};
use factum_mongodb::mongodb::bson::{Document, doc};
use factum_mongodb::{Error, MongoEventStore};

fn deposit() -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "Deposited".to_owned(),
        schema_version: 1,
        payload: "{}".to_owned(),
        metadata: "{}".to_owned(),
        recorded_at: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_everything_and_a_newer_schema_is_refused() {
    let url = factum_testing::mongo::database_url("opening");
    let store = MongoEventStore::connect(&url).await.unwrap();
    let mut append = AppendRequest::new("account", "a", ExpectedVersion::NoStream, vec![deposit()]);
    append.view_changes = vec![ViewChange::Upsert(ViewRecord {
        view_type: "accounts".into(),
        view_id: "a".into(),
        aggregate_id: "a".into(),
        version: 1,
        data: r#"{"balance":1}"#.into(),
    })];
    store.append(append).await.unwrap();

    // A writer that died after its commit and before its view changes.
    let db = store.database();
    db.collection::<Document>("factum_commits")
        .update_one(doc! {"t": "account", "a": "a"}, doc! {"$set": {"vp": true}})
        .await
        .unwrap();
    db.collection::<Document>("factum_views")
        .delete_many(doc! {})
        .await
        .unwrap();
    assert_eq!(store.get_view("accounts", "a").await.unwrap(), None);

    // Opening again creates the same indexes (no error) and finishes the commit's views.
    let again = MongoEventStore::connect(&url).await.unwrap();
    assert_eq!(again.stream_version("account", "a").await.unwrap(), 1);
    let view = again.get_view("accounts", "a").await.unwrap().unwrap();
    assert_eq!(view.data, r#"{"balance":1}"#);
    let pending = db
        .collection::<Document>("factum_commits")
        .count_documents(doc! {"vp": true})
        .await
        .unwrap();
    assert_eq!(pending, 0);

    db.collection::<Document>("factum_meta")
        .update_one(doc! {"_id": "schema"}, doc! {"$set": {"version": 99_i64}})
        .await
        .unwrap();
    let refused = MongoEventStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::SchemaTooNew {
                found: 99,
                known: 1,
                ..
            }
        ),
        "{refused}"
    );
    db.drop().await.unwrap();
}

#[tokio::test]
async fn a_url_names_a_plain_database() {
    for url in ["mongodb://127.0.0.1:1", "mongodb://127.0.0.1:1/bad.name"] {
        let refused = MongoEventStore::connect(url).await.unwrap_err();
        assert!(matches!(refused, Error::InvalidUrl(_)), "{url}: {refused}");
    }
}
