//! The OpenAPI document of the generic routes, built from the aggregate's declared types.
//!
//! Routes of an [`HttpAggregate`] are generic over the command name, but the document lists
//! each command as its own operation (`POST /api/accounts/{id}/commands/Deposit`), with the
//! body schema of that command: a client reads exactly what to send.

use std::collections::BTreeMap;

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, ComponentsBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Content, HeaderBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Response,
    ResponseBuilder, Schema,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::aggregate::{
    CommandSpec, EnvelopeBody, EventPage, EventsQuery, HttpAggregate, StateBody, StateQuery,
    collection_path,
};
use crate::error::ErrorBody;
use crate::projections::ProjectionStatus;
use crate::views::{HttpView, describe_fields, join_path};
use factum_core::MAX_PAGE_SIZE;

/// The name of the bearer security scheme in documents of servers with auth.
pub const BEARER_SCHEME: &str = "bearer";

/// A JSON response whose body is the named schema.
pub fn json_response(description: &str, schema: impl Into<RefOr<Schema>>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema.into())))
        .build()
}

/// A structured error response ([`ErrorBody`]).
pub fn error_response(description: &str) -> Response {
    json_response(description, Ref::from_schema_name(ErrorBody::name()))
}

fn etag_header() -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(Some(String::schema()))
        .description(Some(
            "The aggregate's version, in quotes (\"3\"): send it back in If-Match",
        ))
        .build()
}

fn path_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(String::schema()))
        .build()
}

/// The pattern of an aggregate id, as [`factum_core::validate_aggregate_id`] checks it.
pub const AGGREGATE_ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// The pattern of an `If-Match` value the server reads: `*`, or a version, quoted or not,
/// weak or not (up to 19 digits, so that it fits a u64).
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?("[0-9]{1,19}"|[0-9]{1,19}))$"#;

/// The `{id}` path parameter of an aggregate.
pub fn aggregate_id_param(description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(AGGREGATE_ID_PATTERN)),
        ))
        .build()
}

fn if_match_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("If-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Run only if the aggregate is at this version (its ETag, \"3\"); else 412 and nothing is stored",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(IF_MATCH_PATTERN)),
        ))
        .build()
}

