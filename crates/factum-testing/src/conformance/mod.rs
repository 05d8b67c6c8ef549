//! The event-store conformance suite: every backend runs these same cases, through
//! [`event_store_conformance_tests!`](crate::event_store_conformance_tests).
//!
//! Each case takes a fresh, empty store and panics on a violation of the
//! [`EventStore`](factum_core::EventStore) contract.

mod checkpoints;
mod concurrency;
mod expected_versions;
mod items;
mod read_all;
mod requests;
mod retries;
mod snapshots;
mod streams;
mod upcasting;
mod view_odd_values;
mod view_queries;
mod view_records;

pub use self::checkpoints::projection_checkpoints;
pub use self::concurrency::{
    concurrent_appends_to_many_aggregates, concurrent_appends_to_one_aggregate,
    race_on_one_aggregate,
};
pub use self::expected_versions::{
    expected_any, expected_exact, expected_no_stream, expected_stream_exists,
};
pub use self::items::ITEM_FIELDS;
pub use self::read_all::{head_position, read_all_in_position_order};
pub use self::retries::{failed_append_is_atomic, idempotent_append};
pub use self::snapshots::snapshots;
pub use self::streams::{
    append_and_read_stream, large_stream, read_stream_from_version_with_limit,
    streams_are_isolated_by_type_and_id,
};
pub use self::upcasting::{Renamed, upcasting_on_read};
pub use self::view_odd_values::{ODD_FIELDS, views_query_odd_values};
pub use self::view_queries::{
    views_query_many_clauses, views_query_operators_sort_and_paging, views_query_rejections,
};
pub use self::view_records::{inline_view_changes_commit_with_events, views_get_and_list};

/// Generates one `#[tokio::test]` per conformance case for a store factory.
///
/// `$factory` is an async fn returning `(Arc<dyn EventStore>, G)`: a fresh, empty store and
/// a guard `G` kept alive until the case ends (a temporary directory, a schema to drop).
///
/// ```
/// use std::sync::Arc;
/// use factum_core::{EventStore, InMemoryEventStore};
///
/// async fn new_store() -> (Arc<dyn EventStore>, ()) {
///     (Arc::new(InMemoryEventStore::new()), ())
/// }
/// factum_testing::event_store_conformance_tests!(new_store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! event_store_conformance_tests {
    ($factory:path) => {
        $crate::event_store_conformance_tests!(@suite conformance = conformance, $factory;
            append_and_read_stream,
            read_stream_from_version_with_limit,
            streams_are_isolated_by_type_and_id,
            expected_no_stream,
            expected_exact,
            expected_stream_exists,
            expected_any,
            idempotent_append,
            failed_append_is_atomic,
            concurrent_appends_to_one_aggregate,
            concurrent_appends_to_many_aggregates,
            read_all_in_position_order,
            snapshots,
            large_stream,
            upcasting_on_read,
            head_position,
            views_get_and_list,
            views_query_operators_sort_and_paging,
            views_query_rejections,
            views_query_many_clauses,
            views_query_odd_values,
            projection_checkpoints,
            inline_view_changes_commit_with_events,
        );
        $crate::event_store_conformance_tests!(@suite view_conformance = views, $factory;
            inline_views_equal_replay,
            projection_resumes_and_rebuilds,
            projection_parks_a_poison_event,
        );
        $crate::event_store_conformance_tests!(@suite subscription_conformance = subscriptions, $factory;
            subscription_parks_and_replays,
            subscription_filters_and_starts_from_now,
            subscription_waits_out_an_unavailable_handler,
        );
        $crate::event_store_conformance_tests!(@suite idempotency_conformance = idempotency, $factory;
            idempotency_record_commits_with_events,
            idempotency_conflicting_append_stores_nothing,
            idempotency_duplicate_key_is_refused,
            idempotency_remember_without_events,
            idempotency_expiry,
            idempotency_concurrent_same_key,
        );
        $crate::event_store_conformance_tests!(@suite process_conformance = processes, $factory;
            process_steps_take_effect_once,
            process_runners_race,
        );
    };
    // One test module `$module` running each case of the crate's module `$suite`.
    (@suite $module:ident = $suite:ident, $factory:path; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = $factory().await;
                    $crate::$suite::$case(store).await;
                    drop(guard);
                }
            )*
        }
    };
}
