//! The schemas of the aggregate routes' bodies. The bodies are generic over the aggregate's
//! types, so their schemas are written here, named after the type they wrap
//! (`AccountResponse`, `AccountView`, `AccountEventEnvelope`, `AccountEventPage`,
//! `AccountEventHistory`).

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::bodies::{EnvelopeBody, EventPage, History, StateBody, VersionedState};

pub(crate) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        Type::String,
        Type::Null,
    ]))
}

pub(crate) fn version() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
}

fn state_body_schema(view: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some("An aggregate's id, state and version"))
        .property("id", string())
        .property("state", Ref::from_schema_name(view))
        .property("version", version())
        .required("id")
        .required("state")
        .required("version")
        .into()
}

fn envelope_schema(event: &str) -> RefOr<Schema> {
    let known = |format| string().format(Some(SchemaFormat::KnownFormat(format)));
    let position = version().description(Some("Store-wide position, in commit order"));
    // Each property, and whether it is required (the metadata's are null when unknown).
    let properties: [(&str, RefOr<Schema>, bool); 13] = [
        ("event_id", known(KnownFormat::Uuid).into(), true),
        ("aggregate_type", string().into(), true),
        ("aggregate_id", string().into(), true),
        ("version", version().into(), true),
        ("position", position.into(), true),
        ("event_type", string().into(), true),
        ("recorded_at", known(KnownFormat::DateTime).into(), true),
        ("user_id", nullable_string().into(), false),
        ("request_id", nullable_string().into(), false),
        ("correlation_id", nullable_string().into(), false),
        ("causation_id", nullable_string().into(), false),
        (
            "metadata",
            ObjectBuilder::new().schema_type(Type::Object).into(),
            false,
        ),
        ("payload", Ref::from_schema_name(event).into(), true),
    ];
    let mut object = ObjectBuilder::new().description(Some("A stored event with its metadata"));
    for (name, schema, required) in properties {
        object = object.property(name, schema);
        if required {
            object = object.required(name);
        }
    }
    object.into()
}

/// An object with one page of `item`s in its property `list`; the caller adds the rest.
pub(crate) fn page_of(description: &str, list: &str, item: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .description(Some(description))
        .property(list, ArrayBuilder::new().items(Ref::from_schema_name(item)))
        .required(list)
}

fn page_schema(envelope: &str) -> RefOr<Schema> {
    page_of("One page of an aggregate's events", "events", envelope)
        .property(
            "next_from_version",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::Integer,
                    Type::Null,
                ]))
                .description(Some("from_version of the next page; null on the last page")),
        )
        .into()
}

fn versioned_state_schema(view: &str) -> RefOr<Schema> {
    AllOfBuilder::new()
        .item(Ref::from_schema_name(view))
        .item(
            ObjectBuilder::new()
                .property("version", version())
                .required("version"),
        )
        .description(Some("The state and its version (the ETag)"))
        .into()
}

fn history_schema(event: &str, envelope: &str) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(Ref::from_schema_name(event)))
        .item(ArrayBuilder::new().items(Ref::from_schema_name(envelope)))
        .description(Some(
            "The events, oldest first; with ?metadata=true each in its envelope",
        ))
        .into()
}

/// `PartialSchema` and `ToSchema` for a body generic over `$t`: its schema is `$schema`,
/// its name `$t`'s followed by `$suffix`, and it registers `$refers` (the schema it refers
/// to) beside itself.
macro_rules! generic_body_schema {
    ($body:ident<$t:ident>, $suffix:literal, $refers:ty, $schema:expr) => {
        impl<$t: ToSchema> PartialSchema for $body<$t> {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl<$t: ToSchema> ToSchema for $body<$t> {
            fn name() -> Cow<'static, str> {
                format!(concat!("{}", $suffix), $t::name()).into()
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((<$refers>::name().into_owned(), <$refers>::schema()));
                <$refers>::schemas(schemas);
            }
        }
    };
}

generic_body_schema!(StateBody<V>, "Response", V, state_body_schema(&V::name()));
generic_body_schema!(EnvelopeBody<E>, "Envelope", E, envelope_schema(&E::name()));
generic_body_schema!(
    EventPage<E>,
    "Page",
    EnvelopeBody<E>,
    page_schema(&EnvelopeBody::<E>::name())
);
generic_body_schema!(
    VersionedState<V>,
    "View",
    V,
    versioned_state_schema(&V::name())
);
generic_body_schema!(
    History<E>,
    "History",
    EnvelopeBody<E>,
    history_schema(&E::name(), &EnvelopeBody::<E>::name())
);
