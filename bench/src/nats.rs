//! NATS JetStream publish throughput: the factum-nats outbox (its publisher subscription
//! catching up over stored events, one acknowledged publish at a time) next to a bare
//! `async-nats` loop publishing the same messages (same subjects, payloads and headers) the
//! same way, one acknowledgement awaited before the next publish. A pipelined bare loop
//! (acknowledgements awaited in windows) is reported beside it as the server's ceiling.
//!
//! Every run uses streams of its own (`BENCH_<pid>_<n>`, on subjects `bench<pid>n<n>.>`,
//! which no other stream holds) and deletes them afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use bank::domain::Account;
use factum_core::feed::FeedEvent;
use factum_core::store::StoredEvent;
use factum_core::{CqrsCommandEngine, EventStore, InMemoryEventStore, Subscription};
use factum_nats::{NatsConfig, NatsPublisher};

use crate::latency;
use crate::report::Measurement;

/// Acknowledgements in flight at once in the pipelined loop.
pub const WINDOW: usize = 256;

/// A store holding `events` events of the bank (opens, then deposits over 100 accounts).
pub async fn filled_store(events: usize) -> anyhow::Result<Arc<dyn EventStore>> {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let engine = CqrsCommandEngine::<Account>::new(store.clone(), ());
    latency::write(engine, events.clamp(1, 100), events, Duration::ZERO).await?;
    Ok(store)
}

/// Every event of `store`, in position order.
pub async fn all_events(store: &dyn EventStore) -> anyhow::Result<Vec<StoredEvent>> {
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &StoredEvent| e.position);
        let batch = store.read_all(after, 1000).await?;
        if batch.is_empty() {
            return Ok(events);
        }
        events.extend(batch);
    }
}

/// A stream name and subject prefix no one else uses.
fn unique(run: usize, side: &str) -> NatsConfig {
    let pid = std::process::id();
    NatsConfig {
        stream: format!("BENCH_{pid}_{run}_{side}"),
        subject_prefix: format!("bench{pid}r{run}{side}"),
    }
}

async fn stream_count(jetstream: &Context, stream: &str) -> anyhow::Result<u64> {
    let mut stream = jetstream.get_stream(stream).await?;
    Ok(stream.info().await?.state.messages)
}

fn rate(events: usize, elapsed: Duration, stored: u64) -> Measurement {
    let correct = stored == events as u64;
    let check = format!("{stored} of {events} messages in the stream");
    Measurement::rate(
        events as f64 / elapsed.as_secs_f64(),
        "events/s",
        correct,
        check,
    )
}

/// The outbox: a fresh publisher subscription publishes every event of `store`.
pub async fn outbox(
    url: &str,
    store: Arc<dyn EventStore>,
    events: usize,
    run: usize,
) -> anyhow::Result<Measurement> {
    let config = unique(run, "f");
    let publisher = NatsPublisher::connect(url, config.clone()).await?;
    let jetstream = publisher.jetstream().clone();
    let result = async {
        // A subscription of its own per run: its checkpoint starts at 0, so each run
        // publishes every event (the service's is `factum_nats::publisher_subscription`).
        let subscription =
            Subscription::new(format!("bench.nats.{run}"), store, Arc::new(publisher))?;
        let started = Instant::now();
        let read = subscription.catch_up().await?;
        let elapsed = started.elapsed();
        if read != events as u64 {
            bail!("the outbox read {read} events, not {events}");
        }
        measured(&jetstream, &config.stream, events, elapsed).await
    }
    .await;
    deleting(&jetstream, &config.stream, result).await
}

/// The bare loop: the same messages, published with `async-nats` directly; `window` 1 awaits
/// each acknowledgement before the next publish, as the outbox does.
pub async fn bare(
    url: &str,
    events: &[StoredEvent],
    window: usize,
    run: usize,
) -> anyhow::Result<Measurement> {
    let config = unique(run, if window == 1 { "b" } else { "p" });
    // The same stream set-up as the outbox's; the publishing below is async-nats alone.
    let jetstream = NatsPublisher::connect(url, config.clone())
        .await?
        .jetstream()
        .clone();
    let result = async {
        let messages = events
            .iter()
            .map(|event| {
                let subject = format!(
                    "{}.{}.{}",
                    config.subject_prefix, event.aggregate_type, event.event_type
                );
                Ok((subject, headers(event), FeedEvent::of(event)?.to_json()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let started = Instant::now();
        let mut pending = Vec::with_capacity(window);
        for (subject, headers, payload) in messages {
            pending.push(
                jetstream
                    .publish_with_headers(subject, headers, payload.into())
                    .await?,
            );
            if pending.len() >= window.max(1) {
                for ack in pending.drain(..) {
                    ack.await?;
                }
            }
        }
        for ack in pending {
            ack.await?;
        }
        let elapsed = started.elapsed();
        measured(&jetstream, &config.stream, events.len(), elapsed).await
    }
    .await;
    deleting(&jetstream, &config.stream, result).await
}

/// The rate of `events` in `elapsed`, checked against what `stream` holds.
async fn measured(
    jetstream: &Context,
    stream: &str,
    events: usize,
    elapsed: Duration,
) -> anyhow::Result<Measurement> {
    Ok(rate(
        events,
        elapsed,
        stream_count(jetstream, stream).await?,
    ))
}

/// Deletes `stream`, then hands `result` on.
async fn deleting(
    jetstream: &Context,
    stream: &str,
    result: anyhow::Result<Measurement>,
) -> anyhow::Result<Measurement> {
    jetstream
        .delete_stream(stream)
        .await
        .context("cannot delete the stream")?;
    result
}

/// The outbox's headers (see `factum_nats`), set by name.
fn headers(event: &StoredEvent) -> HeaderMap {
    let values = [
        ("Nats-Msg-Id", event.event_id.to_string()),
        ("Factum-Aggregate-Id", event.aggregate_id.clone()),
        ("Factum-Version", event.version.to_string()),
        ("Factum-Position", event.position.to_string()),
    ];
    let mut headers = HeaderMap::new();
    for (name, value) in values {
        headers.insert(name, value.as_str());
    }
    headers
}
