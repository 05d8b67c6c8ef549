//! Wake-ups from other nodes: on PostgreSQL, the service's subscriptions are woken by the
//! commits of every node through LISTEN/NOTIFY (`factum_postgres::notify`); on the other
//! stores only this process writes, and its engines wake them directly.

use factum_core::Projections;

use crate::ServiceError;

/// What keeps listening while the service runs; dropped, it stops.
pub(crate) struct Wakeups {
    #[cfg(feature = "postgres")]
    _listener: Option<factum_postgres::CommitListener>,
}

/// Starts listening for other nodes' commits when `url` names PostgreSQL.
pub(crate) async fn listen(
    url: &str,
    subscriptions: &Projections,
) -> Result<Wakeups, ServiceError> {
    #[cfg(feature = "postgres")]
    {
        let listener = if crate::store_kind(url)? == crate::StoreKind::Postgres {
            let wake = subscriptions.clone();
            let listener = factum_postgres::CommitListener::connect(
                url,
                factum_postgres::DEFAULT_SCHEMA,
                move || wake.wake(),
            )
            .await
            .map_err(|e| ServiceError::failed("cannot listen for commits of other nodes", e))?;
            Some(listener)
        } else {
            None
        };
        Ok(Wakeups {
            _listener: listener,
        })
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (url, subscriptions);
        Ok(Wakeups {})
    }
}
