//! The generic REST surface of one aggregate type: what an aggregate declares to get it
//! ([`HttpAggregate`]), the operations behind the routes ([`AggregateService`]) and the
//! routes themselves ([`aggregate_routes`]).
//!
//! For an aggregate with `PATH = "accounts"` mounted at `/api`:
//!
//! | route | does |
//! |---|---|
//! | `POST /api/accounts/commands/{command}` | a create command, with a generated id → 201 |
//! | `POST /api/accounts/{id}/commands/{command}` | a create command with this id → 201, or an update command → 200 |
//! | `GET /api/accounts/{id}` (`?version=N`) | the state, now or after the first N events; `ETag` = version |
//! | `GET /api/accounts/{id}/events` (`?from_version=&limit=`) | the audit log: event envelopes, paged |
//!
//! Commands answer `{"id", "state", "version"}`. The command name in the path is the serde
//! tag of the command enums: the body's fields are the variant's fields, and the tag field is
//! filled in from the path (a body that names another command is a 400). An unknown command
//! is a 404 whose details list the allowed ones. `If-Match: "N"` makes an update run only at
//! version N (else 412, nothing stored).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use factum_core::standard::StandardError;
use factum_core::{
    Access, AccessPolicy, CommandCall, CommandError, CommandHandler, CommandOutcome,
    CqrsCommandEngine, CqrsContext, EventEnvelope, LoadedAggregate, Remember,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use crate::context::RequestContext;
use crate::error::{ApiError, clip};
use crate::extract::{IfMatch, JsonBody, Precondition, etag};
use crate::idempotency::{CommandReply, Idempotency};

/// The most events one page of the audit log holds.
pub const MAX_PAGE: usize = 1000;
/// The page size of the audit log when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

/// What an aggregate declares to get the generic REST routes and their OpenAPI document.
///
/// Its command enums must be internally tagged serde enums (`#[serde(tag = "type")]`, or
/// another field named by [`COMMAND_TAG`](Self::COMMAND_TAG)): the variant name is the
/// command name in the URL. [`create_commands`](Self::create_commands) and
/// [`update_commands`](Self::update_commands) list those names with the schema of each
/// command's body (the variant's fields); the router accepts exactly these names.
///
/// Domain crates import only `factum-core` and serde, so the OpenAPI schemas are given by
/// types of the HTTP layer: [`View`](Self::View) is the client's view of the state, and
/// [`EventSchema`](Self::EventSchema) documents the events' JSON (it may be a mirror type
/// that derives `ToSchema`; test that the real events deserialize into it).
pub trait HttpAggregate:
    CommandHandler<CreateCommand: DeserializeOwned, UpdateCommand: DeserializeOwned>
{
    /// The collection's path segment, plural: `accounts` gives `/accounts/{id}`.
    const PATH: &'static str;
    /// The field of the command enums holding the command name.
    const COMMAND_TAG: &'static str = "type";
    /// What a client sees of the state.
    type View: Serialize + ToSchema + Send + 'static;
    /// The OpenAPI schema of the events' JSON.
    type EventSchema: ToSchema;

    /// The client's view of the state at a version.
    fn view(&self, version: u64) -> Self::View;

    /// The create commands: name (the serde tag) and body schema of each.
    fn create_commands() -> Vec<CommandSpec>;

    /// The update commands: name (the serde tag) and body schema of each.
    fn update_commands() -> Vec<CommandSpec>;

    /// Which roles each command and read needs, and the rule over the caller and the state
    /// (see [`AccessPolicy`]). Every route of the aggregate, generic or built on
    /// [`AggregateService`], checks it: a refusal is a 403 and stores nothing. Checked for
    /// authenticated callers only. The default lets every authenticated caller do anything.
    fn access_policy() -> AccessPolicy<Self> {
        AccessPolicy::new()
    }
}

/// One command of an [`HttpAggregate`]: its name, a summary, and the schema of its body.
#[derive(Clone)]
pub struct CommandSpec {
    name: &'static str,
    summary: String,
    schema_name: String,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("name", &self.name)
            .field("summary", &self.summary)
            .field("schema_name", &self.schema_name)
            .finish_non_exhaustive()
    }
}

