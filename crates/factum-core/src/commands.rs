//! The names of an aggregate's commands, as their serde tags say them.

/// An internally tagged command enum (`#[serde(tag = "type")]`): which field carries the
/// command's name, every name it accepts, and the name of a value.
///
/// Derive it (`#[derive(Commands)]`) rather than write it: the derive reads the names from
/// the serde attributes (a variant's `rename`, the enum's `rename_all`, the `tag` field), so
/// the names a client sends are written once, by serde. The HTTP layer uses it to route a
/// body to its command and to document every command; access policies see [`name`](Self::name).
///
/// ```
/// use factum_core::Commands;
/// use serde::Deserialize;
///
/// #[derive(Commands, Deserialize)]
/// #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
/// enum DoorCommand {
///     OpenDoor { by: String },
///     #[serde(rename = "shut")]
///     CloseDoor,
/// }
///
/// assert_eq!(DoorCommand::TAG, "kind");
/// assert_eq!(DoorCommand::NAMES, ["open_door", "shut"]);
/// assert!(DoorCommand::DENY_UNKNOWN_FIELDS);
/// assert_eq!(DoorCommand::CloseDoor.name(), "shut");
/// let open: DoorCommand = serde_json::from_str(r#"{"kind": "open_door", "by": "ann"}"#).unwrap();
/// assert_eq!(open.name(), "open_door");
/// ```
pub trait Commands {
    /// The field of a command's JSON that holds its name (serde's `tag`).
    const TAG: &'static str;
    /// Every command name, in the order of the variants.
    const NAMES: &'static [&'static str];
    /// Whether a command's JSON may hold only its declared fields (serde's
    /// `deny_unknown_fields` on the enum): an HTTP layer documents and enforces it.
    const DENY_UNKNOWN_FIELDS: bool;

    /// This command's name: one of [`NAMES`](Self::NAMES).
    fn name(&self) -> &'static str;
}
