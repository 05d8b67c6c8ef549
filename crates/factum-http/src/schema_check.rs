//! Does the OpenAPI document say what serde does? A check for tests, over every variant of a
//! tagged enum: from the variant's schema it builds a minimal valid body, then that body
//! without each required field, with each optional field, with an unknown field, with a wrong
//! tag and with no tag, and asks serde for its verdict on each. Every disagreement with the
//! schema (serde refuses what the schema allows, or accepts what it forbids) is reported.
//!
//! [`check_aggregate`] runs it on an aggregate's command enums, as the document serves them
//! (variants closed where the enum denies unknown fields), and on its events.
//!
//! ```
//! use factum_core::Commands;
//! use serde::Deserialize;
//! use utoipa::ToSchema;
//!
//! #[derive(Commands, Deserialize, ToSchema)]
//! #[serde(tag = "type", deny_unknown_fields)]
//! enum Command {
//!     Rename { name: String, #[serde(default)] note: Option<String> },
//!     Archive {},
//! }
//!
//! let report = factum_http::schema_check::check_commands::<Command>();
//! assert!(report.mismatches.is_empty(), "{:#?}", report.mismatches);
//! assert!(report.cases >= 10);
//!
//! // serde reads a unit variant of a tagged enum without looking at the other fields, even
//! // under deny_unknown_fields: the document would promise what the type does not hold.
//! #[derive(Commands, Deserialize, ToSchema)]
//! #[serde(tag = "type", deny_unknown_fields)]
//! enum Loose { Archive }
//!
//! let report = factum_http::schema_check::check_commands::<Loose>();
//! assert_eq!(report.mismatches.len(), 1);
//! assert!(report.mismatches[0].contains("with an unknown field"), "{:?}", report.mismatches);
//! ```
//!
//! (The HTTP layer refuses unknown fields of a closed command itself, so a served `Loose`
//! would still be closed; the check is about the domain type, which other callers read too.)

use std::collections::BTreeMap;

use factum_core::Commands;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::schema::{AdditionalProperties, Object, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::aggregate::HttpAggregate;
use crate::spec::tagged_schema;

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// How many bodies were put to serde.
    pub cases: usize,
    /// Each disagreement between the schema and serde, in words.
    pub mismatches: Vec<String>,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.cases += other.cases;
        self.mismatches.extend(other.mismatches);
    }
}

/// Checks both command enums of `A` as the document serves them, and its events.
pub fn check_aggregate<A: HttpAggregate>() -> Report
where
    A::Event: DeserializeOwned,
{
    let mut report = check_commands::<A::CreateCommand>();
    report.merge(check_commands::<A::UpdateCommand>());
    report.merge(check_events::<A::Event>());
    report
}

/// Checks an event enum: its tag field is the one field every variant fixes to one value.
pub fn check_events<E: DeserializeOwned + ToSchema>() -> Report {
    let schema = E::schema();
    let variants = Checker {
        components: BTreeMap::new(),
    }
    .variants(&schema);
    let tag = variants.first().and_then(|first| {
        first
            .properties
            .keys()
            .find(|key| variants.iter().all(|v| tag_value(v, key).is_some()))
            .cloned()
    });
    match tag {
        Some(tag) => check_tagged::<E>(&schema, &tag, &[]),
        None => Report {
            cases: 0,
            mismatches: vec![format!(
                "{}: no field fixes the variant in every variant's schema",
                E::name()
            )],
        },
    }
}

/// Checks a command enum as the document serves it: its variants, closed if it denies
/// unknown fields, and its tag values against [`Commands::NAMES`].
pub fn check_commands<C: Commands + DeserializeOwned + ToSchema>() -> Report {
    check_tagged::<C>(&tagged_schema::<C>(), C::TAG, C::NAMES)
}

/// Checks that `schema` (a tagged enum's `oneOf`, or one object) says what serde reads as
/// `T`; `tag` is the field naming the variant; `names`, when not empty, the tag values the
/// schema must list, in order.
pub fn check_tagged<T: DeserializeOwned + ToSchema>(
    schema: &RefOr<Schema>,
    tag: &str,
    names: &[&str],
) -> Report {
    let mut referenced = Vec::new();
    T::schemas(&mut referenced);
    let checker = Checker {
        components: referenced.into_iter().collect(),
    };
    let mut report = Report::default();
    let variants = checker.variants(schema);
    let tags: Vec<String> = variants
        .iter()
        .filter_map(|object| tag_value(object, tag))
        .collect();
    if tags.len() != variants.len() {
        report.mismatches.push(format!(
            "{}: a variant's schema does not fix the tag field `{tag}` to one value",
            T::name()
        ));
    }
    if !names.is_empty() && tags != names {
        report.mismatches.push(format!(
            "{}: the schema's tags are {tags:?}, the commands are {names:?}",
            T::name()
        ));
    }
    for object in &variants {
        let Some(name) = tag_value(object, tag) else {
            continue;
        };
        report.merge(checker.check_variant::<T>(object, tag, &name));
    }
    report
}

struct Checker {
    components: BTreeMap<String, RefOr<Schema>>,
}

impl Checker {
    fn resolve<'a>(&'a self, schema: &'a RefOr<Schema>) -> Option<&'a Schema> {
        match schema {
            RefOr::T(schema) => Some(schema),
            RefOr::Ref(reference) => {
                let name = reference.ref_location.rsplit('/').next()?;
                self.resolve(self.components.get(name)?)
            }
        }
    }