impl CommandSpec {
    /// The command `name` (its serde tag), whose JSON body (without the tag) has the schema
    /// of `T`.
    pub fn new<T: ToSchema>(name: &'static str, summary: impl Into<String>) -> Self {
        let schema_name = T::name().into_owned();
        let mut schemas = vec![(schema_name.clone(), T::schema())];
        T::schemas(&mut schemas);
        Self {
            name,
            summary: summary.into(),
            schema_name,
            schemas,
        }
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

    /// The fields a body may have when its schema is a closed object
    /// (`additionalProperties: false`, as `#[serde(deny_unknown_fields)]` derives); `None`
    /// when the schema allows other fields.
    pub fn closed_fields(&self) -> Option<Vec<String>> {
        let (_, RefOr::T(Schema::Object(object))) = self.schemas.first()? else {
            return None;
        };
        match object.additional_properties.as_deref() {
            Some(AdditionalProperties::FreeForm(false)) => {
                Some(object.properties.keys().cloned().collect())
            }
            _ => None,
        }
    }
}

/// Whether a command creates an aggregate or changes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// A create command.
    Create,
    /// An update command.
    Update,
}

/// A command read from a request.
#[derive(Debug, Clone)]
pub enum ParsedCommand<A: CommandHandler> {
    /// A create command.
    Create {
        /// Its name.
        name: &'static str,
        /// The command.
        command: A::CreateCommand,
    },
    /// An update command.
    Update {
        /// Its name.
        name: &'static str,
        /// The command.
        command: A::UpdateCommand,
    },
}

impl<A: CommandHandler> ParsedCommand<A> {
    /// The command's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create { name, .. } | Self::Update { name, .. } => name,
        }
    }
}

/// A command that ran.
#[derive(Debug, Clone)]
pub struct Executed<A: CommandHandler> {
    /// Whether it created the aggregate (201) or changed it (200).
    pub created: bool,
    /// What the engine reported.
    pub outcome: CommandOutcome<A>,
}

impl<A: CommandHandler> Executed<A> {
    /// 201 for a create, 200 for an update.
    pub fn status(&self) -> StatusCode {
        if self.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        }
    }
}

#[derive(Debug)]
struct Commands {
    create: Vec<&'static str>,
    update: Vec<&'static str>,
    /// The fields of each command whose documented body is a closed object: the server
    /// refuses any other, so the document and the server agree even when a domain type
    /// would ignore an extra field.
    closed: HashMap<&'static str, Vec<String>>,
}

/// The operations behind the generic routes, over one engine. Use it to build routes of your
/// own with the same behaviour (the bank's reference routes do).
///
/// Every operation checks the aggregate's [`HttpAggregate::access_policy`] for the caller in
/// its context.
pub struct AggregateService<A: HttpAggregate> {
    engine: CqrsCommandEngine<A>,
    commands: Arc<Commands>,
    pub(crate) policy: Arc<AccessPolicy<A>>,
}

