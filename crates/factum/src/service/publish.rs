//! `--publish nats://HOST:PORT` (`FACTUM_PUBLISH`): the service also runs the NATS JetStream
//! outbox (`factum_nats`), a subscription that publishes every committed event to the stream
//! `--publish-stream` (`FACTUM`) on subjects under `--publish-subject-prefix` (`factum`) and
//! moves its checkpoint only past acknowledged publishes.

use std::sync::Arc;

use factum_core::{EventStore, Projections};

use super::options::ServeArgs;
use crate::ServiceError;

/// `subscriptions` with the publisher the options ask for added, if any.
pub(crate) async fn with_publisher(
    args: &ServeArgs,
    store: &Arc<dyn EventStore>,
    subscriptions: Projections,
) -> Result<Projections, ServiceError> {
    let Some(url) = args.publish.as_deref() else {
        return Ok(subscriptions);
    };
    #[cfg(feature = "nats")]
    {
        let config = factum_nats::NatsConfig {
            stream: args.publish_stream.clone(),
            subject_prefix: args.publish_subject_prefix.clone(),
        };
        let stream = config.stream.clone();
        let publisher = factum_nats::NatsPublisher::connect(url, config)
            .await
            .map_err(|e| ServiceError::failed(format!("cannot publish to {url}"), e))?;
        let subscription = factum_nats::publisher_subscription(store.clone(), publisher)
            .map_err(|e| ServiceError::failed("cannot set up the NATS publisher", e))?;
        tracing::info!(%url, %stream, "publishing every event to NATS JetStream");
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
