//! The append: one commit document per append, numbered densely, checked by unique indexes.
//!
//! See the [store module](crate::store) for why this is sound.

use std::sync::Mutex;

use factum_core::store::{AppendRequest, StoredEvent, rules};
use factum_core::{Error, Result};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use crate::codec::{commit_events, event_doc, get_u64, snapshot_doc, to_i64};
use crate::error::{is_duplicate_key, mongo_error};
use crate::schema::Collections;
use crate::view_records::{apply_change, change_doc, change_of};

/// How many times an append tries again after losing a race for a commit number before it
/// gives up (each lost race means another append went through, so this only bounds a
/// pathological storm).
const MAX_ATTEMPTS: usize = 10_000;

/// The newest commit this handle knows of: its number and the position of its last event.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tail {
    pub seq: i64,
    pub last: i64,
}

/// The writer's state: the collections and the tail it last saw.
#[derive(Debug)]
pub(crate) struct Writer {
    pub cols: Collections,
    tail: Mutex<Option<Tail>>,
}

impl Writer {
    pub fn new(cols: Collections) -> Self {
        Self {
            cols,
            tail: Mutex::new(None),
        }
    }

    fn known_tail(&self) -> Option<Tail> {
        *self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn advance(&self, tail: Tail) {
        let mut known = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.is_none_or(|known| known.seq < tail.seq) {
            *known = Some(tail);
        }
    }

    /// The newest stored commit, read from the database.
    pub async fn read_tail(&self) -> Result<Tail> {
        let newest = self
            .cols
            .commits
            .find_one(doc! {})
            // By position, not `_id`: the same order, and some wire-compatible servers
            // (nx-27017) sort integer `_id`s as text.
            .sort(doc! {"last": -1})
            .projection(doc! {"_id": 1, "last": 1})
            .await
            .map_err(mongo_error)?;
        let tail = match newest {
            None => Tail::default(),
            Some(commit) => Tail {
                seq: to_i64(get_u64(&commit, "_id")?, "a commit number")?,
                last: to_i64(get_u64(&commit, "last")?, "a position")?,
            },
        };
        self.advance(tail);
        Ok(tail)
    }

    /// The current version of a stream: the last version of its newest commit.
    pub async fn stream_head(&self, aggregate_type: &str, aggregate_id: &str) -> Result<u64> {
        let newest = self
            .cols
            .commits
            .find_one(doc! {"t": aggregate_type, "a": aggregate_id})
            .sort(doc! {"base": -1})
            .projection(doc! {"lv": 1})
            .await
            .map_err(mongo_error)?;
        newest.map_or(Ok(0), |commit| get_u64(&commit, "lv"))
    }

    /// The events of a stream from `from_version`, at most `limit`.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        from_version: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        let Ok(from) = i64::try_from(from_version) else {
            return Ok(Vec::new());
        };
        let limit = limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut find = self
            .cols
            .commits
            .find(doc! {"t": aggregate_type, "a": aggregate_id, "lv": {"$gte": from}})
            .sort(doc! {"base": 1});
        // Every commit holds at least one event.
        if let Ok(docs) = i64::try_from(limit) {
            find = find.limit(docs);
        }
        let commits: Vec<Document> = find
            .await
            .map_err(mongo_error)?
            .try_collect()
            .await
            .map_err(mongo_error)?;
        let mut events = Vec::new();
        for commit in &commits {
            events.extend(
                commit_events(commit)?
                    .into_iter()
                    .filter(|e| e.version >= from_version),
            );
        }
        events.truncate(limit);
        Ok(events)
    }

    /// Appends a request with at least one event (validated by the caller).
    pub async fn append(
        &self,
        request: &AppendRequest,
        token: Option<&str>,
    ) -> Result<Vec<StoredEvent>> {
        let mut current = self
            .stream_head(&request.aggregate_type, &request.aggregate_id)
            .await?;
        let mut tail = match self.known_tail() {
            Some(tail) => tail,
            None => self.read_tail().await?,
        };
        for _ in 0..MAX_ATTEMPTS {
            rules::check_expected(request, current)?;
            rules::check_snapshot_version(request, current)?;
            let commit = commit_doc(request, current, tail, token)?;
            match self.cols.commits.insert_one(&commit).await {
                Ok(_) => {
                    let stored = commit_events(&commit)?;
                    let last = to_i64(stored.last().map_or(0, |e| e.position), "a position")?;
                    self.advance(Tail {
                        seq: tail.seq + 1,
                        last,
                    });
                    if !request.view_changes.is_empty() {
                        self.finish_views(&commit).await?;
                    }
                    return Ok(stored);
                }
                Err(error) if is_duplicate_key(&error) => {
                    // Which unique index refused it is found by reading, never by the
                    // error's text: our ids, the stream's version, or the commit number.
                    if let Some(resolved) = self.stored_ids(request).await? {
                        return resolved;
                    }
                    let now = self
                        .stream_head(&request.aggregate_type, &request.aggregate_id)
                        .await?;
                    if now != current {
                        current = now;
                    } else {
                        tail = self.read_tail().await?;
                    }
                }
                Err(error) => return Err(mongo_error(error)),
            }
        }
        Err(Error::Unavailable(format!(
            "the append to {} '{}' lost {MAX_ATTEMPTS} races for a commit number",
            request.aggregate_type, request.aggregate_id
        )))
    }

    /// Applies a stored commit's view changes and clears its pending mark. Guarded by the
    /// commit's position, so applying a commit again (a roll-forward) changes nothing.
    pub async fn finish_views(&self, commit: &Document) -> Result<()> {
        let position = to_i64(get_u64(commit, "last")?, "a position")?;
        if let Ok(changes) = commit.get_array("views") {
            for change in changes {
                let change = change
                    .as_document()
                    .ok_or_else(|| crate::error::corrupt("a view change is not a document"))?;
                apply_change(&self.cols.views, &change_of(change)?, position).await?;
            }
        }
        self.cols
            .commits
            .update_one(doc! {"_id": commit.get("_id")}, doc! {"$unset": {"vp": ""}})
            .await
            .map_err(mongo_error)?;
        Ok(())
    }

    /// Applies the view changes of every commit whose writer stopped before it had (a crash
    /// between the commit and its views).
    pub async fn roll_forward(&self) -> Result<()> {
        let pending: Vec<Document> = self
            .cols
            .commits
            .find(doc! {"vp": true})
            .sort(doc! {"last": 1})
            .await
            .map_err(mongo_error)?
            .try_collect()
            .await
            .map_err(mongo_error)?;
        for commit in &pending {
            self.finish_views(commit).await?;
        }
        Ok(())
    }

    /// When some of the request's event ids are stored: `Some(Ok(events))` for a retry of
    /// an append that went through, `Some(Err(conflict))` otherwise; `None` when none is.
    pub async fn stored_ids(
        &self,
        request: &AppendRequest,
    ) -> Result<Option<Result<Vec<StoredEvent>>>> {
        let ids: Vec<Bson> = request
            .events
            .iter()
            .map(|event| Bson::String(event.event_id.to_string()))
            .collect();
        let holders: Vec<Document> = self
            .cols
            .commits
            .find(doc! {"ids": {"$in": ids}})
            .await
            .map_err(mongo_error)?
            .try_collect()
            .await
            .map_err(mongo_error)?;
        if holders.is_empty() {
            return Ok(None);
        }
        let current = self
            .stream_head(&request.aggregate_type, &request.aggregate_id)
            .await?;
        let conflict = || Ok(Some(Err(rules::conflict(request, Some(current)))));
        let Some(first) = request.events.first() else {
            return conflict();
        };
        let first_id = first.event_id.to_string();
        let mut first_version = None;
        for holder in &holders {
            let same_stream = holder.get_str("t").ok() == Some(request.aggregate_type.as_str())
                && holder.get_str("a").ok() == Some(request.aggregate_id.as_str());
            for event in holder
                .get_array("events")
                .map_err(|_| crate::error::corrupt("a commit without events"))?
            {
                let Some(event) = event.as_document() else {
                    continue;
                };
                if event.get_str("id").ok() == Some(first_id.as_str()) && same_stream {
                    first_version = Some(get_u64(event, "v")?);
                }
            }
        }
        let Some(version) = first_version else {
            return conflict();
        };
        let stored = self
            .read_stream(
                &request.aggregate_type,
                &request.aggregate_id,
                version,
                Some(request.events.len()),
            )
            .await?;
        match rules::retry_of(request, stored) {
            Some(events) => Ok(Some(Ok(events))),
            None => conflict(),
        }
    }
}