impl<A: HttpAggregate> Clone for AggregateService<A> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            commands: self.commands.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<A: HttpAggregate> std::fmt::Debug for AggregateService<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateService")
            .field("aggregate_type", &A::TYPE)
            .field("commands", &self.commands)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<A: HttpAggregate> AggregateService<A> {
    /// The service over this engine.
    pub fn new(engine: CqrsCommandEngine<A>) -> Self {
        let (creates, updates) = (A::create_commands(), A::update_commands());
        let names = |specs: &[CommandSpec]| specs.iter().map(CommandSpec::name).collect();
        let closed = creates
            .iter()
            .chain(&updates)
            .filter_map(|spec| Some((spec.name(), spec.closed_fields()?)))
            .collect();
        Self {
            engine,
            commands: Arc::new(Commands {
                create: names(&creates),
                update: names(&updates),
                closed,
            }),
            policy: Arc::new(A::access_policy()),
        }
    }

    /// The same service with another access policy than the aggregate's own.
    #[must_use]
    pub fn with_policy(mut self, policy: AccessPolicy<A>) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// The access policy checked by every operation.
    pub fn policy(&self) -> &AccessPolicy<A> {
        &self.policy
    }

    /// The engine.
    pub fn engine(&self) -> &CqrsCommandEngine<A> {
        &self.engine
    }

    /// Whether `name` is a create or an update command; `None` if it is neither.
    pub fn command_kind(&self, name: &str) -> Option<CommandKind> {
        self.declared(name).map(|(_, kind)| kind)
    }

    fn declared(&self, name: &str) -> Option<(&'static str, CommandKind)> {
        let find = |names: &[&'static str]| names.iter().copied().find(|n| *n == name);
        find(&self.commands.create)
            .map(|n| (n, CommandKind::Create))
            .or_else(|| find(&self.commands.update).map(|n| (n, CommandKind::Update)))
    }

    /// Every command name, create commands first.
    pub fn command_names(&self) -> Vec<&'static str> {
        self.commands
            .create
            .iter()
            .chain(&self.commands.update)
            .copied()
            .collect()
    }

    fn unknown_command(&self, name: &str, status: StandardError) -> ApiError {
        let allowed = self.command_names();
        ApiError::standard(
            status,
            format!(
                "unknown {} command {:?}; expected one of: {}",
                A::TYPE,
                clip(name, 64),
                allowed.join(", ")
            ),
        )
        .with_details(serde_json::json!({ "allowed": allowed }))
    }

    /// The command name a tagged body carries in its [`HttpAggregate::COMMAND_TAG`] field:
    /// for routes where the body says which command it is. A missing or non-string tag or an
    /// unknown name is a 400 naming the allowed commands.
    pub fn command_name_in<'a>(&self, body: &'a serde_json::Value) -> Result<&'a str, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::validation("the request body must be a JSON object"))?;
        let tag = A::COMMAND_TAG;
        let name = match object.get(tag) {
            None => {
                return Err(self.tag_problem(format!("missing field `{tag}` (the command)")));
            }
            Some(serde_json::Value::String(name)) => name.as_str(),
            Some(_) => return Err(self.tag_problem(format!("field `{tag}` must be a string"))),
        };
        match self.command_kind(name) {
            Some(_) => Ok(name),
            None => Err(self.unknown_command(name, StandardError::Validation)),
        }
    }

    fn tag_problem(&self, message: String) -> ApiError {
        let allowed = self.command_names();
        ApiError::validation(format!(
            "{message}; expected one of: {}",
            allowed.join(", ")
        ))
        .with_details(serde_json::json!({ "allowed": allowed }))
    }

    /// Reads the command `name` from a JSON object body: the tag field is set to `name` (a
    /// body whose tag names another command is refused), then the body is deserialized as
    /// the create or update command. Problems are 400s naming the command and the field.
    pub fn parse(&self, name: &str, body: serde_json::Value) -> Result<ParsedCommand<A>, ApiError> {
        let Some((name, kind)) = self.declared(name) else {
            return Err(self.unknown_command(name, StandardError::Validation));
        };
        let serde_json::Value::Object(mut object) = body else {
            return Err(ApiError::validation(
                "the request body must be a JSON object",
            ));
        };
        let tag = A::COMMAND_TAG;
        match object.get(tag) {
            None => {}
            Some(serde_json::Value::String(given)) if given == name => {}
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "the body's `{tag}` is {}, but the command is {name}",
                    clip(&other.to_string(), 64)
                )));
            }
        }
        if let Some(allowed) = self.commands.closed.get(name) {
            let unknown = object
                .keys()
                .find(|key| key.as_str() != tag && !allowed.contains(key));
            if let Some(unknown) = unknown {
                return Err(ApiError::validation(format!(
                    "invalid {name} command: unknown field `{}`; the fields are: {}",
                    clip(unknown, 64),
                    allowed.join(", ")
                ))
                .with_details(serde_json::json!({ "allowed_fields": allowed })));
            }
        }
        object.insert(tag.to_owned(), serde_json::Value::String(name.to_owned()));
        let body = serde_json::Value::Object(object);
        let invalid =
            |e: serde_json::Error| ApiError::validation(format!("invalid {name} command: {e}"));
        Ok(match kind {
            CommandKind::Create => ParsedCommand::Create {
                name,
                command: serde_json::from_value(body).map_err(invalid)?,
            },
            CommandKind::Update => ParsedCommand::Update {
                name,
                command: serde_json::from_value(body).map_err(invalid)?,
            },
        })
    }

    /// Runs a command in the caller's context.
    ///
    /// A create command with an id creates that aggregate (409 if it exists); without one
    /// the engine's id generator picks it. An update command needs an id. With
    /// `Precondition::Version(n)` an update runs only at version n, else 412 and nothing is
    /// stored; a create with any precondition is a 412 (there is no current version to match).
    /// A caller the access policy refuses gets a 403 and nothing is stored.
    pub async fn execute(
        &self,
        id: Option<&str>,
        command: ParsedCommand<A>,
        precondition: Option<Precondition>,
        ctx: &CqrsContext,
    ) -> Result<Executed<A>, ApiError> {
        self.execute_remembering(id, command, precondition, ctx, None)
            .await
    }

    /// [`execute`](Self::execute), writing `remember`'s idempotency record with the
    /// command's events (see [`Remember`]).
    pub(crate) async fn execute_remembering(
        &self,
        id: Option<&str>,
        command: ParsedCommand<A>,
        precondition: Option<Precondition>,
        ctx: &CqrsContext,
        remember: Option<&Remember<'_, A>>,
    ) -> Result<Executed<A>, ApiError> {
        let access = Access::Command(command.name());
        match &command {
            ParsedCommand::Create { .. } => self.authorize_state(ctx, id, access, None)?,
            ParsedCommand::Update { .. } => self.authorize(ctx, id, access).await?,
        }
        match command {
            ParsedCommand::Create { command, .. } => {
                if precondition.is_some() {
                    return Err(ApiError::standard(
                        StandardError::PreconditionFailed,
                        format!(
                            "If-Match cannot hold: a create command makes a new {}",
                            A::TYPE
                        ),
                    ));
                }
                let call = CommandCall::Create {
                    id,
                    command: &command,
                };
                let outcome = self.engine.execute(call, ctx, remember).await?;
                Ok(Executed {
                    created: true,
                    outcome,
                })
            }
            ParsedCommand::Update { command, .. } => {
                let Some(id) = id else {
                    return Err(ApiError::validation(format!(
                        "an update command needs the {} id: POST /{}/{{id}}/commands/{{command}}",
                        A::TYPE,
                        A::PATH
                    )));
                };
                let expected_version = match precondition {
                    None | Some(Precondition::Any) => None,
                    Some(Precondition::Version(expected)) => Some(expected),
                };
                let call = CommandCall::Update {
                    id,
                    command: &command,
                    expected_version,
                };
                let outcome = self
                    .engine
                    .execute(call, ctx, remember)
                    .await
                    .map_err(|error| match (error, expected_version) {
                        (CommandError::Conflict { actual, .. }, Some(expected)) => {
                            ApiError::standard(
                                StandardError::PreconditionFailed,
                                match actual {
                                    Some(actual) => format!(
                                        "{} '{id}' is at version {actual}, not {expected} (If-Match); nothing was changed",
                                        A::TYPE
                                    ),
                                    None => format!(
                                        "{} '{id}' is not at version {expected} (If-Match); nothing was changed",
                                        A::TYPE
                                    ),
                                },
                            )
                            .with_details(serde_json::json!({"expected": expected, "actual": actual}))
                        }
                        (other, _) => other.into(),
                    })?;
                Ok(Executed {
                    created: false,
                    outcome,
                })
            }
        }
    }

    /// The state now (`version` `None`) or after the first `version` events. An aggregate
    /// without events is the aggregate's not-found error (404); version 0 is a 400; a version
    /// above the current one is a 404 naming the current version. A caller the access
    /// policy refuses is a 403 (the rule is judged on the current state).
    pub async fn load(
        &self,
        id: &str,
        version: Option<u64>,
        ctx: &CqrsContext,
    ) -> Result<LoadedAggregate<A>, ApiError> {
        let access = Access::ReadState;
        self.check_roles(ctx, Some(id), access)?;
        match version {
            None => match self.engine.load(id).await? {
                Some(loaded) => {
                    self.authorize_state(ctx, Some(id), access, Some(&loaded.state))?;
                    Ok(loaded)
                }
                None => Err(self.not_found(id)),
            },
            Some(0) => Err(ApiError::validation("version must be at least 1")),
            Some(version) => {
                self.authorize(ctx, Some(id), access).await?;
                Ok(self.engine.load_at_version(id, version).await?)
            }
        }
    }

    pub(crate) fn not_found(&self, id: &str) -> ApiError {
        match A::not_found_error(id) {
            Some(error) => ApiError::domain(&error),
            None => factum_core::Error::AggregateNotFound {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: id.to_owned(),
            }
            .into(),
        }
    }

    /// Events with version `>= from_version`, at most `limit` of them. An aggregate without
    /// events is a 404; `from_version` 0 and `limit` 0 are 400s; a caller the access policy
    /// refuses is a 403.
    pub async fn history(
        &self,
        id: &str,
        from_version: u64,
        limit: Option<usize>,
        ctx: &CqrsContext,
    ) -> Result<Vec<EventEnvelope<A::Event>>, ApiError> {
        self.authorize(ctx, Some(id), Access::ReadHistory).await?;
        if from_version == 0 {
            return Err(ApiError::validation("from_version must be at least 1"));
        }
        // Documented as an int64, as the stores keep versions.
        if i64::try_from(from_version).is_err() {
            return Err(ApiError::validation(format!(
                "from_version must be at most {}",
                i64::MAX
            )));
        }
        if limit == Some(0) {
            return Err(ApiError::validation("limit must be at least 1"));
        }
        let events = self.engine.events(id, from_version, limit).await?;
        if events.is_empty() && self.engine.store().stream_version(A::TYPE, id).await? == 0 {
            return Err(self.not_found(id));
        }
        Ok(events)
    }
}

