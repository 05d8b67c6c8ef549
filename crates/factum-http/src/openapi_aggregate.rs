//! The OpenAPI documents of an aggregate's routes, built from the domain's own types.
//!
//! The generic routes take the command name in the path, but the document lists each command
//! as its own operation (`POST /api/accounts/{id}/commands/Deposit`) with the body schema of
//! that command's variant. The tagged routes take one body for every command: its schema is
//! the `oneOf` of every variant of both command enums.

use std::collections::BTreeMap;

use factum_core::Commands;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::OneOfBuilder;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder, Schema};
use utoipa::{IntoParams, ToSchema};

use crate::aggregate::{HttpAggregate, collection_path};
use crate::bodies::VersionedState;
use crate::bodies::{EventPage, EventsQuery, History, HistoryQuery, StateBody, StateQuery};
use crate::openapi::{
    aggregate_id_param, document, error_response, etag_header, if_match_param, json_response,
    operation, with_errors,
};
use crate::spec::{CommandSpec, tagged_schema};

type Schemas = BTreeMap<String, RefOr<Schema>>;

/// Adds `T`'s schema and every schema it references; returns its name.
fn collect<T: ToSchema>(schemas: &mut Schemas) -> String {
    let name = T::name().into_owned();
    let mut found = vec![(name.clone(), T::schema())];
    T::schemas(&mut found);
    schemas.extend(found);
    name
}

fn request_body(schema: RefOr<Schema>) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content("application/json", Content::new(Some(schema)))
        .build()
}

/// A state reply with its `ETag`.
fn state_response(description: &str, schema: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(schema))),
        )
        .header("ETag", etag_header())
        .build()
}

/// What every command may answer besides its success: bad input, conflicts, limits, the
/// store's troubles, and (for an update) a missing aggregate or a failed `If-Match`.
fn command_errors(op: OperationBuilder, with_id: bool, update: bool) -> OperationBuilder {
    let mut op = op
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
    if update {
        op = op.parameter(if_match_param()).response(
            "412",
            error_response("If-Match does not hold: the aggregate is at another version"),
        );
    }
    op
}

fn state_read(op: OperationBuilder, state: &str) -> OperationBuilder {
    op.parameter(aggregate_id_param("The aggregate id"))
        .parameters(Some(StateQuery::into_params(|| Some(ParameterIn::Query))))
        .response("200", state_response("The state", state))
        .response("400", error_response("Invalid id or version"))
        .response(
            "404",
            error_response("No aggregate with this id, or no such version yet"),
        )
}

/// Starts an operation of `A`'s routes, tagged with its collection, its id `{TYPE}_{id}`.
fn aggregate_operation<A: HttpAggregate>(summary: impl Into<String>, id: &str) -> OperationBuilder {
    operation(
        A::PATH.trim_matches('/'),
        summary,
        format!("{}_{id}", A::TYPE),
    )
}

/// `GET {id}/events` in the form of query `Q`: the body it answers (`ok`), and what a `400`
/// means.
fn events_read<Q: IntoParams>(op: OperationBuilder, ok: Response, bad: &str) -> OperationBuilder {
    let op = op
        .parameter(aggregate_id_param("The aggregate id"))
        .parameters(Some(Q::into_params(|| Some(ParameterIn::Query))))
        .response("200", ok);
    with_errors(op, &[("400", bad), ("404", "No aggregate with this id")])
}

/// The document of one aggregate's generic routes under `prefix`.
pub fn aggregate_openapi<A: HttpAggregate>(prefix: &str, auth: bool) -> OpenApi {
    let base = collection_path::<A>(prefix);
    let mut schemas = Schemas::new();
    let state_body = collect::<StateBody<A::View>>(&mut schemas);
    let page = collect::<EventPage<A::Event>>(&mut schemas);
    let creates = CommandSpec::all::<A::CreateCommand>();
    let updates = CommandSpec::all::<A::UpdateCommand>();
    for spec in creates.iter().chain(&updates) {
        schemas.extend(spec.schemas().iter().cloned());
    }

    let command_op = |spec: &CommandSpec, created: bool, with_id: bool| {
        let (code, what) = if created {
            ("201", "Created: the new aggregate")
        } else {
            ("200", "The aggregate after the command")
        };
        let generated = if with_id || !created {
            ""
        } else {
            "_generated_id"
        };
        let op = aggregate_operation::<A>(spec.summary(), &format!("{}{generated}", spec.name()))
            .request_body(Some(request_body(
                Ref::from_schema_name(spec.schema_name()).into(),
            )))
            .response(code, state_response(what, &state_body));
        command_errors(op, with_id, !created)
    };

    let mut routes = Vec::new();
    for spec in &creates {
        let path = format!("{base}/commands/{}", spec.name());
        routes.push((path, HttpMethod::Post, command_op(spec, true, false)));
        let path = format!("{base}/{{id}}/commands/{}", spec.name());
        routes.push((path, HttpMethod::Post, command_op(spec, true, true)));
    }
    for spec in &updates {
        let path = format!("{base}/{{id}}/commands/{}", spec.name());
        routes.push((path, HttpMethod::Post, command_op(spec, false, true)));
    }
    let get_state = aggregate_operation::<A>(
        format!("The state of a {}, now or at a past version", A::TYPE),
        "get",
    );
    let get_state = state_read(get_state, &state_body);
    routes.push((format!("{base}/{{id}}"), HttpMethod::Get, get_state));
    let get_events = aggregate_operation::<A>(
        format!("The audit log of a {}: event envelopes, paged", A::TYPE),
        "events",
    );
    let get_events = events_read::<EventsQuery>(
        get_events,
        json_response("One page of events", Ref::from_schema_name(&page)),
        "Invalid id, from_version or limit",
    );
    routes.push((format!("{base}/{{id}}/events"), HttpMethod::Get, get_events));
    document(auth, routes, schemas)
}

