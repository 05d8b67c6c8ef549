//! The MongoDB [`EventStore`](factum_core::EventStore).
//!
//! # Design: single-document atomicity and unique indexes, no transactions
//!
//! Multi-document transactions exist only on replica sets and sharded clusters, so this
//! store does without them and runs the same on a standalone server:
//!
//! - **One document per append.** An append is one *commit* document holding all its
//!   events (with their versions and positions), its snapshot and its inline view changes.
//!   MongoDB writes one document atomically, so an append is stored whole or not at all.
//! - **Expected versions by a unique index.** A commit records its stream's version before
//!   it (`base`) and after it (`lv`), under the unique index `(t, a, base)`. An append
//!   reads the stream's version `current` (the `lv` of its newest commit), checks its
//!   expectation against it, and inserts with `base = current`. Of two appends from the same
//!   version, the index lets one in; the other's insert fails with a duplicate key and it
//!   reads the version again: a conflict if its expectation pinned the old version, another
//!   try otherwise. Every commit's base is the end of an earlier commit (or 0), and at most
//!   one commit leaves each version, so a stream's commits form one chain: versions
//!   1, 2, 3, ... with no overlap and no gap.
//! - **Positions by a dense commit number.** A commit's `_id` is the number of the commit
//!   before it plus one, and its events take the positions after that commit's last. An
//!   append inserts number `n + 1` only after it has read commit `n`; two appends taking the
//!   same number meet on `_id` and the loser reads the newest commit again. So commit
//!   numbers and positions are dense (1, 2, 3, ...), in commit order, and a failed append
//!   leaves no gap.
//! - **`read_all` never skips an event: density is the read horizon.** Commit `n + 1` is
//!   written only after commit `n` was visible, so whenever an event at position `p` is
//!   visible, every position below `p` is stored. A query may still yield and see a later
//!   commit without an earlier one it scanned too soon; `read_all` therefore returns only
//!   the run of positions `after + 1, after + 2, ...` with no hole, and reads again when the
//!   first one is missing (it is stored: a later one is visible). A reader's checkpoint
//!   thus never passes an event that shows up later.
//! - **Retries by event id.** The unique index on a commit's first event id catches an
//!   append sent twice; an append whose ids are stored is resolved by the shared
//!   [`rules`](factum_core::store::rules): the same ids at consecutive versions of its
//!   stream is a retry and returns the stored events, anything else a conflict. Duplicate
//!   keys are recognised by their code (11000), never by message text; which index refused
//!   an insert is found by reading, not by parsing.
//! - **Views and idempotency records without a transaction.** Inline view changes are in
//!   the commit and applied right after it, before the append returns; the commit is marked
//!   `vp` until they are, and opening a store applies the changes of every marked commit
//!   (a writer that died in between). View writes are guarded by position, so applying them
//!   again changes nothing (see [`crate::views`]). Idempotency records are reserved before
//!   the commit and count only once it exists (see [`crate::idempotency`]).
//!
//! The limits of this design: event ids other than an append's first are checked by a
//! read before the insert, not by an index, so two appends racing with the same non-first
//! event id could both be stored (ids are random UUIDs; only a caller that reuses ids
//! could do that); and between an append's commit and its view changes, a reader of the
//! views (another process) can see the views one append behind.
//!
//! # Durability
//!
//! Writes use write concern `majority` with the journal (`j: true`) unless the URL sets
//! another, so an acknowledged append is on disk on a majority of the replica set.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factum_core::store::{AppendRequest, Snapshot, StoredEvent, rules};
use factum_core::{IdempotencyRecord, ViewStore};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};

use crate::append::Writer;
use crate::codec::{commit_events, get_doc, pair_id, snapshot_doc, snapshot_of, to_i64};
use crate::error::{Error, Result, mongo_error};
use crate::idempotency;
use crate::schema::Collections;
use crate::view_records::apply_change;

type CoreResult<T> = factum_core::Result<T>;

