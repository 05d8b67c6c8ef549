//! Authorization on the routes of an aggregate: [`AggregateService`] checks the aggregate's
//! [`AccessPolicy`](factum_core::AccessPolicy) for the caller of each operation.
//!
//! Roles are checked first (nothing is loaded for a caller without the role). The rule, if
//! the policy has one, is judged on the aggregate's current state, loaded before the
//! command runs; a command that the rule refuses is a 403 and stores nothing. The rule and
//! the command see the state at two moments (and the rule may see this process's cached
//! state, behind another process's latest commands), so a rule should rest on facts a
//! command cannot change (who opened an account), not on ones a concurrent command can.

use factum_core::{Access, CqrsContext, Denied};

use crate::aggregate::HttpAggregate;
use crate::error::{ApiError, clip};
use crate::service::AggregateService;

impl<A: HttpAggregate> AggregateService<A> {
    /// Checks that `ctx`'s caller may do `access` to the aggregate `id` (`None`: one not
    /// created yet): the roles, then the rule over the current state (loaded only when the
    /// policy has a rule; an aggregate without events is judged without state). A refusal
    /// is a 403. Use it in routes of your own that reach an aggregate another way.
    pub async fn authorize(
        &self,
        ctx: &CqrsContext,
        id: Option<&str>,
        access: Access<'_>,
    ) -> Result<(), ApiError> {
        self.check_roles(ctx, id, access)?;
        if !self.policy.has_rule() || ctx.user_id().is_none() {
            return Ok(());
        }
        let loaded = match id {
            // The cached state is enough for a rule on facts commands do not change.
            Some(id) => self.engine().load_cached(id).await?,
            None => None,
        };
        self.authorize_state(ctx, id, access, loaded.as_ref().map(|l| &l.state))
    }

    /// Checks the roles `access` needs.
    pub(crate) fn check_roles(
        &self,
        ctx: &CqrsContext,
        id: Option<&str>,
        access: Access<'_>,
    ) -> Result<(), ApiError> {
        self.policy
            .check_roles(ctx, access)
            .map_err(|denied| self.denied(ctx, id, access, &denied))
    }

    /// Checks the roles and the rule against a state already at hand.
    pub(crate) fn authorize_state(
        &self,
        ctx: &CqrsContext,
        id: Option<&str>,
        access: Access<'_>,
        state: Option<&A>,
    ) -> Result<(), ApiError> {
        self.check_roles(ctx, id, access)?;
        self.policy
            .check_rule(ctx, access, state)
            .map_err(|denied| self.denied(ctx, id, access, &denied))
    }

    fn denied(
        &self,
        ctx: &CqrsContext,
        id: Option<&str>,
        access: Access<'_>,
        denied: &Denied,
    ) -> ApiError {
        let user = clip(ctx.user_id().unwrap_or("anonymous"), 128);
        let target = match id {
            Some(id) => format!("{} '{}'", A::TYPE, clip(id, 128)),
            None => format!("a new {}", A::TYPE),
        };
        let error = ApiError::forbidden(format!("{user} may not {access} {target}: {denied}"));
        match denied {
            Denied::MissingRole { any_of } => {
                error.with_details(serde_json::json!({ "required_roles": any_of }))
            }
            _ => error,
        }
    }
}