/// The reply to a command or a state read of the generic routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateBody<V> {
    /// The aggregate id.
    pub id: String,
    /// The state, as [`HttpAggregate::view`] renders it.
    pub state: V,
    /// The aggregate's version (the `ETag`).
    pub version: u64,
}

impl<V> StateBody<V> {
    /// The body for an aggregate at a version.
    pub fn of<A: HttpAggregate<View = V>>(id: &str, state: &A, version: u64) -> Self {
        Self {
            id: id.to_owned(),
            state: state.view(version),
            version,
        }
    }
}

/// One stored event with everything the store knows about it: the audit log's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeBody<E> {
    /// The event's unique id.
    pub event_id: uuid::Uuid,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The version within the aggregate: 1, 2, 3, ...
    pub version: u64,
    /// The store-wide position, in commit order.
    pub position: u64,
    /// The stable event type name.
    pub event_type: String,
    /// When it was recorded, RFC 3339 in UTC.
    pub recorded_at: String,
    /// The user whose command caused it; `null` for anonymous callers.
    pub user_id: Option<String>,
    /// The request that carried the command.
    pub request_id: Option<String>,
    /// The conversation the request belongs to.
    pub correlation_id: Option<String>,
    /// The message that caused it, if known.
    pub causation_id: Option<String>,
    /// Free-form metadata recorded with it.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The event.
    pub payload: E,
}