/// The document of one aggregate's generic routes under `prefix`.
pub fn aggregate_openapi<A: HttpAggregate>(prefix: &str, auth: bool) -> OpenApi {
    let base = collection_path::<A>(prefix);
    let tag = A::PATH.trim_matches('/').to_owned();
    let state_body = StateBody::<A::View>::name().into_owned();
    let page = EventPage::<A::EventSchema>::name().into_owned();

    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    let mut collect = |list: Vec<(String, RefOr<Schema>)>| {
        for (name, schema) in list {
            schemas.entry(name).or_insert(schema);
        }
    };
    let mut found = vec![
        (state_body.clone(), StateBody::<A::View>::schema()),
        (page.clone(), EventPage::<A::EventSchema>::schema()),
    ];
    StateBody::<A::View>::schemas(&mut found);
    EventPage::<A::EventSchema>::schemas(&mut found);
    collect(found);
    let creates = A::create_commands();
    let updates = A::update_commands();
    for spec in creates.iter().chain(&updates) {
        collect(spec.schemas().to_vec());
    }

    let secure = |op: OperationBuilder| {
        if auth {
            op.security(SecurityRequirement::new(
                BEARER_SCHEME,
                Vec::<String>::new(),
            ))
            .response("401", error_response("No valid bearer token"))
        } else {
            op
        }
    };
    let command_op = |spec: &CommandSpec, created: bool, with_id: bool| {
        let (code, what) = if created {
            ("201", "Created: the new aggregate")
        } else {
            ("200", "The aggregate after the command")
        };
        let mut op = OperationBuilder::new()
            .tag(tag.clone())
            .summary(Some(spec.summary().to_owned()))
            .operation_id(Some(format!(
                "{}_{}{}",
                A::TYPE,
                spec.name(),
                if with_id || !created {
                    ""
                } else {
                    "_generated_id"
                }
            )))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(spec.schema_name()))),
                    )
                    .build(),
            ))
            .response(
                code,
                ResponseBuilder::new()
                    .description(what)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(&state_body))),
                    )
                    .header("ETag", etag_header())
                    .build(),
            )
            .response(
                "400",
                error_response("Invalid id, body or command (VALIDATION_ERROR or a domain code)"),
            )
            .response(
                "409",
                error_response("Conflict (the aggregate exists, or a concurrent change)"),
            )
            .response("413", error_response("Body larger than the limit"))
            .response(
                "415",
                error_response("Content-Type is not application/json"),
            )
            .response("500", error_response("Internal error"))
            .response(
                "503",
                error_response(
                    "STORE_UNAVAILABLE (the store cannot be reached) or SERVICE_UNAVAILABLE (too many requests in flight); retry after Retry-After seconds",
                ),
            )
            .response(
                "507",
                error_response("STORE_FULL: the store has no space left; nothing was stored"),
            );
        if with_id {
            op = op
                .parameter(aggregate_id_param(
                    "The aggregate id: 1 to 128 of [A-Za-z0-9._:-]",
                ))
                .response("404", error_response("No aggregate with this id"));
        }
        if !created {
            op = op.parameter(if_match_param()).response(
                "412",
                error_response("If-Match does not hold: the aggregate is at another version"),
            );
        }
        secure(op).build()
    };

    let mut paths = PathsBuilder::new();
    for spec in &creates {
        paths = paths.path(
            format!("{base}/commands/{}", spec.name()),
            PathItem::new(HttpMethod::Post, command_op(spec, true, false)),
        );
        paths = paths.path(
            format!("{base}/{{id}}/commands/{}", spec.name()),
            PathItem::new(HttpMethod::Post, command_op(spec, true, true)),
        );
    }
    for spec in &updates {
        paths = paths.path(
            format!("{base}/{{id}}/commands/{}", spec.name()),
            PathItem::new(HttpMethod::Post, command_op(spec, false, true)),
        );
    }
    let get_state = OperationBuilder::new()
        .tag(tag.clone())
        .summary(Some(format!(
            "The state of a {}, now or at a past version",
            A::TYPE
        )))
        .operation_id(Some(format!("{}_get", A::TYPE)))
        .parameter(aggregate_id_param("The aggregate id"))
        .parameters(Some(StateQuery::into_params(|| Some(ParameterIn::Query))))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The state")
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name(&state_body))),
                )
                .header("ETag", etag_header())
                .build(),
        )
        .response("400", error_response("Invalid id or version"))
        .response(
            "404",
            error_response("No aggregate with this id, or no such version yet"),
        );
    paths = paths.path(
        format!("{base}/{{id}}"),
        PathItem::new(HttpMethod::Get, secure(get_state).build()),
    );
    let get_events = OperationBuilder::new()
        .tag(tag.clone())
        .summary(Some(format!(
            "The audit log of a {}: event envelopes, paged",
            A::TYPE
        )))
        .operation_id(Some(format!("{}_events", A::TYPE)))
        .parameter(aggregate_id_param("The aggregate id"))
        .parameters(Some(EventsQuery::into_params(|| Some(ParameterIn::Query))))
        .response(
            "200",
            json_response("One page of events", Ref::from_schema_name(&page)),
        )
        .response("400", error_response("Invalid id, from_version or limit"))
        .response("404", error_response("No aggregate with this id"));
    paths = paths.path(
        format!("{base}/{{id}}/events"),
        PathItem::new(HttpMethod::Get, secure(get_events).build()),
    );

    let components = ComponentsBuilder::new().schemas_from_iter(schemas).build();
    OpenApiBuilder::new()
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// The parts every document of an [`Api`](crate::Api) has: the error schema, the health
/// route, and the bearer scheme when auth is on.
pub(crate) fn common_openapi(auth: bool, has_health: bool) -> OpenApi {
    let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
    ErrorBody::schemas(&mut schemas);
    let mut components = ComponentsBuilder::new().schemas_from_iter(schemas);
    if auth {
        components = components.security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT (HS256 with the shared secret, or RS256/ES256 with a key of the configured JWKS) \
                         with `exp` and `sub` (the user recorded in event metadata), and `iss`/`aud` when the \
                         server requires them; the caller's roles come from a configured claim. Without a \
                         valid token: 401 with `WWW-Authenticate: Bearer`; with one that does not grant the \
                         operation: 403.",
                    ))
                    .build(),
            ),
        );
    }
    let mut paths = PathsBuilder::new();
    let ok = || {
        json_response(
            "Healthy",
            ObjectBuilder::new()
                .property("status", ObjectBuilder::new().schema_type(Type::String))
                .required("status")
                .build(),
        )
    };
    let live = OperationBuilder::new()
        .tag("operations")
        .summary(Some(
            "Whether the process is up and serving (never checks the store)",
        ))
        .operation_id(Some("healthLive"))
        .response("200", ok())
        .build();
    paths = paths.path("/health/live", PathItem::new(HttpMethod::Get, live));
    let checks = if has_health {
        "its event store answers and has room for writes"
    } else {
        "it serves (no store is checked)"
    };
    for (path, id) in [("/health/ready", "healthReady"), ("/health", "health")] {
        let ready = OperationBuilder::new()
            .tag("operations")
            .summary(Some(format!("Whether the service is ready: {checks}")))
            .operation_id(Some(id))
            .response("200", ok())
            .response(
                "503",
                error_response(
                    "Not ready: `STORE_UNAVAILABLE` (the store is not reachable) or `STORE_FULL` (no space left for writes)",
                ),
            )
            .build();
        paths = paths.path(path, PathItem::new(HttpMethod::Get, ready));
    }
    OpenApiBuilder::new()
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        Type::String,
        Type::Null,
    ]))
}

