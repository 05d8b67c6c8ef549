//! A store without room: a write that does not fit is `StoreFull` (never a generic store
//! failure), stores nothing, leaves what was stored readable, and the health check says so
//! until a write fits again. Tried with the database's size cap and, where this process may
//! mount one, on a really full file system.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use factum_core::store::AppendRequest;
use factum_core::{Error, EventStore, ExpectedVersion};
use factum_sqlite::{SqliteEventStore, SqliteOptions};
use factum_testing::sample::event;

const TYPE: &str = "faults";

/// Appends 4 KiB events to one stream until the store refuses one; returns how many fit.
async fn fill(store: &SqliteEventStore) -> (u64, Error) {
    let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    let mut stored = 0u64;
    loop {
        let mut new = event(stored);
        new.payload = payload.clone();
        let append = AppendRequest::new(TYPE, "s", ExpectedVersion::Exact(stored), vec![new]);
        match store.append(append).await {
            Ok(_) => stored += 1,
            Err(error) => return (stored, error),
        }
        assert!(stored < 100_000, "the store never filled up");
    }
}

async fn assert_full_then_readable(store: &SqliteEventStore) -> u64 {
    store.health_check().await.unwrap();
    let (stored, error) = fill(store).await;
    assert!(matches!(error, Error::StoreFull(_)), "{error}");
    assert_eq!(error.status(), 507);
    assert_eq!(error.code(), "STORE_FULL");
    assert!(stored > 0);
    // Nothing of the refused append is stored; what was stored reads back.
    assert_eq!(store.stream_version(TYPE, "s").await.unwrap(), stored);
    assert_eq!(
        store.read_stream(TYPE, "s", 1, None).await.unwrap().len() as u64,
        stored
    );
    let health = store.health_check().await.unwrap_err();
    assert!(matches!(health, Error::StoreFull(_)), "{health}");
    stored
}

#[tokio::test]
async fn a_database_at_its_size_cap_is_full_and_says_so_until_a_write_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capped.db");
    let options = SqliteOptions::default().with_max_size(256 * 1024);
    let store = SqliteEventStore::open_with(&path, options).await.unwrap();
    let stored = assert_full_then_readable(&store).await;
    store.close().await;

    // With room again (a larger cap), writes go on and the health check recovers.
    let options = SqliteOptions::default().with_max_size(4 * 1024 * 1024);
    let store = SqliteEventStore::open_with(&path, options).await.unwrap();
    assert_eq!(store.stream_version(TYPE, "s").await.unwrap(), stored);
    let append = AppendRequest::new(
        TYPE,
        "s",
        ExpectedVersion::Exact(stored),
        vec![event(stored)],
    );
    store.append(append).await.unwrap();
    store.health_check().await.unwrap();
}

/// Mounts a small tmpfs at `dir`; false where this process may not (not root, a container
/// without the capability): then the test relies on the size cap above alone.
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test]
async fn a_full_file_system_is_store_full() {
    let dir = tempfile::tempdir().unwrap();
    if !mount_tmpfs(dir.path(), "512k") {
        eprintln!("skipped: cannot mount a tmpfs here (the size-cap test covers the mapping)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    let store = SqliteEventStore::open(dir.path().join("full.db"))
        .await
        .unwrap();
    assert_full_then_readable(&store).await;
    store.close().await;
}
