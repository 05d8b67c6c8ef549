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
