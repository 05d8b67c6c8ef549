//! What an aggregate declares to be served over HTTP: [`HttpAggregate`].
//!
//! Everything else is read from the domain's own types: the command names from the command
//! enums' serde tags ([`Commands`]), the body, event and state schemas from their `ToSchema`
//! derives (behind the domain crate's `openapi` feature). No type is written twice.

use factum_core::{AccessPolicy, CommandHandler, Commands};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// An aggregate served over HTTP: its collection path and what a client sees of its state.
///
/// Its command enums are internally tagged serde enums that derive
/// [`Commands`](factum_core::Commands) and `ToSchema`; its event enum derives `ToSchema`. The
/// routes accept exactly the names of the command enums, and the OpenAPI document gives each
/// command the schema of its variant (closed when the enum has `deny_unknown_fields`).
pub trait HttpAggregate:
    CommandHandler<
        CreateCommand: Commands + DeserializeOwned + ToSchema,
        UpdateCommand: Commands + DeserializeOwned + ToSchema,
        Event: ToSchema,
    >
{
    /// The collection's path segment, plural: `accounts` gives `/accounts/{id}`.
    const PATH: &'static str;
    /// What a client sees of the state: often the state itself (`type View = Self`).
    type View: Serialize + ToSchema + Send + 'static;

    /// The client's view of the state.
    fn view(&self) -> Self::View;

    /// Which roles each command and read needs, and the rule over the caller and the state
    /// (see [`AccessPolicy`]). Every route of the aggregate checks it: a refusal is a 403
    /// and stores nothing. Checked for authenticated callers only. The default lets every
    /// authenticated caller do anything.
    fn access_policy() -> AccessPolicy<Self> {
        AccessPolicy::new()
    }
}

/// `{prefix}/{A::PATH}` with one leading slash and no trailing one.
pub(crate) fn collection_path<A: HttpAggregate>(prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() || prefix.starts_with('/') {
        prefix.to_owned()
    } else {
        format!("/{prefix}")
    };
    format!("{prefix}/{}", A::PATH.trim_matches('/'))
}
