//! What the view cases compare against: a seeded random workload, every stored record of a
//! view, and the records a replay of every event from scratch folds.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use factum_core::{
    Aggregate, CqrsCommandEngine, CqrsContext, EventStore, Upcasters, View, ViewField, ViewQuery,
    ViewStore,
};

use super::tabs::{Tab, TabCommand};

/// Runs `count` random commands (seeded) over 20 tabs through `engine`; some are refused by
/// the domain, as in real traffic.
pub async fn random_commands(engine: &CqrsCommandEngine<Tab>, count: usize, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ctx = CqrsContext::new();
    for tab in 0..20 {
        engine
            .create_with_id(
                &format!("tab-{tab:02}"),
                &format!("owner {}", tab % 7),
                &ctx,
            )
            .await
            .unwrap();
    }
    for _ in 0..count {
        let tab = format!("tab-{:02}", rng.u32(0..20));
        let command = match rng.u32(0..20) {
            0 => TabCommand::Pay,
            1..=6 => TabCommand::Remove {
                item_id: rng.u32(1..8),
            },
            _ => TabCommand::Add {
                name: ["beer", "wine", "crisps", "water"][rng.usize(0..4)].to_owned(),
                price: rng.i64(100..1000),
            },
        };
        // Refusals (paid tab, missing item) are part of the workload.
        let _ = engine.update(&tab, &command, &ctx).await;
    }
}

/// Every record of a view type, by id, as JSON.
pub async fn all_records(
    views: &dyn ViewStore,
    view_type: &str,
    fields: &[ViewField],
) -> BTreeMap<String, serde_json::Value> {
    let mut records = BTreeMap::new();
    let mut page = 1;
    loop {
        let query = ViewQuery {
            page,
            page_size: factum_core::MAX_PAGE_SIZE,
            ..ViewQuery::default()
        };
        let result = views.query_views(view_type, &query, fields).await.unwrap();
        let done = result.items.len() < query.page_size as usize;
        for record in result.items {
            // Exactly: a number no f64 holds compares by its text.
            records.insert(
                record.view_id,
                factum_core::json::from_str(&record.data).unwrap(),
            );
        }
        if done {
            return records;
        }
        page += 1;
    }
}

/// The records of view `V` folded from every stored event, from scratch, in memory.
pub async fn replay<V: View>(store: &dyn EventStore) -> BTreeMap<String, serde_json::Value> {
    let mut records: BTreeMap<String, V> = BTreeMap::new();
    let mut after = 0;
    loop {
        let batch = store.read_all(after, 1000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.position;
        for stored in &batch {
            if stored.aggregate_type != <V::Aggregate as Aggregate>::TYPE {
                continue;
            }
            let envelope = Upcasters::new()
                .decode::<<V::Aggregate as Aggregate>::Event>(stored)
                .unwrap();
            let id = V::view_id(&envelope);
            let current = records.get(&id).cloned().unwrap_or_default();
            if let Some(next) = current.update(&envelope) {
                if next.is_deleted() {
                    records.remove(&id);
                } else {
                    records.insert(id, next);
                }
            }
        }
    }
    records
        .into_iter()
        .map(|(id, v)| {
            let text = serde_json::to_string(&v).unwrap();
            (id, factum_core::json::from_str(&text).unwrap())
        })
        .collect()
}
