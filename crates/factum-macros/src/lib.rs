//! # factum-macros
//!
//! Derive macros for Factum domains, re-exported by `factum-core` and `factum`: `Event` and
//! `Commands`.
//!
//! `#[derive(Event)]` implements `Event` from what the type already says to serde, so an
//! event's stored name is written once:
//! - `event_type()` of an enum variant is the name serde writes for it: the variant's
//!   `#[serde(rename = "...")]`, else the variant name under the enum's
//!   `#[serde(rename_all = "...")]`, else the variant name. A struct's is its
//!   `#[serde(rename = "...")]` or its name. `#[event(name = "...")]` overrides either.
//! - `schema_version()` is `#[event(version = N)]` of the variant, else of the type, else 1.
//!
//! Two variants with one name, a version of 0 or an unknown `event(...)` key are compile
//! errors, so a typo cannot silently change what is stored.
//!
//! ```
//! use factum_core::Event;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Event, Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "type", rename_all = "snake_case")]
//! enum DoorEvent {
//!     Installed,
//!     #[event(version = 2)]
//!     Opened { by: String },
//!     #[serde(rename = "shut")]
//!     Closed,
//!     #[event(name = "door.painted")]
//!     Painted { colour: String },
//! }
//!
//! assert_eq!(DoorEvent::Installed.event_type(), "installed");
//! assert_eq!(DoorEvent::Opened { by: "ann".into() }.event_type(), "opened");
//! assert_eq!(DoorEvent::Opened { by: "ann".into() }.schema_version(), 2);
//! assert_eq!(DoorEvent::Closed.event_type(), "shut");
//! assert_eq!(DoorEvent::Painted { colour: "red".into() }.event_type(), "door.painted");
//! assert_eq!(DoorEvent::Installed.schema_version(), 1);
//! ```

//!
//! `#[derive(Commands)]` implements `Commands` for an internally tagged command enum: the
//! names clients send are the names serde reads, written once.
//! - `TAG` is the enum's `#[serde(tag = "...")]`; an enum without one (untagged, externally
//!   or adjacently tagged) is a compile error, since a command's JSON must be one object.
//! - `NAMES` and `name()` are each variant's `#[serde(rename = "...")]` (its `deserialize`
//!   half), else the variant name under `#[serde(rename_all = "...")]`.
//! - `DENY_UNKNOWN_FIELDS` is whether the enum has `#[serde(deny_unknown_fields)]`.
//!
//! ```
//! use factum_core::Commands;
//! use serde::Deserialize;
//!
//! #[derive(Commands, Deserialize)]
//! #[serde(tag = "type", deny_unknown_fields)]
//! enum AccountCommand {
//!     Deposit { amount: u64 },
//!     #[serde(rename = "take")]
//!     Withdraw { amount: u64 },
//!     Freeze,
//! }
//!
//! assert_eq!(AccountCommand::TAG, "type");
//! assert_eq!(AccountCommand::NAMES, ["Deposit", "take", "Freeze"]);
//! assert_eq!(AccountCommand::Withdraw { amount: 1 }.name(), "take");
//! ```
//!
//! Not internally tagged, so not commands:
//!
//! ```compile_fail
//! #[derive(factum_core::Commands, serde::Deserialize)]
//! enum Untagged { Deposit { amount: u64 } }
//! ```
//!
//! ```compile_fail
//! #[derive(factum_core::Commands, serde::Deserialize)]
//! #[serde(tag = "type", content = "body")]
//! enum Adjacent { Deposit { amount: u64 } }
//! ```
//!
//! Two variants read under one name:
//!
//! ```compile_fail
//! #[derive(factum_core::Commands, serde::Deserialize)]
//! #[serde(tag = "type", rename_all = "lowercase")]
//! enum Twice { Deposit, #[serde(rename = "deposit")] Pay }
//! ```

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod commands;
mod event;
mod serde_attrs;

/// Implements `Event` from the type's serde names; see the crate docs.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand_event(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `Commands` from an internally tagged enum's serde names; see the crate docs.
#[proc_macro_derive(Commands)]
pub fn derive_commands(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    commands::expand_commands(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