fn version() -> ObjectBuilder {
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

// The wire types of the generic routes are generic over the aggregate's types, so their
// schemas are written here, named after the type they wrap (`AccountViewResponse`,
// `AccountEventEnvelope`, `AccountEventPage`).

impl<V: ToSchema> PartialSchema for StateBody<V> {
    fn schema() -> RefOr<Schema> {
        state_body_schema(&V::name())
    }
}

impl<V: ToSchema> ToSchema for StateBody<V> {
    fn name() -> std::borrow::Cow<'static, str> {
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
    fn name() -> std::borrow::Cow<'static, str> {
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
    fn name() -> std::borrow::Cow<'static, str> {
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

/// Marks every operation of `doc` outside `public` paths as needing the bearer token, with
/// its 401 and 403 responses: whatever mounted the route (the generic routes, views, or
/// routes of the service's own), the document says what the authentication layer does.
pub(crate) fn secure_document(doc: &mut OpenApi, public: &[&str]) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if public.contains(&path.as_str()) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new(
                BEARER_SCHEME,
                Vec::<String>::new(),
            )]);
            let responses = &mut operation.responses.responses;
            responses
                .entry("401".to_owned())
                .or_insert_with(|| error_response("No valid bearer token (UNAUTHORIZED)").into());
            responses.entry("403".to_owned()).or_insert_with(|| {
                error_response(
                    "The token does not grant this operation: a role is missing or the access rule refuses (FORBIDDEN)",
                )
                .into()
            });
        }
    }
}

fn secured(op: OperationBuilder, auth: bool) -> OperationBuilder {
    if auth {
        op.security(SecurityRequirement::new(
            BEARER_SCHEME,
            Vec::<String>::new(),
        ))
        .response("401", error_response("No valid bearer token"))
    } else {
        op
    }
}

fn query_param(
    name: &str,
    description: String,
    schema: impl Into<RefOr<Schema>>,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The query parameters of the view routes, with the view's fields in their descriptions.
fn view_query_params<V: HttpView>() -> Vec<utoipa::openapi::path::Parameter> {
    let fields = describe_fields(V::fields());
    let default_sort = match V::default_sort() {
        "" => "record id".to_owned(),
        sort => format!("`{sort}`, then record id"),
    };
    vec![
        query_param(
            "filter",
            format!(
                "Comma-separated `field:op:value` filters, all of which must hold (`in` takes `a|b|c`). Fields: {fields}"
            ),
            string().examples([serde_json::Value::String(
                V::fields()
                    .iter()
                    .find(|f| f.filterable)
                    .map(|f| format!("{}:eq:...", f.name))
                    .unwrap_or_default(),
            )]),
        ),
        query_param(
            "sort",
            format!(
                "Comma-separated fields, `-field` for descending; ties by record id. Default: {default_sort}"
            ),
            string(),
        ),
        query_param(
            "page",
            "The page, from 1 (default 1)".to_owned(),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(u32::MAX)),
        ),
        query_param(
            "page_size",
            format!("Records per page, 1 to {MAX_PAGE_SIZE} (default 50)"),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_PAGE_SIZE)),
        ),
    ]
}

fn record_page_schema(record: &str) -> RefOr<Schema> {
    let count = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
    };
    ObjectBuilder::new()
        .description(Some("One page of a view's records"))
        .property(
            "items",
            ArrayBuilder::new().items(Ref::from_schema_name(record)),
        )
        .property(
            "total",
            count().description(Some("How many records match in all")),
        )
        .property("page", count().minimum(Some(1)))
        .property("page_size", count().minimum(Some(1)))
        .required("items")
        .required("total")
        .required("page")
        .required("page_size")
        .into()
}

/// The schemas of a view's routes: its record, and a page of records.
fn view_schemas<V: HttpView>() -> (String, String, Vec<(String, RefOr<Schema>)>) {
    let record = V::Schema::name().into_owned();
    let page = format!("{record}Page");
    let mut schemas = vec![
        (record.clone(), V::Schema::schema()),
        (page.clone(), record_page_schema(&record)),
    ];
    V::Schema::schemas(&mut schemas);
    (record, page, schemas)
}

fn document(paths: PathsBuilder, schemas: Vec<(String, RefOr<Schema>)>) -> OpenApi {
    OpenApiBuilder::new()
        .paths(paths.build())
        .components(Some(
            ComponentsBuilder::new().schemas_from_iter(schemas).build(),
        ))
        .build()
}

