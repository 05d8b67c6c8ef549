//! The collections, their indexes and the recorded schema version.
//!
//! Opening a store creates the indexes (`createIndexes` is idempotent: an index that exists
//! with the same keys and options is left alone) and records the schema version in the
//! `factum_meta` collection; a database at a newer version is refused, as the SQL stores
//! refuse a newer migration.

use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use crate::error::{Error, Result, is_duplicate_key};

/// The schema version this release writes.
pub const SCHEMA_VERSION: i64 = 1;

/// The collections of one store.
#[derive(Debug, Clone)]
pub(crate) struct Collections {
    /// One document per append: its events, snapshot, view changes (see [`crate::store`]).
    pub commits: Collection<Document>,
    /// Snapshots saved outside an append.
    pub snapshots: Collection<Document>,
    /// View records and their deletion markers.
    pub views: Collection<Document>,
    /// Projection checkpoints, each with the batch it is applying.
    pub checkpoints: Collection<Document>,
    /// Events projections parked.
    pub parked: Collection<Document>,
    /// Idempotency records.
    pub idempotency: Collection<Document>,
    meta: Collection<Document>,
}

impl Collections {
    pub fn new(db: &Database) -> Self {
        Self {
            commits: db.collection("factum_commits"),
            snapshots: db.collection("factum_snapshots"),
            views: db.collection("factum_views"),
            checkpoints: db.collection("factum_checkpoints"),
            parked: db.collection("factum_parked"),
            idempotency: db.collection("factum_idempotency"),
            meta: db.collection("factum_meta"),
        }
    }

    /// Creates the indexes and records (or checks) the schema version.
    pub async fn prepare(&self, database: &str) -> Result<()> {
        let index = |keys: Document, name: &str, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(unique)
                        .build(),
                )
                .build()
        };
        // A stream's commits: one per base version (the stream's version before it).
        self.commits
            .create_index(index(doc! {"t": 1, "a": 1, "base": 1}, "stream_base", true))
            .await?;
        // A retry is recognised by its first event id.
        self.commits
            .create_index(index(doc! {"first_id": 1}, "first_event", true))
            .await?;
        self.commits
            .create_index(index(doc! {"last": 1}, "last_position", true))
            .await?;
        self.commits
            .create_index(index(doc! {"ids": 1}, "event_ids", false))
            .await?;
        self.views
            .create_index(index(doc! {"vt": 1, "agg": 1}, "views_of", false))
            .await?;
        self.parked
            .create_index(index(
                doc! {"projection": 1, "position": 1},
                "parked_of",
                false,
            ))
            .await?;
        self.check_version(database).await
    }

    async fn check_version(&self, database: &str) -> Result<()> {
        let inserted = self
            .meta
            .insert_one(doc! {"_id": "schema", "version": SCHEMA_VERSION})
            .await;
        match inserted {
            Ok(_) => return Ok(()),
            Err(error) if is_duplicate_key(&error) => {}
            Err(error) => return Err(error.into()),
        }
        let stored = self
            .meta
            .find_one(doc! {"_id": "schema"})
            .await?
            .ok_or_else(|| Error::Corrupt("the schema version vanished".to_owned()))?;
        let found = stored
            .get_i64("version")
            .or_else(|_| stored.get_i32("version").map(i64::from))
            .map_err(|_| Error::Corrupt("the schema version is not a number".to_owned()))?;
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                database: database.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        Ok(())
    }
}