/// The commit document of `request` on a stream at `current`, after the commit `tail`.
fn commit_doc(
    request: &AppendRequest,
    current: u64,
    tail: Tail,
    token: Option<&str>,
) -> Result<Document> {
    let count = request.events.len() as u64;
    let base = to_i64(current, "a version")?;
    let first = tail.last + 1;
    let events: Vec<Document> = request
        .events
        .iter()
        .zip(0..)
        .map(|(event, offset)| event_doc(event, base + 1 + offset, first + offset))
        .collect();
    let ids: Vec<String> = request
        .events
        .iter()
        .map(|e| e.event_id.to_string())
        .collect();
    let mut commit = doc! {
        "_id": tail.seq + 1,
        "t": &request.aggregate_type,
        "a": &request.aggregate_id,
        "base": base,
        "lv": to_i64(current + count, "a version")?,
        "first": first,
        "last": first + to_i64(count, "an event count")? - 1,
        "first_id": ids.first().cloned().unwrap_or_default(),
        "ids": ids,
        "events": events,
    };
    if let Some(snapshot) = &request.snapshot {
        commit.insert("snap", snapshot_doc(snapshot)?);
    }
    if !request.view_changes.is_empty() {
        let changes: Vec<Document> = request
            .view_changes
            .iter()
            .map(change_doc)
            .collect::<Result<_>>()?;
        commit.insert("views", changes);
        commit.insert("vp", true);
    }
    if let Some(token) = token {
        commit.insert("it", token);
    }
    Ok(commit)
}