/// The schema of a body of the tagged routes: every variant of both command enums, each
/// with its tag, closed where its enum denies unknown fields.
fn tagged_commands_schema<A: HttpAggregate>(schemas: &mut Schemas) -> String {
    let mut one_of = OneOfBuilder::new().description(Some(format!(
        "A command on a {}, named by its `{}` field",
        A::TYPE,
        <A::CreateCommand as Commands>::TAG
    )));
    for schema in [
        tagged_schema::<A::CreateCommand>(),
        tagged_schema::<A::UpdateCommand>(),
    ] {
        match schema {
            RefOr::T(Schema::OneOf(variants)) => {
                for item in variants.items {
                    one_of = one_of.item(item);
                }
            }
            other => one_of = one_of.item(other),
        }
    }
    let mut found = Vec::new();
    A::CreateCommand::schemas(&mut found);
    A::UpdateCommand::schemas(&mut found);
    schemas.extend(found);
    let name = format!("{}CommandBody", A::View::name());
    schemas.insert(name.clone(), one_of.into());
    name
}

/// The document of [`tagged_routes`](crate::tagged_routes) of `A` under `prefix`.
pub fn tagged_openapi<A: HttpAggregate>(prefix: &str, auth: bool) -> OpenApi {
    let base = collection_path::<A>(prefix);
    let mut schemas = Schemas::new();
    let state = collect::<VersionedState<A::View>>(&mut schemas);
    let history = collect::<History<A::Event>>(&mut schemas);
    let body = tagged_commands_schema::<A>(&mut schemas);
    let names = |names: &[&str]| names.join(", ");
    let run = aggregate_operation::<A>(
        format!(
            "Run the command the body names on a {}: {} (201), {} (200)",
            A::TYPE,
            names(<A::CreateCommand as Commands>::NAMES),
            names(<A::UpdateCommand as Commands>::NAMES),
        ),
        "command",
    )
    .request_body(Some(request_body(Ref::from_schema_name(&body).into())))
    .response("201", state_response("Created by a create command", &state))
    .response(
        "200",
        state_response("Changed by an update command", &state),
    );
    let read = aggregate_operation::<A>(
        format!(
            "The state of a {}; ?version=N gives the state after its first N events",
            A::TYPE
        ),
        "state",
    );
    let events = aggregate_operation::<A>(
        format!(
            "The events of a {}, oldest first; ?metadata=true gives envelopes",
            A::TYPE
        ),
        "history",
    );
    let events = events_read::<HistoryQuery>(
        events,
        json_response("The events (or envelopes)", Ref::from_schema_name(&history)),
        "Invalid id or query (VALIDATION_ERROR)",
    );
    let one = format!("{base}/{{id}}");
    let routes = vec![
        (
            one.clone(),
            HttpMethod::Post,
            command_errors(run, true, true),
        ),
        (one, HttpMethod::Get, state_read(read, &state)),
        (format!("{base}/{{id}}/events"), HttpMethod::Get, events),
    ];
    document(auth, routes, schemas)
}

/// The document of [`collection_routes`](crate::collection_routes) of `A` under `prefix`.
pub fn collection_openapi<A: HttpAggregate>(prefix: &str, auth: bool) -> OpenApi {
    let base = collection_path::<A>(prefix);
    let mut schemas = Schemas::new();
    let state = collect::<VersionedState<A::View>>(&mut schemas);
    let creates = CommandSpec::all::<A::CreateCommand>();
    let body: RefOr<Schema> = match creates.as_slice() {
        [only] => {
            schemas.extend(only.schemas().iter().cloned());
            Ref::from_schema_name(only.schema_name()).into()
        }
        _ => {
            let mut found = Vec::new();
            A::CreateCommand::schemas(&mut found);
            schemas.extend(found);
            tagged_schema::<A::CreateCommand>()
        }
    };
    let mut created = state_response("Created: the new aggregate with its version", &state);
    created.headers.insert(
        "Location".to_owned(),
        utoipa::openapi::HeaderBuilder::new()
            .schema(Some(<String as utoipa::PartialSchema>::schema()))
            .description(Some("Where to read it"))
            .build()
            .into(),
    );
    let create = aggregate_operation::<A>(
        format!(
            "Create a {} ({}); the service picks its id",
            A::TYPE,
            <A::CreateCommand as Commands>::NAMES.join(", ")
        ),
        "create",
    )
    .request_body(Some(request_body(body)))
    .response("201", created)
    .response(
        "404",
        error_response("Something the command names does not exist (a domain code)"),
    );
    let read = aggregate_operation::<A>(
        format!(
            "The state of a {}; ?version=N gives the state after its first N events",
            A::TYPE
        ),
        "read",
    );
    let routes = vec![
        (
            base.clone(),
            HttpMethod::Post,
            command_errors(create, false, false),
        ),
        (
            format!("{base}/{{id}}"),
            HttpMethod::Get,
            state_read(read, &state),
        ),
    ];
    document(auth, routes, schemas)
}