/// How many times `read_all` reads again when the first position after the checkpoint is
/// not in its answer yet (see the module docs).
const READ_AGAIN: usize = 50;

/// An [`EventStore`](factum_core::EventStore) and [`ViewStore`] on one MongoDB database,
/// shared safely by many service nodes. See the [module docs](self).
///
/// Cloning is cheap and shares the client.
#[derive(Debug, Clone)]
pub struct MongoEventStore {
    writer: Arc<Writer>,
    client: mongodb::Client,
    database: String,
}

/// Checks a database name: 1 to 63 characters of `[A-Za-z0-9_-]`.
pub fn validate_database_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        Ok(())
    } else {
        Err(Error::InvalidUrl(format!(
            "database name {name:?} is not 1 to 63 characters of [A-Za-z0-9_-]"
        )))
    }
}

impl MongoEventStore {
    /// Connects to `url` (`mongodb://HOST:PORT/DB`, with any of the driver's options), creates
    /// the indexes, checks the schema version, and applies the view changes a writer left
    /// unapplied.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut options = ClientOptions::parse(url).await?;
        let database = options.default_database.clone().ok_or_else(|| {
            Error::InvalidUrl("the URL names no database: use mongodb://HOST:PORT/DB".to_owned())
        })?;
        validate_database_name(&database)?;
        if options.write_concern.is_none() {
            options.write_concern = Some(
                WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .build(),
            );
        }
        let client = mongodb::Client::with_options(options)?;
        let cols = Collections::new(&client.database(&database));
        cols.prepare(&database).await?;
        let writer = Arc::new(Writer::new(cols));
        writer
            .roll_forward()
            .await
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        Ok(Self {
            writer,
            client,
            database,
        })
    }

    /// The database holding the collections.
    pub fn database(&self) -> mongodb::Database {
        self.client.database(&self.database)
    }

    pub(crate) fn collections(&self) -> &Collections {
        &self.writer.cols
    }

    /// An append of no events: its expectation, snapshot and view changes alone.
    async fn append_nothing(&self, request: AppendRequest) -> CoreResult<Vec<StoredEvent>> {
        let current = self
            .writer
            .stream_head(&request.aggregate_type, &request.aggregate_id)
            .await?;
        rules::check_expected(&request, current)?;
        rules::check_snapshot_version(&request, current)?;
        if let Some(record) = request.idempotency.clone() {
            let holder = idempotency::remember(self.collections(), record.clone()).await?;
            if holder != record {
                return Err(rules::key_taken(&record));
            }
        }
        if let Some(snapshot) = request.snapshot {
            factum_core::EventStore::save_snapshot(self, snapshot).await?;
        }
        let position = to_i64(
            factum_core::EventStore::head_position(self).await?,
            "a position",
        )?;
        for change in &request.view_changes {
            apply_change(&self.collections().views, change, position).await?;
        }
        Ok(Vec::new())
    }
}

