//! SQL text built at run time, and why sending it is safe.
//!
//! sqlx 0.9 runs a `&'static str` as it is and asks any other text to be vouched for
//! ([`AssertSqlSafe`]). This crate's statements are built in one way only: constant text,
//! `$n` placeholders and the store's schema name, which [`validate_schema_name`]
//! admitted (`[a-z_][a-z0-9_]{0,62}`, not `pg_*`) and [`quoted`] then quoted. Every value
//! (ids, payloads, view field names, filter operands) is a bound parameter, never text in the
//! statement. [`trusted`] is the one place that vouches, and so the one place to audit.
//!
//! [`validate_schema_name`]: crate::migrations::validate_schema_name
//! [`quoted`]: crate::migrations::quoted

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// A statement built from constant text, placeholders and the validated schema name (see the
/// module docs). Cloning it is cheap (shared text), so statements are built once per store.
pub(crate) fn trusted(text: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(text)).into_sql_str()
}

/// A struct of [`trusted`] statements built once per store: each field's SQL is the text of
/// a `format!` in which the quoted schema name is the one variable (named in the struct's
/// parentheses), beside constant text. `with schema` adds the quoted name itself as a field.
macro_rules! statements {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($s:ident) $(with $schema:ident)? {
            $($(#[$field_meta:meta])* $field:ident = $sql:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone)]
        $vis struct $name {
            $(
                /// The quoted schema name.
                pub(crate) $schema: String,
            )?
            $($(#[$field_meta])* pub(crate) $field: sqlx::SqlStr,)*
        }

        impl $name {
            pub(crate) fn new($s: &str) -> Self {
                Self {
                    $($schema: $s.to_owned(),)?
                    $($field: $crate::sql::trusted(format!($sql)),)*
                }
            }
        }
    };
}
pub(crate) use statements;
