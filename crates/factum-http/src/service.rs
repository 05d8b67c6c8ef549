//! The operations behind the routes of an [`HttpAggregate`], over one engine:
//! [`AggregateService`] reads a command from a JSON body (by the name in the path or in the
//! body's tag field), checks the access policy, and runs it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use factum_core::standard::StandardError;
use factum_core::{
    Access, AccessPolicy, CommandCall, CommandError, CommandHandler, CommandOutcome, Commands,
    CqrsCommandEngine, CqrsContext, EventEnvelope, LoadedAggregate, Remember,
};

use crate::aggregate::HttpAggregate;
use crate::error::{ApiError, clip};
use crate::extract::Precondition;
use crate::spec::CommandSpec;

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
struct CommandTable {
    create: Vec<&'static str>,
    update: Vec<&'static str>,
    /// The fields of each command whose documented body is a closed object: the server
    /// refuses any other, so the document and the server agree even when a domain type
    /// would ignore an extra field.
    closed: HashMap<&'static str, Vec<String>>,
}

/// The operations behind the routes of an [`HttpAggregate`], over one engine. Use it to build
/// routes of your own with the same behaviour.
///
/// Every operation checks the aggregate's [`HttpAggregate::access_policy`] for the caller in
/// its context.
pub struct AggregateService<A: HttpAggregate> {
    engine: CqrsCommandEngine<A>,
    commands: Arc<CommandTable>,
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
        let creates = CommandSpec::all::<A::CreateCommand>();
        let updates = CommandSpec::all::<A::UpdateCommand>();
        let names = |specs: &[CommandSpec]| specs.iter().map(CommandSpec::name).collect();
        let closed = creates
            .iter()
            .chain(&updates)
            .filter_map(|spec| Some((spec.name(), spec.closed_fields()?)))
            .collect();
        Self {
            engine,
            commands: Arc::new(CommandTable {
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

    pub(crate) fn unknown_command(&self, name: &str, status: StandardError) -> ApiError {
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

    /// The field of a body that names the command: the create commands' tag for a create,
    /// the update commands' tag for an update.
    fn tag_of(kind: CommandKind) -> &'static str {
        match kind {
            CommandKind::Create => <A::CreateCommand as Commands>::TAG,
            CommandKind::Update => <A::UpdateCommand as Commands>::TAG,
        }
    }

    /// The command name a tagged body carries in its tag field (the command enums' serde
    /// `tag`, [`Commands::TAG`]): for routes where the body says which command it is. A
    /// missing or non-string tag or an unknown name is a 400 naming the allowed commands.
    pub fn command_name_in<'a>(&self, body: &'a serde_json::Value) -> Result<&'a str, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::validation("the request body must be a JSON object"))?;
        let (create_tag, update_tag) = (
            Self::tag_of(CommandKind::Create),
            Self::tag_of(CommandKind::Update),
        );
        // The two enums may name their tag fields differently: either field may name a
        // command of its own enum.
        if create_tag != update_tag {
            for (tag, kind) in [
                (create_tag, CommandKind::Create),
                (update_tag, CommandKind::Update),
            ] {
                if let Some(serde_json::Value::String(name)) = object.get(tag)
                    && self.command_kind(name) == Some(kind)
                {
                    return Ok(name);
                }
            }
        }
        let tag = create_tag;
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
        let tag = Self::tag_of(kind);
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
            None => match self.engine.load_latest(id).await? {
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
