//! Stream versions known without a read: only while this process holds the file's owner
//! lock and one store is open on it here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use factum_core::store::{AppendRequest, NewEvent};
use factum_core::{EventStore, ExpectedVersion};
use factum_sqlite::{OwnerLock, SqliteEventStore};

fn one_event(version: u64) -> AppendRequest {
    let expected = if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    };
    AppendRequest::new(
        "counter",
        "c",
        expected,
        vec![NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: "Added".to_owned(),
            schema_version: 1,
            payload: "{}".to_owned(),
            metadata: "{}".to_owned(),
            recorded_at: chrono::Utc::now(),
        }],
    )
}

#[tokio::test]
async fn versions_are_known_only_to_the_one_store_of_a_held_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");

    // Not held: every answer takes a read.
    let store = SqliteEventStore::open(&path).await.unwrap();
    store.append(one_event(0)).await.unwrap();
    assert_eq!(store.known_stream_version("counter", "c"), None);
    store.close().await;

    let lock = OwnerLock::acquire(&path).unwrap();
    let store = SqliteEventStore::open(&path).await.unwrap();
    // Written before: not known until this store appends to it.
    assert_eq!(store.known_stream_version("counter", "c"), None);
    store.append(one_event(1)).await.unwrap();
    assert_eq!(store.known_stream_version("counter", "c"), Some(2));

    // A second store on the file in this process: neither sees all writes any more.
    let second = SqliteEventStore::open(&path).await.unwrap();
    assert_eq!(store.known_stream_version("counter", "c"), None);
    second.append(one_event(2)).await.unwrap();
    assert_eq!(second.known_stream_version("counter", "c"), None);
    second.close().await;
    // Alone again, but what it knew is forgotten (the other store wrote meanwhile).
    assert_eq!(store.known_stream_version("counter", "c"), None);
    store.append(one_event(3)).await.unwrap();
    assert_eq!(store.known_stream_version("counter", "c"), Some(4));

    drop(lock);
    assert_eq!(store.known_stream_version("counter", "c"), None);
}
