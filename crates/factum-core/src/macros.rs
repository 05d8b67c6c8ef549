//! Macros for the shapes this workspace's hand-written impls share: builder setters, and
//! `Debug` impls that show some of a type's fields.

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

/// Implements `Debug` for a struct by the fields it names, in that order; `field.method()`
/// shows what the method returns instead (for a field whose value has no useful `Debug`,
/// or should not be printed), and a trailing `..` marks the fields left out, as
/// `finish_non_exhaustive` does:
///
/// ```
/// struct Job {
///     name: String,
///     retries: u32,
///     task: Option<Box<dyn Fn() + Send>>,
///     secret: String,
/// }
///
/// factum_core::debug_fields! { Job { name, retries, task.is_some(), .. } }
///
/// let job = Job { name: "a".into(), retries: 2, task: None, secret: "s".into() };
/// assert_eq!(format!("{job:?}"), r#"Job { name: "a", retries: 2, task: false, .. }"#);
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! debug_fields {
    ($name:ident $(<$($generic:ident),+>)? { $($field:ident $(.$method:ident())?),+ $(,)? }) => {
        impl$(<$($generic),+>)? ::std::fmt::Debug for $name$(<$($generic),+>)? {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field$(.$method())?))+
                    .finish()
            }
        }
    };
    ($name:ident $(<$($generic:ident),+>)? { $($field:ident $(.$method:ident())?),+, .. }) => {
        impl$(<$($generic),+>)? ::std::fmt::Debug for $name$(<$($generic),+>)? {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field$(.$method())?))+
                    .finish_non_exhaustive()
            }
        }
    };
}
