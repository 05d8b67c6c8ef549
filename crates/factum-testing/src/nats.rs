//! A JetStream stream of a test's own (feature `nats`), for tests of services that publish
//! with `--publish`: unique stream and subject names (streams of one server may not share
//! subjects), the messages read back, the stream deleted when the guard drops.

// Test code shipped in a library: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_nats::jetstream::{self, Context};

/// The server tests use: `FACTUM_TEST_NATS_URL`, or the local one.
pub fn nats_url() -> String {
    std::env::var("FACTUM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// One message of the stream, as a Factum publisher wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The stream's sequence number.
    pub sequence: u64,
    /// The subject.
    pub subject: String,
    /// `Nats-Msg-Id`: the event id.
    pub event_id: String,
    /// `Factum-Aggregate-Id`.
    pub aggregate_id: String,
    /// `Factum-Version`.
    pub version: u64,
    /// `Factum-Position`.
    pub position: u64,
}

/// A stream named `FACTUM_TEST_<unique>` over the subjects `<prefix>.>`; deleted on drop,
/// also when the test fails. Connecting fails the test when the server is missing.
#[derive(Debug)]
pub struct TestStream {
    name: String,
    prefix: String,
    jetstream: Context,
}

impl TestStream {
    /// Names a new stream (a publisher creates it) and connects to the server.
    pub async fn new() -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let url = nats_url();
        let client = async_nats::connect(&url).await.unwrap_or_else(|error| {
            panic!(
                "NATS with JetStream is required for this test and is not usable at {url} \
                 (set FACTUM_TEST_NATS_URL to another server): {error}"
            )
        });
        Self {
            name: format!("FACTUM_TEST_{unique}"),
            prefix: format!("factumtest{unique}"),
            jetstream: jetstream::new(client),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first subject token.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The options that make a Factum service publish to this stream.
    pub fn service_args(&self) -> Vec<String> {
        [
            "--publish",
            &nats_url(),
            "--publish-stream",
            &self.name,
            "--publish-subject-prefix",
            &self.prefix,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Every message in the stream, by sequence (none before a publisher created it).
    pub async fn messages(&self) -> Vec<Published> {
        self.messages_after(0).await
    }

    /// The messages after sequence number `after`, by sequence.
    pub async fn messages_after(&self, after: u64) -> Vec<Published> {
        let Ok(mut stream) = self.jetstream.get_stream(&self.name).await else {
            return Vec::new();
        };
        let state = stream.info().await.unwrap().state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence.max(after + 1)..=state.last_sequence {
            let message = stream.get_raw_message(sequence).await.unwrap();
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_else(|| panic!("message {sequence} has no {name} header"))
            };
            messages.push(Published {
                sequence,
                subject: message.subject.to_string(),
                event_id: header("Nats-Msg-Id"),
                aggregate_id: header("Factum-Aggregate-Id"),
                version: header("Factum-Version").parse().unwrap(),
                position: header("Factum-Position").parse().unwrap(),
            });
        }
        messages
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let name = self.name.clone();
        let deleted = crate::detached::block_on_detached(move || async move {
            let client = async_nats::connect(nats_url())
                .await
                .map_err(|e| e.to_string())?;
            match jetstream::new(client).delete_stream(&name).await {
                Ok(_) => Ok(()),
                // Never created: nothing to delete.
                Err(error) if error.to_string().contains("not found") => Ok(()),
                Err(error) => Err(error.to_string()),
            }
        })
        .and_then(|deleted| deleted);
        if let Err(error) = deleted
            && !std::thread::panicking()
        {
            panic!("could not delete the test stream {}: {error}", self.name);
        }
    }
}
