//! The bank's read side over HTTP, and how each view is kept up to date.
//!
//! | route | does |
//! |---|---|
//! | `GET /views/accounts?filter=owner:eq:Alice&sort=-balance` | accounts by owner and balance (also `version`) |
//! | `GET /views/accounts/{id}` | one account's record: `{"id","owner","balance","version"}` |
//! | `GET /views/movements?filter=kind:eq:deposit` | every movement (by `account_id`, `kind`, `amount`, `version`) |
//! | `GET /views/movements/{account}-{version}` | one movement |
//! | `GET /accounts/{id}/movements` | one account's movements, oldest first (same query string) |
//! | `GET /projections`, `GET /projections/movements` | how far the movements projection is behind |
//!
//! With authentication on, `/views/accounts` shows each caller the accounts they opened (an
//! `admin` all of them), `/views/movements` is for admins, and `/accounts/{id}/movements`
//! for the account's opener and admins (403 for anyone else).
//!
//! How each view is kept (inline or as a projection) and rebuilt: see [`crate::views`].

use factum_core::{CqrsContext, Filter};
use factum_http::{HttpView, owned_by};

use crate::domain::ADMIN_ROLE;
use crate::views::{AccountSummary, Movement};

impl HttpView for AccountSummary {
    const PATH: &'static str = "accounts";

    /// A caller sees the accounts they opened; an admin sees all (the rule of
    /// [`account_access`](crate::domain::account_access)), filtered in the store's query.
    fn visible_to(ctx: &CqrsContext) -> Vec<Filter> {
        owned_by(ctx, "opened_by", ADMIN_ROLE)
    }
}

impl HttpView for Movement {
    const PATH: &'static str = "movements";

    /// Every account's movements at once are for admins: a movement record does not say
    /// who opened its account. Others read their accounts' movements at
    /// `/accounts/{id}/movements`, which checks the account's rule.
    fn read_roles() -> &'static [&'static str] {
        &[ADMIN_ROLE]
    }

    fn default_sort() -> &'static str {
        "account_id,version"
    }
}