impl<E> From<EventEnvelope<E>> for EnvelopeBody<E> {
    fn from(envelope: EventEnvelope<E>) -> Self {
        let meta = envelope.metadata;
        Self {
            event_id: envelope.event_id,
            aggregate_type: envelope.aggregate_type,
            aggregate_id: envelope.aggregate_id,
            version: envelope.version,
            position: envelope.position,
            event_type: envelope.event_type,
            recorded_at: envelope
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            user_id: meta.user_id,
            request_id: meta.request_id,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            metadata: meta.extra.into_iter().collect(),
            payload: envelope.payload,
        }
    }
}

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage<E> {
    /// The events, in version order.
    pub events: Vec<EnvelopeBody<E>>,
    /// The `from_version` of the next page; `null` when this page is the last.
    pub next_from_version: Option<u64>,
}

/// Query of `GET /{type}/{id}`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// Time travel: the state after the first `version` events (at least 1).
    #[param(minimum = 1)]
    pub version: Option<u64>,
}

/// Query of `GET /{type}/{id}/events`.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The first version to return (default 1).
    #[param(minimum = 1)]
    pub from_version: Option<u64>,
    /// How many events at most (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A JSON response with an `ETag` of the version.
pub fn with_etag(status: StatusCode, version: u64, body: impl Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The generic routes of `A`, under `{prefix}/{A::PATH}` (`prefix` is `""` or like `/api`).
pub fn aggregate_routes<A: HttpAggregate>(prefix: &str, engine: CqrsCommandEngine<A>) -> Router {
    let base = collection_path::<A>(prefix);
    let service = AggregateService::new(engine);
    Router::new()
        .route(
            &format!("{base}/commands/{{command}}"),
            post(create_generated::<A>),
        )
        .route(
            &format!("{base}/{{id}}/commands/{{command}}"),
            post(run_command::<A>),
        )
        .route(&format!("{base}/{{id}}"), get(read_state::<A>))
        .route(&format!("{base}/{{id}}/events"), get(read_events::<A>))
        .with_state(RouteState {
            service,
            base: Arc::from(base.as_str()),
        })
}

/// `{prefix}/{A::PATH}` with one leading slash and no trailing one.
pub(crate) fn collection_path<A: HttpAggregate>(prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() || prefix.starts_with('/') {
        prefix.to_owned()
    } else {
        format!("/{prefix}")
    };
    format!("{prefix}/{}", A::PATH.trim_matches('/'))
}

struct RouteState<A: HttpAggregate> {
    service: AggregateService<A>,
    base: Arc<str>,
}

impl<A: HttpAggregate> Clone for RouteState<A> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            base: self.base.clone(),
        }
    }
}

