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
    // Positions grow strictly; a store may leave gaps between them.
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert!(all[0].position > 0);
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
    assert!(
        store
            .read_all(all[14].position, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.read_all(all[13].position, 10).await.unwrap(),
        all[14..]
    );
    assert_eq!(
        store
            .read_all(all[13].position + 1, 10)
            .await
            .unwrap()
            .len(),
        usize::from(all[14].position > all[13].position + 1),
        "after_position need not be a stored position"
    );
}

/// `head_position` is the last stored position.
pub async fn head_position(store: Arc<dyn EventStore>) {
    assert_eq!(store.head_position().await.unwrap(), 0);
    append(&*store, "a-1", ExpectedVersion::NoStream, 3)
        .await
        .unwrap();
    let last = append(&*store, "a-2", ExpectedVersion::NoStream, 2)
        .await
        .unwrap();
    assert_eq!(
        store.head_position().await.unwrap(),
        last[1].position,
        "the head is the last appended event's position"
    );
}