#[async_trait]
impl factum_core::EventStore for MongoEventStore {
    async fn append(&self, request: AppendRequest) -> CoreResult<Vec<StoredEvent>> {
        rules::validate(&request)?;
        if request.events.is_empty() {
            return self.append_nothing(request).await;
        }
        if let Some(resolved) = self.writer.stored_ids(&request).await? {
            return resolved;
        }
        let Some(record) = &request.idempotency else {
            return self.writer.append(&request, None).await;
        };
        let token = idempotency::reserve(self.collections(), record).await?;
        let result = self.writer.append(&request, Some(&token)).await;
        // A retry that found its own events stored by another try holds no commit of ours.
        let committed = result.is_ok();
        idempotency::settle(self.collections(), record, &token, committed).await?;
        result
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> CoreResult<Vec<StoredEvent>> {
        self.writer
            .read_stream(aggregate_type, aggregate_id, from_version, limit)
            .await
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> CoreResult<Vec<StoredEvent>> {
        let Ok(after) = i64::try_from(after_position) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let docs = i64::try_from(limit).unwrap_or(i64::MAX);
        for _ in 0..READ_AGAIN {
            let commits: Vec<Document> = self
                .collections()
                .commits
                .find(doc! {"last": {"$gt": after}})
                .sort(doc! {"last": 1})
                .limit(docs)
                .projection(doc! {"views": 0, "snap": 0})
                .await
                .map_err(mongo_error)?
                .try_collect()
                .await
                .map_err(mongo_error)?;
            if commits.is_empty() {
                return Ok(Vec::new());
            }
            // Only the run of positions after + 1, after + 2, ... with no hole.
            let mut events = Vec::new();
            let mut next = after_position + 1;
            'commits: for commit in &commits {
                for event in commit_events(commit)? {
                    if event.position < next {
                        continue;
                    }
                    if event.position != next || events.len() == limit {
                        break 'commits;
                    }
                    next += 1;
                    events.push(event);
                }
            }
            if !events.is_empty() {
                return Ok(events);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Err(factum_core::Error::Unavailable(format!(
            "position {} is not readable yet",
            after_position + 1
        )))
    }

    async fn stream_version(&self, aggregate_type: &str, aggregate_id: &str) -> CoreResult<u64> {
        self.writer.stream_head(aggregate_type, aggregate_id).await
    }

    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> CoreResult<Option<Snapshot>> {
        let cols = self.collections();
        let in_commit = cols
            .commits
            .find_one(doc! {"t": aggregate_type, "a": aggregate_id, "snap": {"$exists": true}})
            .sort(doc! {"base": -1})
            .projection(doc! {"snap": 1})
            .await
            .map_err(mongo_error)?;
        let saved = cols
            .snapshots
            .find_one(doc! {"_id": pair_id(aggregate_type, aggregate_id)})
            .await
            .map_err(mongo_error)?;
        let mut best: Option<Snapshot> = None;
        if let Some(commit) = &in_commit {
            best = Some(snapshot_of(
                aggregate_type,
                aggregate_id,
                get_doc(commit, "snap")?,
            )?);
        }
        if let Some(saved) = &saved {
            let saved = snapshot_of(aggregate_type, aggregate_id, saved)?;
            if best
                .as_ref()
                .is_none_or(|best| best.version < saved.version)
            {
                best = Some(saved);
            }
        }
        Ok(best)
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> CoreResult<()> {
        let id = pair_id(&snapshot.aggregate_type, &snapshot.aggregate_id);
        let version = to_i64(snapshot.version, "a snapshot version")?;
        let result = self
            .collections()
            .snapshots
            .update_one(
                doc! {"_id": &id, "v": {"$lte": version}},
                doc! {"$set": snapshot_doc(&snapshot)?},
            )
            .upsert(true)
            .await;
        match result {
            Ok(_) => Ok(()),
            // A newer snapshot is stored: it stays.
            Err(error) if crate::error::is_duplicate_key(&error) => Ok(()),
            Err(error) => Err(mongo_error(error)),
        }
    }

    async fn head_position(&self) -> CoreResult<u64> {
        let tail = self.writer.read_tail().await?;
        u64::try_from(tail.last).map_err(|_| crate::error::corrupt("a negative position"))
    }

    async fn find_idempotency(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> CoreResult<Option<IdempotencyRecord>> {
        idempotency::find(self.collections(), scope, key, now).await
    }

    async fn remember_idempotency(
        &self,
        record: IdempotencyRecord,
    ) -> CoreResult<IdempotencyRecord> {
        idempotency::remember(self.collections(), record).await
    }

    async fn purge_idempotency(&self, now: DateTime<Utc>) -> CoreResult<u64> {
        idempotency::purge(self.collections(), now).await
    }

    async fn health_check(&self) -> CoreResult<()> {
        self.database()
            .run_command(doc! {"ping": 1})
            .await
            .map_err(mongo_error)?;
        Ok(())
    }

    fn as_view_store(&self) -> Option<&dyn ViewStore> {
        Some(self)
    }

    fn into_view_store(self: Arc<Self>) -> Option<Arc<dyn ViewStore>> {
        Some(self)
    }
}
