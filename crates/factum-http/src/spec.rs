//! What the OpenAPI document says of each command, read from the command enum itself: an
//! internally tagged serde enum that derives [`Commands`] (its names) and `ToSchema` (its
//! JSON Schema, a `oneOf` with one object per variant).
//!
//! Each variant's object becomes the schema of its command's body, closed
//! (`additionalProperties: false`) when the enum denies unknown fields: utoipa does not carry
//! `deny_unknown_fields` from a tagged enum to its variants, so it is done here, and the server
//! enforces the same list of fields ([`CommandSpec::closed_fields`]).

use factum_core::Commands;
use utoipa::ToSchema;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// One command: its name, a summary, and the schema of its body.
#[derive(Clone)]
pub struct CommandSpec {
    name: &'static str,
    summary: String,
    schema_name: String,
    schemas: Vec<(String, RefOr<Schema>)>,
    closed: Option<Vec<String>>,
}

factum_core::debug_fields! { CommandSpec { name, summary, schema_name, .. } }

impl CommandSpec {
    /// Every command of `C`, in the order of its variants: the name is the serde tag, the
    /// summary the variant's doc comment, the body schema the variant's object of `C`'s
    /// schema (named `{name}Body`), with the tag field optional (routes that name the
    /// command in the path fill it in).
    pub fn all<C: Commands + ToSchema>() -> Vec<Self> {
        let variants = tagged_variants::<C>();
        let mut referenced = Vec::new();
        C::schemas(&mut referenced);
        C::NAMES
            .iter()
            .map(|&name| {
                let variant = variants
                    .iter()
                    .find(|object| tag_value(object, C::TAG) == Some(name))
                    .cloned()
                    .unwrap_or_else(|| ObjectBuilder::new().schema_type(Type::Object).build());
                let summary = variant
                    .description
                    .clone()
                    .map(|text| first_sentence(&text))
                    .unwrap_or_else(|| format!("Run {name}"));
                let mut body = variant;
                body.required.retain(|field| field != C::TAG);
                let closed = C::DENY_UNKNOWN_FIELDS.then(|| {
                    body.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                    body.properties
                        .keys()
                        .filter(|key| *key != C::TAG)
                        .cloned()
                        .collect()
                });
                let schema_name = format!("{name}Body");
                let mut schemas = vec![(schema_name.clone(), RefOr::T(Schema::Object(body)))];
                schemas.extend(referenced.iter().cloned());
                Self {
                    name,
                    summary,
                    schema_name,
                    schemas,
                    closed,
                }
            })
            .collect()
    }

    /// The command name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The one-line summary.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The name of the body's schema component.
    pub fn schema_name(&self) -> &str {
        &self.schema_name
    }

    /// The body's schema and the schemas it references, by name.
    pub fn schemas(&self) -> &[(String, RefOr<Schema>)] {
        &self.schemas
    }

    /// The fields a body may have (besides the tag) when the command enum denies unknown
    /// fields; `None` when it allows other fields.
    pub fn closed_fields(&self) -> Option<Vec<String>> {
        self.closed.clone()
    }
}

/// The schema of the tagged enum `C` as served for a body that names its command in its
/// tag field: `C`'s `oneOf`, each variant closed when `C` denies unknown fields.
pub fn tagged_schema<C: Commands + ToSchema>() -> RefOr<Schema> {
    let mut schema = C::schema();
    if C::DENY_UNKNOWN_FIELDS {
        for object in variants_mut(&mut schema) {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
    schema
}

/// The variant objects of a tagged enum's schema: the items of its `oneOf` (a one-variant
/// enum may be a bare object).
fn tagged_variants<C: ToSchema>() -> Vec<Object> {
    let mut schema = C::schema();
    variants_mut(&mut schema)
        .map(|object| object.clone())
        .collect()
}

fn variants_mut(schema: &mut RefOr<Schema>) -> impl Iterator<Item = &mut Object> {
    let items: Vec<&mut Object> = match schema {
        RefOr::T(Schema::OneOf(one_of)) => one_of
            .items
            .iter_mut()
            .filter_map(|item| match item {
                RefOr::T(Schema::Object(object)) => Some(object),
                _ => None,
            })
            .collect(),
        RefOr::T(Schema::Object(object)) => vec![object],
        _ => Vec::new(),
    };
    items.into_iter()
}

/// The one value a variant object allows in its tag field (`"enum": ["Deposit"]`).
fn tag_value<'a>(object: &'a Object, tag: &str) -> Option<&'a str> {
    let RefOr::T(Schema::Object(field)) = object.properties.get(tag)? else {
        return None;
    };
    match field.enum_values.as_deref()? {
        [serde_json::Value::String(value)] => Some(value),
        _ => None,
    }
}

/// A doc comment's first sentence (or line), for a summary.
fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    line.strip_suffix('.').unwrap_or(line).to_owned()
}
