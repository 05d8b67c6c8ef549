//! [`CommandError`]: what a command returns when it does not run, with the aggregate's own
//! error type in its [`Domain`](CommandError::Domain) case, so a caller `match`es on its
//! enum instead of comparing code strings.

use crate::error::{CqrsError, DomainError, Error};
use crate::store::ExpectedVersion;

/// Why a command of an aggregate with domain error type `E` did not run. Nothing was stored.
///
/// ```
/// use factum_core::{CommandError, define_domain_errors};
///
/// define_domain_errors! {
///     /// Errors of a lamp.
///     pub enum LampError {
///         domain: "LAMP",
///         prefix: 30,
///         /// The lamp is broken.
///         Broken = (1, 409, "LAMP_BROKEN", "the lamp is broken"),
///     }
/// }
///
/// let error: CommandError<LampError> = CommandError::Domain(LampError::Broken);
/// match &error {
///     CommandError::Domain(LampError::Broken) => {}
///     other => panic!("unexpected {other}"),
/// }
/// assert_eq!(error.status(), 409);
/// assert_eq!(error.code(), "LAMP_BROKEN");
/// // Generic code (the HTTP layer) renders it through the core error.
/// assert_eq!(factum_core::Error::from(error).code(), "LAMP_BROKEN");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// A business rule of the aggregate refused the command.
    #[error("{0}")]
    Domain(E),
    /// An update named an aggregate that has no events.
    #[error("{aggregate_type} '{aggregate_id}' not found")]
    NotFound {
        /// The aggregate type.
        aggregate_type: String,
        /// The aggregate id.
        aggregate_id: String,
    },
    /// A create named an aggregate that already has events.
    #[error("{aggregate_type} '{aggregate_id}' already exists")]
    AlreadyExists {
        /// The aggregate type.
        aggregate_type: String,
        /// The aggregate id.
        aggregate_id: String,
    },
    /// The command was to run at a version (`If-Match`) the aggregate is not at.
    #[error("concurrency conflict on {aggregate_type} '{aggregate_id}': expected {expected}, stream is at {}", actual.map_or_else(|| "an unknown version".to_owned(), |v| format!("version {v}")))]
    Conflict {
        /// The aggregate type.
        aggregate_type: String,
        /// The aggregate id.
        aggregate_id: String,
        /// The version the command expected.
        expected: ExpectedVersion,
        /// The aggregate's version, when known.
        actual: Option<u64>,
    },
    /// Other processes kept changing the aggregate: the command was decided as often as the
    /// engine allows and lost every race.
    #[error("{aggregate_type} '{aggregate_id}': gave up after {attempts} conflicting attempts")]
    TooManyConflicts {
        /// The aggregate type.
        aggregate_type: String,
        /// The aggregate id.
        aggregate_id: String,
        /// How many times the command was decided.
        attempts: u32,
    },
    /// The input is malformed (an invalid aggregate id, for example).
    #[error("invalid input: {0}")]
    Validation(String),
    /// A value the command would store does not read back as written.
    #[error("the {what} would not read back as written: {path}: {problem}")]
    Unrepresentable {
        /// What was checked (`MoneyDeposited event`).
        what: String,
        /// Where, as a JSON path (`$.amount`).
        path: String,
        /// What would change.
        problem: String,
    },
    /// Anything else: the store failed, is unreachable or full, a value did not serialize,
    /// an idempotency key is taken.
    #[error(transparent)]
    Store(Error),
}

impl<E: DomainError> CommandError<E> {
    /// The domain error, if a business rule refused the command.
    pub fn domain_error(&self) -> Option<&E> {
        match self {
            Self::Domain(error) => Some(error),
            _ => None,
        }
    }

