//! One runner per subscription across nodes: on PostgreSQL, every subscription the service
//! runs (its projections, and the NATS publisher) runs under a lease
//! (`factum_postgres::Leased`, a session advisory lock on a connection of its own), so that
//! with several processes on one database each runs on exactly one of them, and another takes
//! over within about a second when that one dies. The other stores are served by one process.

use std::time::Duration;

use factum_core::Projections;

use crate::ServiceError;

/// The longest a node waits between two attempts at a free lease: the poll of the
/// subscriptions is cut to it when they are leased.
pub(crate) const LEASE_POLL: Duration = Duration::from_secs(1);

/// Puts every subscription of `subscriptions` under a lease when `url` names PostgreSQL,
/// naming this node `node` on the lease connections; returns whether it did.
pub(crate) fn lease(
    url: &str,
    subscriptions: &Projections,
    node: &str,
) -> Result<bool, ServiceError> {
    #[cfg(feature = "postgres")]
    {
        if crate::store_kind(url)? != crate::StoreKind::Postgres {
            return Ok(false);
        }
        subscriptions.wrap(|subscription| {
            std::sync::Arc::new(
                factum_postgres::Leased::new(subscription, url, factum_postgres::DEFAULT_SCHEMA)
                    .with_node(node),
            )
        });
        Ok(true)
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (url, subscriptions, node);
        Ok(false)
    }
}
