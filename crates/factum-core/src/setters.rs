//! The one shape of a builder's plain setters, for the builders of this workspace.

/// Writes builder setters that take `self` by value, set one field and return `self`,
/// each marked `#[must_use]` (a setter's result dropped is a setting lost):
///
/// ```
/// struct Options {
///     limit: usize,
///     name: Option<String>,
/// }
///
/// impl Options {
///     factum_core::setters! {
///         /// Sets the limit (at least 1).
///         pub fn with_limit(limit: usize) => limit = limit.max(1);
///         /// Sets the name.
///         pub fn with_name(name: impl Into<String>) => name = Some(name.into());
///     }
/// }
///
/// let options = Options { limit: 5, name: None }.with_limit(0).with_name("a");
/// assert_eq!((options.limit, options.name.as_deref()), (1, Some("a")));
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! setters {
    ($(
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($arg:ident: $ty:ty) => $($field:ident).+ = $value:expr;
    )*) => {
        $(
            $(#[$meta])*
            #[must_use]
            $vis fn $name(mut self, $arg: $ty) -> Self {
                self.$($field).+ = $value;
                self
            }
        )*
    };
}
