//! Where view records live: the [`ViewStore`] trait a backend implements.

use async_trait::async_trait;

use crate::error::Result;
use crate::parked::ParkedEvent;

use super::model::{ProjectionBatch, ProjectionCheckpoint, ViewField, ViewRecord};
use super::query::{Page, ViewQuery};

/// Where view records and projection checkpoints live. Stores that hold events usually hold
/// views too, so inline views commit with their events.
#[async_trait]
pub trait ViewStore: Send + Sync + 'static {
    /// One record.
    async fn get_view(&self, view_type: &str, view_id: &str) -> Result<Option<ViewRecord>>;

    /// The records of one aggregate, by id.
    async fn list_views_of(&self, view_type: &str, aggregate_id: &str) -> Result<Vec<ViewRecord>>;

    /// The records matching a validated query. `fields` are the view's declared fields; a
    /// store only ever puts those names in SQL.
    async fn query_views(
        &self,
        view_type: &str,
        query: &ViewQuery,
        fields: &[ViewField],
    ) -> Result<Page<ViewRecord>>;

    /// Applies a projection batch and moves its checkpoint, atomically.
    async fn apply_projection(&self, batch: ProjectionBatch) -> Result<()>;

    /// A projection's checkpoint (position 0, generation 0 when it has none).
    async fn projection_checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint>;

    /// Deletes every record of these view types and the projection's parked events, puts its
    /// position back to 0 and increments its generation, atomically: the start of a rebuild.
    async fn reset_projection(&self, projection: &str, view_types: &[&str]) -> Result<()>;

    /// Records `parked` and moves its projection's checkpoint to `parked.position`,
    /// atomically; refused with [`Error::Conflict`] unless the stored checkpoint is
    /// `expected` (as [`ViewStore::apply_projection`]). Parking a position again replaces
    /// the entry.
    async fn park_event(&self, expected: ProjectionCheckpoint, parked: ParkedEvent) -> Result<()>;

    /// The events a projection has parked, by position.
    async fn parked_events(&self, projection: &str) -> Result<Vec<ParkedEvent>>;

    /// Forgets the event a projection parked at `position` (it was replayed); returns
    /// whether it was parked. Two callers racing on one entry see `true` once.
    async fn unpark_event(&self, projection: &str, position: u64) -> Result<bool>;
}
