//! `--publish nats://HOST:PORT` (`FACTUM_PUBLISH`): the service also runs the NATS JetStream
//! outbox (`factum_nats`), a subscription that publishes every committed event to the stream
//! `FACTUM` and moves its checkpoint only past acknowledged publishes.

use std::sync::Arc;

use factum_core::{EventStore, Projections};

use crate::ServiceError;

/// `subscriptions` with the publisher to `url` added, if one is asked for.
pub(crate) async fn with_publisher(
    url: Option<&str>,
    store: &Arc<dyn EventStore>,
    subscriptions: Projections,
) -> Result<Projections, ServiceError> {
    let Some(url) = url else {
        return Ok(subscriptions);
    };
    #[cfg(feature = "nats")]
    {
        let publisher =
            factum_nats::NatsPublisher::connect(url, factum_nats::NatsConfig::default())
                .await
                .map_err(|e| ServiceError::failed(format!("cannot publish to {url}"), e))?;
        let subscription = factum_nats::publisher_subscription(store.clone(), publisher)
            .map_err(|e| ServiceError::failed("cannot set up the NATS publisher", e))?;
        tracing::info!(%url, "publishing every event to NATS JetStream");
        Ok(subscriptions.with_subscription(subscription))
    }
    #[cfg(not(feature = "nats"))]
    {
        let _ = (store, subscriptions);
        Err(ServiceError::FeatureDisabled {
            scheme: if url.starts_with("nats:") {
                "nats"
            } else {
                "publish"
            },
            feature: "nats",
        })
    }
}