/// The reply to a command of the generic routes: `{"id","state","version"}` with its `ETag`,
/// and a `Location` for a create.
fn command_reply<A: HttpAggregate>(
    base: &str,
    created: bool,
    id: &str,
    state: &A,
    version: u64,
) -> serde_json::Result<CommandReply> {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = CommandReply::json(status, &StateBody::of(id, state, version))?
        .with_header(header::ETAG, &etag(version));
    Ok(if created {
        reply.with_header(header::LOCATION, &format!("{base}/{id}"))
    } else {
        reply
    })
}

async fn create_generated<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<String>, PathRejection>,
    IfMatch(precondition): IfMatch,
    Idempotency(idempotency): Idempotency,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Path(command) = path?;
    let service = &state.service;
    match service.command_kind(&command) {
        None => return Err(service.unknown_command(&command, StandardError::NotFound)),
        Some(CommandKind::Update) => {
            return Err(ApiError::validation(format!(
                "{command} is an update command: POST {}/{{id}}/commands/{command}",
                state.base
            )));
        }
        Some(CommandKind::Create) => {}
    }
    let parsed = service.parse(&command, body)?;
    let base = &state.base;
    service
        .execute_idempotent(
            None,
            parsed,
            precondition,
            &ctx,
            idempotency.as_ref(),
            |created, id, aggregate: &A, version| {
                command_reply(base, created, id, aggregate, version)
            },
        )
        .await
}

async fn run_command<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<(String, String)>, PathRejection>,
    IfMatch(precondition): IfMatch,
    Idempotency(idempotency): Idempotency,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Path((id, command)) = path?;
    let service = &state.service;
    if service.command_kind(&command).is_none() {
        return Err(service.unknown_command(&command, StandardError::NotFound));
    }
    factum_core::validate_aggregate_id(&id)?;
    let parsed = service.parse(&command, body)?;
    let base = &state.base;
    service
        .execute_idempotent(
            Some(&id),
            parsed,
            precondition,
            &ctx,
            idempotency.as_ref(),
            |created, id, aggregate: &A, version| {
                command_reply(base, created, id, aggregate, version)
            },
        )
        .await
}

async fn read_state<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let Query(query) = query?;
    let loaded = state.service.load(&id, query.version, &ctx).await?;
    Ok(with_etag(
        StatusCode::OK,
        loaded.version,
        StateBody::of(&id, &loaded.state, loaded.version),
    ))
}

async fn read_events<A: HttpAggregate>(
    State(state): State<RouteState<A>>,
    RequestContext(ctx): RequestContext,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit > MAX_PAGE {
        return Err(ApiError::validation(format!(
            "limit must be at most {MAX_PAGE}"
        )));
    }
    let events = state
        .service
        .history(&id, query.from_version.unwrap_or(1), Some(limit), &ctx)
        .await?;
    let next_from_version = match events.last() {
        Some(last) if events.len() == limit => Some(last.version + 1),
        _ => None,
    };
    let page = EventPage {
        events: events.into_iter().map(EnvelopeBody::from).collect(),
        next_from_version,
    };
    Ok(axum::Json(page).into_response())
}
