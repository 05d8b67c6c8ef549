//! # factum-nats
//!
//! A NATS JetStream outbox for Factum: [`NatsPublisher`] is an
//! [`EventHandler`](factum_core::EventHandler) that publishes each event to a JetStream
//! stream (`FACTUM` unless configured, created if missing) on the subject
//! `factum.<aggregate_type>.<event_type>`, with the envelope JSON as payload, the header
//! `Nats-Msg-Id` set to the event id, and headers `Factum-Aggregate-Id`, `Factum-Version` and
//! `Factum-Position`. It waits for the server's acknowledgement of each publish before it
//! returns, so the subscription it runs in moves its checkpoint only past events the stream
//! has stored. A crash between the acknowledgement and the checkpoint publishes the event
//! again after the restart, and the server drops the copy by its `Nats-Msg-Id` (within the
//! stream's duplicate window, two minutes by default): every committed event is in the stream
//! once, in position order.
//!
//! Run it in a [`Subscription`](factum_core::Subscription) ([`publisher_subscription`]); a
//! server that is down is [`HandlerError::Unavailable`]: nothing is parked, the subscription
//! tries again later.
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn factum_core::EventStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use factum_nats::{NatsConfig, NatsPublisher, publisher_subscription};
//!
//! let publisher = NatsPublisher::connect("nats://127.0.0.1:4222", NatsConfig::default()).await?;
//! let subscription = publisher_subscription(store, publisher)?;
//! subscription.catch_up().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context};
use factum_core::feed::FeedEvent;
use factum_core::store::StoredEvent;
use factum_core::{EventHandler, EventStore, HandlerError, Subscription, async_trait};

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server cannot be reached.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The server's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The stream's name or the subject prefix cannot be used.
    #[error("{0}")]
    Config(String),
    /// The stream cannot be created or read.
    #[error("JetStream stream {stream}: {message}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What went wrong.
        message: String,
    },
}

/// Where the publisher publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// The JetStream stream (created if missing, holding `<subject_prefix>.>`).
    pub stream: String,
    /// The first subject token.
    pub subject_prefix: String,
}

impl NatsConfig {
    /// Checks the names: a stream is named without white space, `.`, `*`, `>`, `/` or `\`;
    /// the prefix is one or more dot-separated tokens without white space, `*` or `>`.
    pub fn validate(&self) -> Result<(), Error> {
        let stream_ok = !self.stream.is_empty()
            && !self
                .stream
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c));
        if !stream_ok {
            return Err(Error::Config(format!(
                "a JetStream stream name has no white space, '.', '*', '>', '/' or '\\': {:?}",
                self.stream
            )));
        }
        let prefix_ok = self.subject_prefix.split('.').all(|t| {
            !t.is_empty()
                && !t
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "*>".contains(c))
        });
        if !prefix_ok {
            return Err(Error::Config(format!(
                "a subject prefix is dot-separated tokens without white space, '*' or '>': {:?}",
                self.subject_prefix
            )));
        }
        Ok(())
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            stream: "FACTUM".to_owned(),
            subject_prefix: "factum".to_owned(),
        }
    }
}

/// The name of the publisher's subscription (its checkpoint key).
pub const PUBLISHER_SUBSCRIPTION: &str = "factum.publisher.nats";

/// Publishes events to JetStream. See the crate docs.
#[derive(Clone)]
pub struct NatsPublisher {
    jetstream: Context,
    config: NatsConfig,
}

impl std::fmt::Debug for NatsPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsPublisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl NatsPublisher {
    /// Connects to `url` and creates the stream if it is missing.
    pub async fn connect(url: &str, config: NatsConfig) -> Result<Self, Error> {
        config.validate()?;
        let client = async_nats::connect(url).await.map_err(|e| Error::Connect {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        let jetstream = jetstream::new(client);
        jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{}.>", config.subject_prefix)],
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Stream {
                stream: config.stream.clone(),
                message: e.to_string(),
            })?;
        Ok(Self { jetstream, config })
    }

    /// The JetStream context (to read or delete the stream).
    pub fn jetstream(&self) -> &Context {
        &self.jetstream
    }

    /// The subject of `event`: `<prefix>.<aggregate_type>.<event_type>`, each token with the
    /// characters NATS gives a meaning (`.`, `*`, `>`, white space) replaced by `_`.
    pub fn subject(&self, event: &StoredEvent) -> String {
        format!(
            "{}.{}.{}",
            self.config.subject_prefix,
            token(&event.aggregate_type),
            token(&event.event_type)
        )
    }
}

fn token(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

#[async_trait]
impl EventHandler for NatsPublisher {
    async fn handle(&self, event: &StoredEvent) -> Result<(), HandlerError> {
        let payload = FeedEvent::of(event)?.to_json()?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
        headers.insert("Factum-Aggregate-Id", event.aggregate_id.as_str());
        headers.insert("Factum-Version", event.version.to_string().as_str());
        headers.insert("Factum-Position", event.position.to_string().as_str());
        let unavailable =
            |e: &dyn std::fmt::Display| HandlerError::Unavailable(format!("NATS: {e}"));
        let ack = self
            .jetstream
            .publish_with_headers(self.subject(event), headers, payload.into())
            .await
            .map_err(|e| unavailable(&e))?;
        ack.await.map_err(|e| unavailable(&e))?;
        Ok(())
    }
}

/// The publisher's subscription over `store` ([`PUBLISHER_SUBSCRIPTION`], from the
/// beginning, every event).
pub fn publisher_subscription(
    store: Arc<dyn EventStore>,
    publisher: NatsPublisher,
) -> factum_core::Result<Subscription> {
    Subscription::new(PUBLISHER_SUBSCRIPTION, store, Arc::new(publisher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_nats_would_misread_are_refused() {
        let config = |stream: &str, prefix: &str| NatsConfig {
            stream: stream.to_owned(),
            subject_prefix: prefix.to_owned(),
        };
        assert!(NatsConfig::default().validate().is_ok());
        assert!(config("TEST_1", "acme.factum").validate().is_ok());
        for (stream, prefix) in [
            ("", "factum"),
            ("A.B", "factum"),
            ("A B", "factum"),
            ("A>", "factum"),
            ("FACTUM", ""),
            ("FACTUM", "a..b"),
            ("FACTUM", "a.*"),
            ("FACTUM", "a b"),
            ("FACTUM", "factum."),
        ] {
            assert!(
                matches!(config(stream, prefix).validate(), Err(Error::Config(_))),
                "{stream:?} {prefix:?}"
            );
        }
    }

    #[test]
    fn subject_tokens_lose_the_characters_nats_reads() {
        assert_eq!(token("account"), "account");
        assert_eq!(token("a.b*c>d e"), "a_b_c_d_e");
        assert_eq!(token(""), "_");
    }
}
