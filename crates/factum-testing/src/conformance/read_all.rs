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
            appended(&*store, id, ExpectedVersion::Exact(round), 1).await;
        }
    }
    let all = all_after(&*store, 0, 1000).await;
    assert_eq!(all.len(), 15);
    // Positions grow strictly; a store may leave gaps between them.
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert!(all[0].position > 0);
    assert_eq!(all[0].aggregate_id, "x");
    assert_eq!(all[1].aggregate_id, "y");
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = all_after(&*store, after, 4).await;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        after = page.last().map_or(after, |e| e.position);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(all_after(&*store, all[14].position, 10).await.is_empty());
    assert_eq!(all_after(&*store, all[13].position, 10).await, all[14..]);
    assert_eq!(
        all_after(&*store, all[13].position + 1, 10).await.len(),
        usize::from(all[14].position > all[13].position + 1),
        "after_position need not be a stored position"
    );
}

/// `head_position` is the last stored position.
pub async fn head_position(store: Arc<dyn EventStore>) {
    assert_eq!(store.head_position().await.unwrap(), 0);
    appended(&*store, "a-1", ExpectedVersion::NoStream, 3).await;
    let last = appended(&*store, "a-2", ExpectedVersion::NoStream, 2).await;
    assert_eq!(
        store.head_position().await.unwrap(),
        last[1].position,
        "the head is the last appended event's position"
    );
}