    fn variants(&self, schema: &RefOr<Schema>) -> Vec<Object> {
        match self.resolve(schema) {
            Some(Schema::OneOf(one_of)) => one_of
                .items
                .iter()
                .flat_map(|item| self.variants(item))
                .collect(),
            Some(Schema::Object(object)) => vec![object.clone()],
            _ => Vec::new(),
        }
    }

    /// A value the schema allows, as small as it gets (serde's judgement of the domain's
    /// rules does not come into it: a string is `"x"`, a number `1`).
    fn example(&self, schema: &RefOr<Schema>, depth: usize) -> Value {
        let Some(schema) = self.resolve(schema).filter(|_| depth < 16) else {
            return Value::Null;
        };
        match schema {
            Schema::Object(object) => self.object_example(object, depth),
            Schema::Array(_) => json!([]),
            Schema::OneOf(one_of) => one_of
                .items
                .first()
                .map_or(Value::Null, |item| self.example(item, depth + 1)),
            Schema::AnyOf(any_of) => any_of
                .items
                .first()
                .map_or(Value::Null, |item| self.example(item, depth + 1)),
            Schema::AllOf(all_of) => {
                let mut merged = Map::new();
                for item in &all_of.items {
                    if let Value::Object(part) = self.example(item, depth + 1) {
                        merged.extend(part);
                    }
                }
                Value::Object(merged)
            }
            _ => Value::Null,
        }
    }

    fn object_example(&self, object: &Object, depth: usize) -> Value {
        if let Some(value) = object
            .enum_values
            .as_ref()
            .and_then(|values| values.first())
        {
            return value.clone();
        }
        let kinds: Vec<Type> = match &object.schema_type {
            SchemaType::Type(kind) => vec![kind.clone()],
            SchemaType::Array(kinds) => kinds.clone(),
            SchemaType::AnyValue => Vec::new(),
        };
        let kind = kinds.into_iter().find(|kind| *kind != Type::Null);
        match kind {
            Some(Type::String) => json!("x"),
            Some(Type::Integer) => {
                let least = object
                    .minimum
                    .as_ref()
                    .and_then(|n| serde_json::to_value(n).ok())
                    .and_then(|n| n.as_f64())
                    .unwrap_or(1.0)
                    .max(1.0);
                json!(least.ceil() as u64)
            }
            Some(Type::Number) => json!(1),
            Some(Type::Boolean) => json!(false),
            Some(Type::Array) => json!([]),
            Some(Type::Null) => Value::Null,
            Some(Type::Object) | None => {
                let mut body = Map::new();
                for field in &object.required {
                    if let Some(property) = object.properties.get(field) {
                        body.insert(field.clone(), self.example(property, depth + 1));
                    }
                }
                Value::Object(body)
            }
        }
    }

    fn check_variant<T: DeserializeOwned>(&self, object: &Object, tag: &str, name: &str) -> Report {
        let mut report = Report::default();
        let mut judge = |case: &str, body: Value, schema_allows: bool| {
            report.cases += 1;
            let serde_accepts = serde_json::from_value::<T>(body.clone()).is_ok();
            if serde_accepts != schema_allows {
                let (schema, serde) = if schema_allows {
                    ("allows", "refuses")
                } else {
                    ("forbids", "accepts")
                };
                report.mismatches.push(format!(
                    "{name}, {case}: the schema {schema} {body}, serde {serde} it"
                ));
            }
        };
        let Value::Object(minimal) = self.object_example(object, 0) else {
            judge("a minimal body", Value::Null, true);
            return report;
        };
        let mut minimal = minimal;
        minimal.insert(tag.to_owned(), json!(name));
        judge("the minimal body", Value::Object(minimal.clone()), true);
        for field in object.required.iter().filter(|field| *field != tag) {
            let mut body = minimal.clone();
            body.remove(field);
            judge(
                &format!("without the required `{field}`"),
                Value::Object(body),
                false,
            );
        }
        for (field, property) in &object.properties {
            if object.required.contains(field) {
                continue;
            }
            let mut body = minimal.clone();
            body.insert(field.clone(), self.example(property, 1));
            judge(
                &format!("with the optional `{field}`"),
                Value::Object(body),
                true,
            );
        }
        let closed = matches!(
            object.additional_properties.as_deref(),
            Some(AdditionalProperties::FreeForm(false))
        );
        let mut unknown = minimal.clone();
        unknown.insert("unknown_field_of_the_check".to_owned(), json!(1));
        judge("with an unknown field", Value::Object(unknown), !closed);
        let mut wrong = minimal.clone();
        wrong.insert(tag.to_owned(), json!(format!("{name}NotATag")));
        judge("with a wrong tag", Value::Object(wrong), false);
        let mut untagged = minimal;
        untagged.remove(tag);
        judge("without its tag", Value::Object(untagged), false);
        report
    }
}

/// The one value a variant object allows in its tag field.
fn tag_value(object: &Object, tag: &str) -> Option<String> {
    let RefOr::T(Schema::Object(field)) = object.properties.get(tag)? else {
        return None;
    };
    match field.enum_values.as_deref()? {
        [Value::String(value)] => Some(value.clone()),
        _ => None,
    }
}
