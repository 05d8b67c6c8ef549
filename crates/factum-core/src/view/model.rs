//! What a view is: the [`View`] trait, its declared fields, its stored records and the
//! changes and checkpoints a projection writes.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::envelope::EventEnvelope;
use crate::error::{Error, Result};

/// How a view's records relate to aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewKind {
    /// One record per aggregate, with the aggregate's id.
    PerAggregate,
    /// Many records per aggregate (by default one per event, with id `{aggregate}-{version}`),
    /// listed as the aggregate's children.
    ChildOfAggregate,
}

/// The type of a queryable field, which decides the operators it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldKind {
    /// A string: every operator; `contains` is a case-sensitive substring match.
    Text,
    /// A number (integer or decimal): every operator but `contains`.
    Number,
    /// A boolean: `eq`, `ne`, `in`.
    Boolean,
}

/// A top-level field of a view's JSON record that queries may filter or sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewField {
    /// The field's name in the record's JSON.
    pub name: &'static str,
    /// Its type.
    pub kind: FieldKind,
    /// Whether queries may filter on it.
    pub filterable: bool,
    /// Whether queries may sort on it.
    pub sortable: bool,
}

impl ViewField {
    /// A field that can be filtered and sorted.
    pub const fn new(name: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            kind,
            filterable: true,
            sortable: true,
        }
    }
}

/// A read model built from one aggregate type's events.
pub trait View:
    Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Default + Send + Sync + 'static
{
    /// The stable name of the view (`accounts`, `movements`).
    const TYPE: &'static str;
    /// How records relate to aggregates.
    const KIND: ViewKind;
    /// The aggregate whose events build the view.
    type Aggregate: Aggregate;

    /// The fields queries may filter and sort on.
    fn fields() -> &'static [ViewField] {
        &[]
    }

    /// The id of the record an event concerns: the aggregate id for a per-aggregate view,
    /// `{aggregate}-{version}` for a child view, unless overridden.
    fn view_id(envelope: &EventEnvelope<<Self::Aggregate as Aggregate>::Event>) -> String {
        match Self::KIND {
            ViewKind::PerAggregate => envelope.aggregate_id.clone(),
            ViewKind::ChildOfAggregate => format!("{}-{}", envelope.aggregate_id, envelope.version),
        }
    }

    /// The record after this event, or `None` if the event does not concern the view. `self`
    /// is the current record, or `Default::default()` when there is none yet.
    fn update(
        &self,
        envelope: &EventEnvelope<<Self::Aggregate as Aggregate>::Event>,
    ) -> Option<Self>;

    /// Whether this record is to be deleted rather than stored (a removed to-do).
    fn is_deleted(&self) -> bool {
        false
    }
}

/// A stored view record, serialized.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRecord {
    /// The view's type name.
    pub view_type: String,
    /// The record's id.
    pub view_id: String,
    /// The aggregate the record belongs to.
    pub aggregate_id: String,
    /// The aggregate version of the last event applied to it.
    pub version: u64,
    /// The record as JSON text.
    pub data: String,
}

impl ViewRecord {
    /// Deserializes the record.
    pub fn decode<V: View>(&self) -> Result<V> {
        crate::json::from_str(&self.data).map_err(|e| {
            Error::serialization(
                format!("{} view record {}", self.view_type, self.view_id),
                e,
            )
        })
    }
}

/// A change to one view record.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewChange {
    /// Insert or replace the record.
    Upsert(ViewRecord),
    /// Delete the record, if it exists.
    Delete {
        /// The view's type name.
        view_type: String,
        /// The record's id.
        view_id: String,
    },
}

/// Where a projection stands: the position of the last event applied, and how many times it
/// has been reset for a rebuild.
///
/// The generation is what makes a rebuild safe while runners work: a runner that read its
/// checkpoint before a reset carries the old generation, so its batch is refused even if the
/// rebuild has meanwhile reached the very same position (with records the runner never saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProjectionCheckpoint {
    /// The position of the last event applied (0 for none).
    pub position: u64,
    /// How many times the projection has been reset.
    pub generation: u64,
}

impl ProjectionCheckpoint {
    /// A checkpoint at `position` in generation 0 (a projection never reset).
    pub const fn at(position: u64) -> Self {
        Self {
            position,
            generation: 0,
        }
    }

    /// Checks that `current`, the stored checkpoint of `projection`, is this one, the
    /// checkpoint a batch expects; if not, the batch is refused with
    /// [`ProjectionCheckpoint::moved`].
    pub fn expect(self, projection: &str, current: Self) -> Result<()> {
        if current == self {
            Ok(())
        } else {
            Err(Self::moved(projection, self.position, current.position))
        }
    }

    /// What every store answers when a projection's batch expected its checkpoint at
    /// `expected` and found it at `actual` (another runner moved it, or a rebuild reset it).
    pub fn moved(projection: impl Into<String>, expected: u64, actual: u64) -> Error {
        Error::Conflict {
            aggregate_type: "projection".to_owned(),
            aggregate_id: projection.into(),
            expected: crate::ExpectedVersion::Exact(expected),
            actual: Some(actual),
        }
    }
}

/// A batch of an asynchronous projection: record changes plus the checkpoint they reach,
/// committed together.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionBatch {
    /// The projection's name.
    pub projection: String,
    /// The checkpoint the projection was at when it read the events: the store refuses the
    /// batch with a [`Error::Conflict`] unless its stored checkpoint (position and generation)
    /// is exactly this (another runner moved it, or a rebuild reset it).
    pub expected: ProjectionCheckpoint,
    /// The position of the last event the batch covers.
    pub checkpoint: u64,
    /// The record changes, in order.
    pub changes: Vec<ViewChange>,
}