    /// Whether the command lost to a concurrent change ([`Conflict`](Self::Conflict) or
    /// [`TooManyConflicts`](Self::TooManyConflicts)).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::TooManyConflicts { .. })
    }

    /// Renders the error in the structured client shape, with the codes and statuses
    /// [`Error::to_cqrs_error`] gives the same cases.
    pub fn to_cqrs_error(&self) -> CqrsError {
        use crate::error::standard::StandardError as S;
        match self {
            Self::Domain(error) => error.to_cqrs_error(),
            Self::Store(error) => error.to_cqrs_error(),
            Self::NotFound { .. } => CqrsError::standard(S::NotFound, self.to_string()),
            Self::AlreadyExists { .. } => CqrsError::standard(S::Conflict, self.to_string()),
            Self::Conflict { .. } | Self::TooManyConflicts { .. } => {
                CqrsError::standard(S::ConcurrencyConflict, self.to_string())
            }
            Self::Validation(_) => CqrsError::standard(S::Validation, self.to_string()),
            Self::Unrepresentable { what, path, .. } => {
                CqrsError::standard(S::Unrepresentable, self.to_string())
                    .with_details(serde_json::json!({ "what": what, "path": path }))
            }
        }
    }

    /// The stable code this error shows to clients.
    pub fn code(&self) -> String {
        self.to_cqrs_error().code
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        self.to_cqrs_error().status
    }
}

impl<E: DomainError> From<CommandError<E>> for Error {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Domain(error) => Error::domain(error),
            CommandError::NotFound {
                aggregate_type,
                aggregate_id,
            } => Error::AggregateNotFound {
                aggregate_type,
                aggregate_id,
            },
            CommandError::AlreadyExists {
                aggregate_type,
                aggregate_id,
            } => Error::AggregateAlreadyExists {
                aggregate_type,
                aggregate_id,
            },
            CommandError::Conflict {
                aggregate_type,
                aggregate_id,
                expected,
                actual,
            } => Error::Conflict {
                aggregate_type,
                aggregate_id,
                expected,
                actual,
            },
            CommandError::TooManyConflicts {
                aggregate_type,
                aggregate_id,
                attempts,
            } => Error::TooManyConflicts {
                aggregate_type,
                aggregate_id,
                attempts,
            },
            CommandError::Validation(message) => Error::Validation(message),
            CommandError::Unrepresentable {
                what,
                path,
                problem,
            } => Error::Unrepresentable {
                what,
                path,
                problem,
            },
            CommandError::Store(error) => error,
        }
    }
}

impl<E: DomainError> From<Error> for CommandError<E> {
    /// Sorts a core error into the typed cases; a boxed domain error of type `E` becomes
    /// [`CommandError::Domain`] again.
    fn from(error: Error) -> Self {
        match error {
            Error::Domain(inner) => {
                let is_ours = {
                    let inner: &dyn std::error::Error = inner.as_ref();
                    inner.is::<E>()
                };
                if !is_ours {
                    // Another domain's error (from a view or a service): keep its rendering.
                    return Self::Store(Error::Domain(inner));
                }
                let boxed: Box<dyn std::error::Error + Send + Sync> = inner;
                match boxed.downcast::<E>() {
                    Ok(typed) => Self::Domain(*typed),
                    Err(other) => Self::Store(Error::Store(other)),
                }
            }
            Error::Validation(message) => Self::Validation(message),
            Error::AggregateNotFound {
                aggregate_type,
                aggregate_id,
            } => Self::NotFound {
                aggregate_type,
                aggregate_id,
            },
            Error::AggregateAlreadyExists {
                aggregate_type,
                aggregate_id,
            } => Self::AlreadyExists {
                aggregate_type,
                aggregate_id,
            },
            Error::Conflict {
                aggregate_type,
                aggregate_id,
                expected,
                actual,
            } => Self::Conflict {
                aggregate_type,
                aggregate_id,
                expected,
                actual,
            },
            Error::TooManyConflicts {
                aggregate_type,
                aggregate_id,
                attempts,
            } => Self::TooManyConflicts {
                aggregate_type,
                aggregate_id,
                attempts,
            },
            Error::Unrepresentable {
                what,
                path,
                problem,
            } => Self::Unrepresentable {
                what,
                path,
                problem,
            },
            other => Self::Store(other),
        }
    }
}
