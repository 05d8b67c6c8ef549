//! Authorization: who may do what to an aggregate.
//!
//! An [`AccessPolicy`] says which roles (or scopes) each command and each kind of read needs,
//! and may hold a rule ([`Authorizer`]) over the caller and the aggregate's state: "only the
//! user who opened the account, or an admin". The HTTP layer checks it before a command runs
//! (a refusal stores nothing) and before a read answers.
//!
//! Checks apply to callers with a user: a context without one is trusted code (a background
//! job, a test) or a service running without authentication, where every caller is
//! anonymous and nothing can tell callers apart. With authentication on, every request that
//! reaches a protected route has a user.
//!
//! ```
//! use factum_core::{Access, AccessPolicy, CqrsContext};
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! # struct Doc { id: String, author: Option<String> }
//! # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
//! # struct Written;
//! # impl factum_core::Event for Written { fn event_type(&self) -> &'static str { "Written" } }
//! # impl factum_core::Aggregate for Doc {
//! #     const TYPE: &'static str = "doc";
//! #     type Event = Written;
//! #     type Error = factum_core::CqrsError;
//! #     fn with_aggregate_id(id: String) -> Self { Self { id, author: None } }
//! #     fn aggregate_id(&self) -> &str { &self.id }
//! #     fn apply(&mut self, _: &Written) {}
//! # }
//! let policy = AccessPolicy::<Doc>::new()
//!     .command("Publish", ["editor"])
//!     .rule(|ctx: &CqrsContext, _: Access<'_>, doc: Option<&Doc>| {
//!         doc.is_none_or(|doc| doc.author.as_deref() == ctx.user_id())
//!     });
//! let bob = CqrsContext::new().with_user("bob");
//! assert!(policy.check_roles(&bob, Access::Command("Publish")).is_err());
//! let editor = bob.clone().with_roles(["editor"]);
//! assert!(policy.check_roles(&editor, Access::Command("Publish")).is_ok());
//! let alices = Doc { id: "d1".into(), author: Some("alice".into()) };
//! assert!(policy.check_rule(&editor, Access::ReadState, Some(&alices)).is_err());
//! // Without a user (no authentication), nothing is checked.
//! assert!(policy.check_roles(&CqrsContext::new(), Access::Command("Publish")).is_ok());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::context::CqrsContext;

/// What a caller attempts on one aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access<'a> {
    /// Run the command of this name (a create command sees no state).
    Command(&'a str),
    /// Read the state.
    ReadState,
    /// Read the events (the audit log).
    ReadHistory,
    /// Read the aggregate's records of this child view.
    ReadView(&'a str),
}

impl fmt::Display for Access<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command(name) => write!(f, "run {name} on"),
            Self::ReadState => f.write_str("read"),
            Self::ReadHistory => f.write_str("read the events of"),
            Self::ReadView(view) => write!(f, "read the {view} of"),
        }
    }
}

/// A rule over the caller, what it attempts and the aggregate's state (`None` for a create
/// command, or for an aggregate without events). Closures of that shape are rules.
pub trait Authorizer<A: Aggregate>: Send + Sync + 'static {
    /// Whether `ctx`'s caller may do `access` to the aggregate in `state`.
    fn allows(&self, ctx: &CqrsContext, access: Access<'_>, state: Option<&A>) -> bool;
}

impl<A, F> Authorizer<A> for F
where
    A: Aggregate,
    F: Fn(&CqrsContext, Access<'_>, Option<&A>) -> bool + Send + Sync + 'static,
{
    fn allows(&self, ctx: &CqrsContext, access: Access<'_>, state: Option<&A>) -> bool {
        self(ctx, access, state)
    }
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denied {
    /// The access needs one of these roles and the caller holds none.
    MissingRole {
        /// The roles, any one of which would do.
        any_of: Vec<String>,
    },
    /// The aggregate's rule refuses the caller.
    Rule,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingRole { any_of } => {
                write!(f, "this needs one of the roles: {}", any_of.join(", "))
            }
            Self::Rule => f.write_str("the caller may not access this aggregate"),
        }
    }
}

