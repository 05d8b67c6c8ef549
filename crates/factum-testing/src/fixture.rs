//! A given/when/then harness for aggregates: given past events, when a command, then the
//! events it records or the error it returns. No store, no engine: it runs the handler on
//! the state the given events fold into, exactly as the engine would.

use std::fmt::Debug;

use factum_core::{CommandHandler, CqrsContext, DomainError};

/// The id the fixture gives the aggregate under test.
pub const TEST_AGGREGATE_ID: &str = "test-aggregate";

/// Starts a test of aggregate `A`.
///
/// ```
/// # use factum_testing::AggregateTestFixture;
/// # async fn demo<A: factum_core::CommandHandler<Services = ()>>(cmd: A::UpdateCommand, e: A::Event) {
/// AggregateTestFixture::<A>::new(())
///     .given(vec![e])
///     .when_update(cmd)
///     .await
///     .inspect_result();
/// # }
/// ```
pub struct AggregateTestFixture<A: CommandHandler> {
    services: A::Services,
    ctx: CqrsContext,
    aggregate_id: String,
}

impl<A: CommandHandler> AggregateTestFixture<A> {
    /// A fixture whose handlers see these services.
    pub fn new(services: A::Services) -> Self {
        Self {
            services,
            ctx: CqrsContext::new().with_request_id("test-request"),
            aggregate_id: TEST_AGGREGATE_ID.to_owned(),
        }
    }

    /// Runs the commands in this context instead of an anonymous one.
    #[must_use]
    pub fn with_context(mut self, ctx: CqrsContext) -> Self {
        self.ctx = ctx;
        self
    }

    /// Uses this aggregate id instead of [`TEST_AGGREGATE_ID`].
    #[must_use]
    pub fn with_aggregate_id(mut self, aggregate_id: impl Into<String>) -> Self {
        self.aggregate_id = aggregate_id.into();
        self
    }

    /// The aggregate has no history.
    pub fn given_no_previous_events(self) -> AggregateTestExecutor<A> {
        self.given(Vec::new())
    }

    /// The aggregate's history.
    pub fn given(self, events: Vec<A::Event>) -> AggregateTestExecutor<A> {
        let mut state = A::with_aggregate_id(self.aggregate_id.clone());
        for event in &events {
            state.apply(event);
        }
        AggregateTestExecutor {
            fixture: self,
            state,
            exists: !events.is_empty(),
        }
    }
}

/// The "when" step.
pub struct AggregateTestExecutor<A: CommandHandler> {
    fixture: AggregateTestFixture<A>,
    state: A,
    exists: bool,
}

impl<A: CommandHandler> AggregateTestExecutor<A> {
    /// The state the given events fold into.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// A create command. With a history, it fails as the engine would: the aggregate
    /// already exists.
    pub async fn when_create(self, command: A::CreateCommand) -> AggregateResultValidator<A> {
        let id = &self.fixture.aggregate_id;
        let result = if self.exists {
            Err(Outcome::Rejected(A::already_exists_error(id)))
        } else {
            self.state
                .handle_create(&command, &self.fixture.services, &self.fixture.ctx)
                .await
                .map_err(|e| Outcome::Rejected(Some(e)))
        };
        AggregateResultValidator::new(self.state, result)
    }

    /// An update command. Without a history, it fails as the engine would: not found.
    pub async fn when_update(self, command: A::UpdateCommand) -> AggregateResultValidator<A> {
        let id = &self.fixture.aggregate_id;
        let result = if self.exists {
            self.state
                .handle_update(&command, &self.fixture.services, &self.fixture.ctx)
                .await
                .map_err(|e| Outcome::Rejected(Some(e)))
        } else {
            Err(Outcome::NotFound(A::not_found_error(id)))
        };
        AggregateResultValidator::new(self.state, result)
    }
}

enum Outcome<E> {
    /// The handler (or the create-on-existing rule) refused; `None` when the aggregate
    /// defines no domain error for "already exists".
    Rejected(Option<E>),
    /// Update of an aggregate with no events; `None` when it defines no domain error.
    NotFound(Option<E>),
}

/// The "then" step.
pub struct AggregateResultValidator<A: CommandHandler> {
    state: A,
    result: Result<Vec<A::Event>, Outcome<A::Error>>,
}

impl<A: CommandHandler> AggregateResultValidator<A> {
    fn new(state: A, result: Result<Vec<A::Event>, Outcome<A::Error>>) -> Self {
        Self { state, result }
    }

    fn describe(&self) -> String {
        match &self.result {
            Ok(events) => format!("events {events:?}"),
            Err(Outcome::Rejected(Some(e)) | Outcome::NotFound(Some(e))) => {
                format!("error {} ({e})", e.code())
            }
            Err(Outcome::Rejected(None)) => "the standard already-exists conflict".to_owned(),
            Err(Outcome::NotFound(None)) => "the standard not-found error".to_owned(),
        }
    }

    /// Asserts the command recorded exactly these events. Returns the state after them.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) -> A {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "the command recorded other events");
                let mut state = self.state;
                for event in &events {
                    state.apply(event);
                }
                state
            }
            Err(_) => panic!("expected events {expected:?}, got {}", self.describe()),
        }
    }

    /// Asserts the command failed with this domain error.
    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error)
    where
        A::Error: PartialEq + Debug,
    {
        match &self.result {
            Err(Outcome::Rejected(Some(e)) | Outcome::NotFound(Some(e))) if *e == expected => {}
            _ => panic!("expected error {expected:?}, got {}", self.describe()),
        }
    }

    /// Asserts the command failed with a domain error of this code.
    #[track_caller]
    pub fn then_expect_error_code(self, code: &str) {
        match &self.result {
            Err(Outcome::Rejected(Some(e)) | Outcome::NotFound(Some(e))) if e.code() == code => {}
            _ => panic!("expected error code {code}, got {}", self.describe()),
        }
    }

    /// Asserts the command failed with a domain error and hands it over for more checks.
    #[track_caller]
    pub fn then_expect_error_matching(self, check: impl FnOnce(&A::Error) -> bool) {
        let description = self.describe();
        match &self.result {
            Err(Outcome::Rejected(Some(e)) | Outcome::NotFound(Some(e))) => {
                assert!(check(e), "the error did not match: {description}");
            }
            _ => panic!("expected a domain error, got {description}"),
        }
    }

    /// The raw result, for checks the helpers do not cover. `Err(None)` stands for a
    /// standard (not domain) error.
    pub fn inspect_result(self) -> Result<Vec<A::Event>, Option<A::Error>> {
        self.result.map_err(|outcome| match outcome {
            Outcome::Rejected(e) | Outcome::NotFound(e) => e,
        })
    }
}
