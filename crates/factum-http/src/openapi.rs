//! The pieces every OpenAPI document of an [`Api`](crate::Api) is made of: JSON and error
//! responses, the common parameters, the health routes, and the bearer scheme marked on
//! every protected operation. The aggregate, view and projection documents are built of
//! them (`openapi_aggregate`, `openapi_views`).

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Content, HeaderBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Response,
    ResponseBuilder, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ErrorBody;

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

pub(crate) fn etag_header() -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(Some(String::schema()))
        .description(Some(
            "The aggregate's version, in quotes (\"3\"): send it back in If-Match",
        ))
        .build()
}

pub(crate) fn path_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
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

pub(crate) fn if_match_param() -> utoipa::openapi::path::Parameter {
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

pub(crate) fn secured(op: OperationBuilder, auth: bool) -> OperationBuilder {
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

pub(crate) fn query_param(
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

/// What a `500` of a route that only reads means.
pub(crate) const STORE_UNREADABLE: &str = "The store could not be read";

/// One operation of a document: its path, its method and the operation.
pub(crate) type Route = (String, HttpMethod, OperationBuilder);

/// Starts an operation with its tag, summary and id.
pub(crate) fn operation(
    tag: &str,
    summary: impl Into<String>,
    id: impl Into<String>,
) -> OperationBuilder {
    OperationBuilder::new()
        .tag(tag)
        .summary(Some(summary))
        .operation_id(Some(id))
}

/// Starts an operation on one projection or subscription, named in the path.
pub(crate) fn by_name(summary: &str, id: &str, name_description: &str) -> OperationBuilder {
    operation("operations", summary, id).parameter(path_param("name", name_description))
}

/// Adds error responses to `op`, each a status and what it means.
pub(crate) fn with_errors(op: OperationBuilder, errors: &[(&str, &str)]) -> OperationBuilder {
    errors.iter().fold(op, |op, (status, what)| {
        op.response(*status, error_response(what))
    })
}

/// A document of `routes`, each operation [`secured`] when `auth` is on, and `schemas`.
pub(crate) fn document(
    auth: bool,
    routes: Vec<Route>,
    schemas: impl IntoIterator<Item = (String, RefOr<Schema>)>,
) -> OpenApi {
    let paths = routes
        .into_iter()
        .fold(PathsBuilder::new(), |paths, (path, method, op)| {
            paths.path(path, PathItem::new(method, secured(op, auth).build()))
        });
    OpenApiBuilder::new()
        .paths(paths.build())
        .components(Some(
            ComponentsBuilder::new().schemas_from_iter(schemas).build(),
        ))
        .build()
}