/// Which roles each command and read of an aggregate needs (any one of the listed roles; an
/// access with none listed is open to every authenticated caller), and an optional rule
/// over the state. See the module docs.
pub struct AccessPolicy<A> {
    commands: BTreeMap<String, Vec<String>>,
    state: Vec<String>,
    history: Vec<String>,
    views: BTreeMap<String, Vec<String>>,
    rule: Option<Arc<dyn Authorizer<A>>>,
}

impl<A> Clone for AccessPolicy<A> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
            state: self.state.clone(),
            history: self.history.clone(),
            views: self.views.clone(),
            rule: self.rule.clone(),
        }
    }
}

impl<A> Default for AccessPolicy<A> {
    fn default() -> Self {
        Self {
            commands: BTreeMap::new(),
            state: Vec::new(),
            history: Vec::new(),
            views: BTreeMap::new(),
            rule: None,
        }
    }
}

crate::debug_fields! { AccessPolicy<A> { commands, state, history, views, rule.is_some() } }

fn owned<I: IntoIterator<Item = R>, R: Into<String>>(roles: I) -> Vec<String> {
    roles.into_iter().map(Into::into).collect()
}

impl<A: Aggregate> AccessPolicy<A> {
    /// A policy that lets every authenticated caller do everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// The command `name` needs one of `roles`.
    #[must_use]
    pub fn command<I, R>(mut self, name: impl Into<String>, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.commands.insert(name.into(), owned(roles));
        self
    }

    /// Reading the state needs one of `roles`.
    #[must_use]
    pub fn read_state<I: IntoIterator<Item = R>, R: Into<String>>(mut self, roles: I) -> Self {
        self.state = owned(roles);
        self
    }

    /// Reading the events needs one of `roles`.
    #[must_use]
    pub fn read_history<I: IntoIterator<Item = R>, R: Into<String>>(mut self, roles: I) -> Self {
        self.history = owned(roles);
        self
    }

    /// Reading the aggregate's records of child view `view` needs one of `roles`.
    #[must_use]
    pub fn read_view<I, R>(mut self, view: impl Into<String>, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.views.insert(view.into(), owned(roles));
        self
    }

    /// Adds the rule over the caller and the state (replacing any earlier one).
    #[must_use]
    pub fn rule(mut self, rule: impl Authorizer<A>) -> Self {
        self.rule = Some(Arc::new(rule));
        self
    }

    /// Whether the policy has a rule over the state (so a check needs the state loaded).
    pub fn has_rule(&self) -> bool {
        self.rule.is_some()
    }

    /// The roles `access` needs, any one of them; empty when any caller will do.
    pub fn required_roles(&self, access: Access<'_>) -> &[String] {
        let roles = match access {
            Access::Command(name) => self.commands.get(name),
            Access::ReadState => Some(&self.state),
            Access::ReadHistory => Some(&self.history),
            Access::ReadView(view) => self.views.get(view),
        };
        roles.map_or(&[], Vec::as_slice)
    }

    /// Checks the roles `access` needs (no state needed: done before anything is loaded).
    pub fn check_roles(&self, ctx: &CqrsContext, access: Access<'_>) -> Result<(), Denied> {
        if ctx.user_id().is_none() {
            return Ok(());
        }
        let needed = self.required_roles(access);
        if needed.is_empty() || needed.iter().any(|role| ctx.has_role(role)) {
            Ok(())
        } else {
            Err(Denied::MissingRole {
                any_of: needed.to_vec(),
            })
        }
    }

    /// Checks the rule, if any, against the state.
    pub fn check_rule(
        &self,
        ctx: &CqrsContext,
        access: Access<'_>,
        state: Option<&A>,
    ) -> Result<(), Denied> {
        match &self.rule {
            Some(rule) if ctx.user_id().is_some() && !rule.allows(ctx, access, state) => {
                Err(Denied::Rule)
            }
            _ => Ok(()),
        }
    }
}