/// The document of [`view_routes`](crate::view_routes) under `prefix`.
pub fn view_openapi<V: HttpView>(prefix: &str, auth: bool) -> OpenApi {
    let base = join_path(prefix, V::PATH);
    let (record, page, schemas) = view_schemas::<V>();
    let list = OperationBuilder::new()
        .tag("views")
        .summary(Some(format!(
            "Query the {} view: filter, sort, page",
            V::TYPE
        )))
        .operation_id(Some(format!("view_{}_query", V::TYPE)))
        .parameters(Some(view_query_params::<V>()))
        .response(
            "200",
            json_response("A page of records", Ref::from_schema_name(&page)),
        )
        .response(
            "400",
            error_response(
                "Unknown field or operator, a value of the wrong type, or bad paging (VALIDATION_ERROR; details list the fields)",
            ),
        )
        .response("500", error_response("The store could not be read"));
    let get = OperationBuilder::new()
        .tag("views")
        .summary(Some(format!("One record of the {} view", V::TYPE)))
        .operation_id(Some(format!("view_{}_get", V::TYPE)))
        .parameter(path_param("id", "The record id"))
        .response(
            "200",
            json_response("The record", Ref::from_schema_name(&record)),
        )
        .response("404", error_response("No record with this id (NOT_FOUND)"))
        .response("500", error_response("The store could not be read"));
    let paths = PathsBuilder::new()
        .path(
            base.clone(),
            PathItem::new(HttpMethod::Get, secured(list, auth).build()),
        )
        .path(
            format!("{base}/{{id}}"),
            PathItem::new(HttpMethod::Get, secured(get, auth).build()),
        );
    document(paths, schemas)
}

/// The document of [`child_view_routes`](crate::child_view_routes) under `prefix`.
pub fn child_view_openapi<V>(prefix: &str, auth: bool) -> OpenApi
where
    V: HttpView,
    V::Aggregate: HttpAggregate,
{
    let aggregate = <V::Aggregate as factum_core::Aggregate>::TYPE;
    let base = join_path(prefix, <V::Aggregate as HttpAggregate>::PATH);
    let (_, page, schemas) = view_schemas::<V>();
    let list = OperationBuilder::new()
        .tag(<V::Aggregate as HttpAggregate>::PATH.trim_matches('/'))
        .summary(Some(format!(
            "The {} records of one {aggregate}: filter, sort, page",
            V::TYPE
        )))
        .operation_id(Some(format!("{aggregate}_{}", V::TYPE)))
        .parameter(aggregate_id_param("The aggregate id"))
        .parameters(Some(view_query_params::<V>()))
        .response(
            "200",
            json_response("A page of records", Ref::from_schema_name(&page)),
        )
        .response(
            "400",
            error_response(
                "Invalid id, unknown field or operator, a value of the wrong type, or bad paging",
            ),
        )
        .response("404", error_response("No aggregate with this id"))
        .response("500", error_response("The store could not be read"));
    let paths = PathsBuilder::new().path(
        join_path(&format!("{base}/{{id}}"), V::PATH),
        PathItem::new(HttpMethod::Get, secured(list, auth).build()),
    );
    document(paths, schemas)
}

/// The document of [`projection_routes`](crate::projection_routes).
pub fn projections_openapi(auth: bool) -> OpenApi {
    let status = ProjectionStatus::name().into_owned();
    let mut schemas = vec![(status.clone(), ProjectionStatus::schema())];
    ProjectionStatus::schemas(&mut schemas);
    let list = OperationBuilder::new()
        .tag("operations")
        .summary(Some(
            "How far each asynchronous projection is behind the event log",
        ))
        .operation_id(Some("projections"))
        .response(
            "200",
            json_response(
                "Every projection's checkpoint, the log's head, and the difference",
                ArrayBuilder::new().items(Ref::from_schema_name(&status)),
            ),
        )
        .response("500", error_response("The store could not be read"));
    let one = OperationBuilder::new()
        .tag("operations")
        .summary(Some("How far one asynchronous projection is behind"))
        .operation_id(Some("projection"))
        .parameter(path_param("name", "The projection's name"))
        .response(
            "200",
            json_response("Its lag", Ref::from_schema_name(&status)),
        )
        .response("404", error_response("No projection with this name"))
        .response("500", error_response("The store could not be read"));
    let paths = PathsBuilder::new()
        .path(
            "/projections",
            PathItem::new(HttpMethod::Get, secured(list, auth).build()),
        )
        .path(
            "/projections/{name}",
            PathItem::new(HttpMethod::Get, secured(one, auth).build()),
        );
    document(paths, schemas)
}
