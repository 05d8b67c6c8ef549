//! Reading everything: `read_all` in position order, and `head_position`.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use factum_core::{EventStore, ExpectedVersion};

use super::requests::*;

/// `read_all` returns every event once, in position order, paged by `after_position`.
pub async fn read_all_in_position_order(store: Arc<dyn EventStore>) {
    for round in 0..5 {
        for id in ["x", "y", "z"] {
            append(&*store, id, ExpectedVersion::Exact(round), 1)
                .await
                .unwrap();
        }
    }
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 15);
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=15).collect::<Vec<_>>()
    );
    assert_eq!(all[0].aggregate_id, "x");
    assert_eq!(all[1].aggregate_id, "y");
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        after = page.last().map_or(after, |e| e.position);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(store.read_all(15, 10).await.unwrap().is_empty());
    assert_eq!(store.read_all(14, 10).await.unwrap().len(), 1);
}

/// `head_position` is the last stored position.
pub async fn head_position(store: Arc<dyn EventStore>) {
    assert_eq!(store.head_position().await.unwrap(), 0);
    append(&*store, "a-1", ExpectedVersion::NoStream, 3)
        .await
        .unwrap();
    append(&*store, "a-2", ExpectedVersion::NoStream, 2)
        .await
        .unwrap();
    assert_eq!(store.head_position().await.unwrap(), 5);
}
