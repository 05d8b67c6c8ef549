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
    ObjectBuilder::new()
        .description(Some("A stored event with its metadata"))
        .property(
            "event_id",
            string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        )
        .property("aggregate_type", string())
        .property("aggregate_id", string())
        .property("version", version())
        .property(
            "position",
            version().description(Some("Store-wide position, in commit order")),
        )
        .property("event_type", string())
        .property(
            "recorded_at",
            string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .property("user_id", nullable_string())
        .property("request_id", nullable_string())
        .property("correlation_id", nullable_string())
        .property("causation_id", nullable_string())
        .property("metadata", ObjectBuilder::new().schema_type(Type::Object))
        .property("payload", Ref::from_schema_name(event))
        .required("event_id")
        .required("aggregate_type")
        .required("aggregate_id")
        .required("version")
        .required("position")
        .required("event_type")
        .required("recorded_at")
        .required("payload")
        .into()
}

fn page_schema(envelope: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some("One page of an aggregate's events"))
        .property(
            "events",
            ArrayBuilder::new().items(Ref::from_schema_name(envelope)),
        )
        .property(
            "next_from_version",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::Integer,
                    Type::Null,
                ]))
                .description(Some("from_version of the next page; null on the last page")),
        )
        .required("events")
        .into()
}

impl<V: ToSchema> PartialSchema for StateBody<V> {
    fn schema() -> RefOr<Schema> {
        state_body_schema(&V::name())
    }
}

impl<V: ToSchema> ToSchema for StateBody<V> {
    fn name() -> Cow<'static, str> {
        format!("{}Response", V::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((V::name().into_owned(), V::schema()));
        V::schemas(schemas);
    }
}

impl<E: ToSchema> PartialSchema for EnvelopeBody<E> {
    fn schema() -> RefOr<Schema> {
        envelope_schema(&E::name())
    }
}

impl<E: ToSchema> ToSchema for EnvelopeBody<E> {
    fn name() -> Cow<'static, str> {
        format!("{}Envelope", E::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((E::name().into_owned(), E::schema()));
        E::schemas(schemas);
    }
}

impl<E: ToSchema> PartialSchema for EventPage<E> {
    fn schema() -> RefOr<Schema> {
        page_schema(&EnvelopeBody::<E>::name())
    }
}

impl<E: ToSchema> ToSchema for EventPage<E> {
    fn name() -> Cow<'static, str> {
        format!("{}Page", E::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            EnvelopeBody::<E>::name().into_owned(),
            EnvelopeBody::<E>::schema(),
        ));
        EnvelopeBody::<E>::schemas(schemas);
    }
}

impl<V: ToSchema> PartialSchema for VersionedState<V> {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(Ref::from_schema_name(V::name()))
            .item(
                ObjectBuilder::new()
                    .property("version", version())
                    .required("version"),
            )
            .description(Some("The state and its version (the ETag)"))
            .into()
    }
}

impl<V: ToSchema> ToSchema for VersionedState<V> {
    fn name() -> Cow<'static, str> {
        format!("{}View", V::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((V::name().into_owned(), V::schema()));
        V::schemas(schemas);
    }
}

impl<E: ToSchema> PartialSchema for History<E> {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ArrayBuilder::new().items(Ref::from_schema_name(E::name())))
            .item(ArrayBuilder::new().items(Ref::from_schema_name(EnvelopeBody::<E>::name())))
            .description(Some(
                "The events, oldest first; with ?metadata=true each in its envelope",
            ))
            .into()
    }
}

impl<E: ToSchema> ToSchema for History<E> {
    fn name() -> Cow<'static, str> {
        format!("{}History", E::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            EnvelopeBody::<E>::name().into_owned(),
            EnvelopeBody::<E>::schema(),
        ));
        EnvelopeBody::<E>::schemas(schemas);
    }
}
