//! Aggregate ids: validation, and how the engine picks the id of a new aggregate.

use crate::aggregate::CommandHandler;
use crate::context::CqrsContext;
use crate::error::{Error, Result};

/// The longest aggregate id accepted, in bytes.
pub const MAX_AGGREGATE_ID_LEN: usize = 128;

/// Checks an aggregate id: 1 to 128 characters of `[A-Za-z0-9._:-]`.
///
/// The engine checks every id it is given, so no store ever sees an odd one.
pub fn validate_aggregate_id(aggregate_id: &str) -> Result<()> {
    if aggregate_id.is_empty() {
        return Err(Error::Validation(
            "aggregate id must not be empty".to_owned(),
        ));
    }
    if aggregate_id.len() > MAX_AGGREGATE_ID_LEN {
        return Err(Error::Validation(format!(
            "aggregate id must be at most {MAX_AGGREGATE_ID_LEN} characters"
        )));
    }
    if let Some(bad) = aggregate_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(Error::Validation(format!(
            "aggregate id contains {bad:?}; allowed are letters, digits and . _ : -"
        )));
    }
    Ok(())
}

/// Chooses the id of the aggregate a create command makes.
///
/// The default, [`UuidIdGenerator`], takes a fresh UUID from the context's id source. A
/// generator that derives the id from the command (`user_42_right_7` for a user/right pair)
/// makes a repeated create a conflict instead of a duplicate.
pub trait AggregateIdGenerator<A: CommandHandler>: Send + Sync + 'static {
    /// The id for the aggregate this command creates.
    fn generate(&self, command: &A::CreateCommand, ctx: &CqrsContext) -> Result<String>;
}

/// UUID v4 ids from the context's id source.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidIdGenerator;

impl<A: CommandHandler> AggregateIdGenerator<A> for UuidIdGenerator {
    fn generate(&self, _command: &A::CreateCommand, ctx: &CqrsContext) -> Result<String> {
        Ok(ctx.new_id().to_string())
    }
}

/// A generator from a function of the command.
///
/// ```
/// # use factum_core::{FnIdGenerator, AggregateIdGenerator};
/// # struct Grant { user: u32, right: u32 }
/// let by_pair = FnIdGenerator::new(|cmd: &Grant, _ctx: &factum_core::CqrsContext| {
///     Ok::<_, factum_core::Error>(format!("user_{}_right_{}", cmd.user, cmd.right))
/// });
/// # let _ = by_pair;
/// ```
pub struct FnIdGenerator<F>(F);

impl<F> FnIdGenerator<F> {
    /// Wraps the function.
    pub fn new(generate: F) -> Self {
        Self(generate)
    }
}

impl<A, F> AggregateIdGenerator<A> for FnIdGenerator<F>
where
    A: CommandHandler,
    F: Fn(&A::CreateCommand, &CqrsContext) -> Result<String> + Send + Sync + 'static,
{
    fn generate(&self, command: &A::CreateCommand, ctx: &CqrsContext) -> Result<String> {
        (self.0)(command, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_for_length_and_characters() {
        let longest = "x".repeat(128);
        for good in ["acc-001", "a.b_c:d-E9", &longest] {
            assert!(validate_aggregate_id(good).is_ok(), "{good:?}");
        }
        assert!(validate_aggregate_id("").is_err());
        assert!(validate_aggregate_id(&"x".repeat(129)).is_err());
        for bad in ["a b", "a/b", "é", "a%20", "a\0b", "../x"] {
            assert!(
                matches!(validate_aggregate_id(bad), Err(Error::Validation(_))),
                "{bad:?}"
            );
        }
    }
}
