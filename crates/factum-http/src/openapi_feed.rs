//! The document of the feed routes (`feed`) and the subscription routes (`subscriptions`).

use utoipa::PartialSchema;
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, ResponseBuilder};

use crate::openapi::{
    STORE_UNREADABLE, by_name, document, error_response, json_response, operation, query_param,
    with_errors,
};

/// One Server-Sent Event of the stream: its fields as text, as the SSE format carries them.
fn sse_event() -> ObjectBuilder {
    ObjectBuilder::new()
        .property(
            "id",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The event's global position")),
        )
        .property(
            "event",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The event type")),
        )
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The envelope, as JSON text")),
        )
        .required("data")
}

fn feed_params() -> Vec<utoipa::openapi::path::Parameter> {
    let text = String::schema;
    vec![
        query_param(
            "after",
            "Only events after this position (0 by default)".into(),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0))
                .maximum(Some(i64::MAX))
                .build(),
        ),
        query_param(
            "limit",
            format!(
                "At most this many events (1 to {}, {} by default)",
                factum_core::feed::MAX_FEED_LIMIT,
                crate::feed::DEFAULT_FEED_LIMIT
            ),
            u64::schema(),
        ),
        query_param("aggregate_type", "Only this aggregate type".into(), text()),
        query_param("event_type", "Only this event type".into(), text()),
        query_param(
            "correlation_id",
            "Only events of commands of this correlation id".into(),
            text(),
        ),
        query_param(
            "user",
            "Only events of commands this user issued".into(),
            text(),
        ),
    ]
}

fn envelope() -> ObjectBuilder {
    let mut object =
        ObjectBuilder::new().description(Some("An event envelope: payload and metadata as stored"));
    for (name, kind) in [
        ("position", Type::Integer),
        ("event_id", Type::String),
        ("aggregate_type", Type::String),
        ("aggregate_id", Type::String),
        ("version", Type::Integer),
        ("event_type", Type::String),
        ("schema_version", Type::Integer),
        ("recorded_at", Type::String),
        ("metadata", Type::Object),
        ("payload", Type::Object),
    ] {
        object = object
            .property(name, ObjectBuilder::new().schema_type(kind))
            .required(name);
    }
    object
}

/// `GET /events`, `GET /events/stream`, `GET /subscriptions` and
/// `POST /subscriptions/{name}/replay-parked`.
pub fn feed_openapi(auth: bool) -> OpenApi {
    let page_schema = ObjectBuilder::new()
        .property("events", ArrayBuilder::new().items(envelope()))
        .required("events")
        .property("next", ObjectBuilder::new().schema_type(Type::Integer))
        .required("next");
    let mut page = operation(
        "events",
        "Every aggregate's events in position order (the global feed and audit log)",
        "events",
    )
    .response(
        "200",
        json_response("Envelopes, and the position to ask from next", page_schema),
    )
    .response(
        "400",
        error_response("A parameter is malformed or out of range"),
    );
    let mut stream = operation(
        "events",
        "The feed as Server-Sent Events (id: position, event: type, data: envelope); resumes after Last-Event-ID",
        "event_stream",
    )
    .response(
        "200",
        ResponseBuilder::new()
            .description("An endless event stream with keep-alives")
            .content("text/event-stream", Content::new(Some(sse_event())))
            .build(),
    )
    .response("400", error_response("A parameter or Last-Event-ID is malformed"));
    for param in feed_params() {
        page = page.parameter(param.clone());
        stream = stream.parameter(param);
    }
    let list = operation(
        "operations",
        "Every subscription: position, lag, retries and parked events",
        "subscriptions",
    )
    .response(
        "200",
        json_response(
            "The subscriptions",
            ArrayBuilder::new().items(ObjectBuilder::new()),
        ),
    )
    .response("500", error_response(STORE_UNREADABLE));
    let replay = by_name(
        "Hands a subscription's parked events over again",
        "replay_parked",
        "The subscription's name",
    )
    .response(
        "200",
        json_response(
            "The positions handled, and those that failed again",
            ObjectBuilder::new(),
        ),
    );
    let replay = with_errors(
        replay,
        &[
            ("400", "A view projection: rebuild it instead"),
            ("404", "No subscription with this name"),
        ],
    );
    let routes = [
        ("/events", HttpMethod::Get, page),
        ("/events/stream", HttpMethod::Get, stream),
        ("/subscriptions", HttpMethod::Get, list),
        (
            "/subscriptions/{name}/replay-parked",
            HttpMethod::Post,
            replay,
        ),
    ];
    let routes = routes
        .into_iter()
        .map(|(path, method, op)| (path.to_owned(), method, op))
        .collect();
    document(auth, routes, Vec::new())
}
