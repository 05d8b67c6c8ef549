//! The read side over HTTP: routes that query a [`View`]'s records ([`HttpView`],
//! [`view_routes`], [`child_view_routes`]).
//!
//! For a view with `PATH = "accounts"` mounted at `/views`, and a child view `movements` of
//! the aggregate at `/accounts`:
//!
//! | route | does |
//! |---|---|
//! | `GET /views/accounts?filter=&sort=&page=&page_size=` | a page of records: `{items, total, page, page_size}` |
//! | `GET /views/accounts/{id}` | one record; 404 when there is none |
//! | `GET /accounts/{id}/movements` (same query) | the records of one aggregate; 404 when the aggregate has no events |
//!
//! `filter` is a comma-separated list of `field:op:value` (`op` one of eq, ne, lt, lte, gt,
//! gte, in, contains; `in` takes `a|b|c`), `sort` a comma-separated list of fields, each
//! optionally prefixed by `-` for descending. Only the fields the view declares
//! ([`View::fields`]) are accepted: anything else (an unknown field or operator, a value of
//! the wrong type, a page of 0 or a `page_size` over [`MAX_PAGE_SIZE`]) is a 400 in the
//! structured error shape, whose details list the view's fields. A query never reaches a
//! store before it is validated, and stores bind every value as a parameter.
//!
//! Authorization: a view's own routes may need roles ([`HttpView::read_roles`], else 403)
//! and show each caller only some records ([`HttpView::visible_to`]): those filters join
//! the query itself, so the store counts and pages over the visible records only, and a
//! record asked for by id that the caller may not see is a 403. A child view's route under
//! its aggregate is governed by the aggregate's access policy instead ([`Access::ReadView`],
//! roles and rule): a caller who may read the aggregate sees all its records there.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use factum_core::{
    Access, Aggregate, CommandHandler, CqrsContext, EventStore, FieldKind, Filter, FilterOp,
    FilterValue, MAX_PAGE_SIZE, Page, QueryLimits, View, ViewField, ViewQuery, ViewRecord,
    ViewStore,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::aggregate::HttpAggregate;
use crate::context::RequestContext;
use crate::error::{ApiError, Error, Result, clip};
use crate::extract::{Params, PathId};
use crate::service::AggregateService;

/// What a [`View`] declares to be served over HTTP.
///
/// The record's OpenAPI schema is the view's own (`ToSchema`, derived in the domain crate
/// behind its `openapi` feature with `cfg_attr`), so no second description of it exists.
pub trait HttpView: View + ToSchema {
    /// The collection's path segment: `accounts` gives `/views/accounts/{id}`, and for a
    /// child view `movements` gives `/accounts/{id}/movements`.
    const PATH: &'static str = <Self as View>::TYPE;
    /// The sort used when a request gives none (same syntax as `?sort=`; `""` sorts by
    /// record id). A child view of one record per event sorts by `version`, say.
    fn default_sort() -> &'static str {
        ""
    }

    /// The roles any one of which a caller needs to read this view's own routes (empty:
    /// every authenticated caller). Checked for authenticated callers only. A child view's
    /// route under its aggregate is governed by the aggregate's access policy instead
    /// ([`AccessPolicy::read_view`](factum_core::AccessPolicy::read_view)).
    fn read_roles() -> &'static [&'static str] {
        &[]
    }

    /// What of this view `ctx`'s caller may see on the view's own routes, as filters added
    /// to every query of it (over fields of [`View::fields`]): `owner eq <the caller>`
    /// unless an admin, say. Called for authenticated callers only; the default shows
    /// everything.
    fn visible_to(ctx: &CqrsContext) -> Vec<Filter> {
        let _ = ctx;
        Vec::new()
    }
}

/// The usual [`HttpView::visible_to`]: a caller sees the records whose `field` is their user
/// id; a caller with `admin_role` sees every record.
///
/// ```
/// use factum_core::{CqrsContext, FilterValue};
///
/// let bob = CqrsContext::new().with_user("bob");
/// let filters = factum_http::owned_by(&bob, "opened_by", "admin");
/// assert_eq!(filters[0].field, "opened_by");
/// assert_eq!(filters[0].value, FilterValue::Text("bob".into()));
/// assert!(factum_http::owned_by(&bob.with_roles(["admin"]), "opened_by", "admin").is_empty());
/// ```
pub fn owned_by(ctx: &CqrsContext, field: &str, admin_role: &str) -> Vec<Filter> {
    match ctx.user_id() {
        Some(user) if !ctx.has_role(admin_role) => vec![Filter {
            field: field.to_owned(),
            op: FilterOp::Eq,
            value: FilterValue::Text(user.to_owned()),
        }],
        _ => Vec::new(),
    }
}

/// Checks the view's roles and returns the filters limiting what the caller sees.
fn visibility<V: HttpView>(ctx: &CqrsContext) -> Result<Vec<Filter>, ApiError> {
    if ctx.user_id().is_none() {
        return Ok(Vec::new());
    }
    let roles = V::read_roles();
    if !roles.is_empty() && !roles.iter().any(|role| ctx.has_role(role)) {
        return Err(ApiError::forbidden(format!(
            "{} may not read the {} view: this needs one of the roles: {}",
            clip(ctx.user_id().unwrap_or_default(), 128),
            V::TYPE,
            roles.join(", ")
        ))
        .with_details(serde_json::json!({ "required_roles": roles })));
    }
    Ok(V::visible_to(ctx))
}

/// The query string of the view routes, before it is validated against the view's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ViewListQuery {
    /// `field:op:value,...`.
    pub filter: Option<String>,
    /// `field,-field,...`.
    pub sort: Option<String>,
    /// The page, from 1 (default 1).
    pub page: Option<u32>,
    /// Records per page, 1 to [`MAX_PAGE_SIZE`] (default 50).
    pub page_size: Option<u32>,
}

impl ViewListQuery {
    /// The validated [`ViewQuery`] for view `V`, or a 400 naming the problem (the details
    /// list the view's fields and the operators), with the default [`QueryLimits`].
    pub fn to_query<V: HttpView>(&self) -> Result<ViewQuery, ApiError> {
        self.to_query_limited::<V>(QueryLimits::default())
    }

    /// [`to_query`](Self::to_query) with these limits on the number of clauses.
    pub fn to_query_limited<V: HttpView>(
        &self,
        limits: QueryLimits,
    ) -> Result<ViewQuery, ApiError> {
        let sort = match self.sort.as_deref() {
            Some(sort) if !sort.is_empty() => sort,
            _ => V::default_sort(),
        };
        ViewQuery::parse_limited(
            self.filter.as_deref(),
            Some(sort),
            self.page,
            self.page_size,
            V::fields(),
            limits,
        )
        .map_err(|error| match error {
            factum_core::Error::Validation(message) => {
                // The message may quote what the client sent: keep it short.
                ApiError::validation(format!(
                    "invalid {} query: {}",
                    V::TYPE,
                    clip(&message, 200)
                ))
                .with_details(query_details(V::fields(), limits))
            }
            other => other.into(),
        })
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Number => "number",
        FieldKind::Boolean => "boolean",
    }
}

fn operators(kind: FieldKind) -> &'static [&'static str] {
    match kind {
        FieldKind::Text => &["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains"],
        FieldKind::Number => &["eq", "ne", "lt", "lte", "gt", "gte", "in"],
        FieldKind::Boolean => &["eq", "ne", "in"],
    }
}

/// The details of a rejected query: what the view accepts.
fn query_details(fields: &[ViewField], limits: QueryLimits) -> serde_json::Value {
    let fields: Vec<serde_json::Value> = fields
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "kind": kind_name(f.kind),
                "filterable": f.filterable,
                "sortable": f.sortable,
                "operators": if f.filterable { operators(f.kind) } else { &[] },
            })
        })
        .collect();
    serde_json::json!({
        "fields": fields,
        "max_page_size": MAX_PAGE_SIZE,
        "max_clauses": limits.max_clauses,
        "max_in_values": limits.max_in_values,
    })
}

/// A human description of a view's queryable fields, for the OpenAPI document.
pub(crate) fn describe_fields(fields: &[ViewField]) -> String {
    if fields.is_empty() {
        return "none".to_owned();
    }
    fields
        .iter()
        .map(|f| {
            let mut uses = Vec::new();
            if f.filterable {
                uses.push(format!("filter: {}", operators(f.kind).join("/")));
            }
            if f.sortable {
                uses.push("sort".to_owned());
            }
            format!("`{}` ({}; {})", f.name, kind_name(f.kind), uses.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `{prefix}/{segment}` with one leading slash and no trailing one.
pub(crate) fn join_path(prefix: &str, segment: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() || prefix.starts_with('/') {
        prefix.to_owned()
    } else {
        format!("/{prefix}")
    };
    format!("{prefix}/{}", segment.trim_matches('/'))
}

/// The view side of a store, or the startup error saying the store keeps no views.
pub fn view_store_of(store: &Arc<dyn EventStore>, view: &str) -> Result<Arc<dyn ViewStore>> {
    store
        .clone()
        .into_view_store()
        .ok_or_else(|| Error::ViewsUnsupported {
            view: view.to_owned(),
        })
}

struct ViewState {
    views: Arc<dyn ViewStore>,
    limits: QueryLimits,
}

struct ChildState<A: HttpAggregate> {
    events: Arc<dyn EventStore>,
    views: Arc<dyn ViewStore>,
    service: AggregateService<A>,
    limits: QueryLimits,
}

fn decode_page<V: View>(page: Page<ViewRecord>) -> Result<Page<V>, ApiError> {
    Ok(page.try_map(|record| record.decode::<V>())?)
}

/// `GET {prefix}/{V::PATH}` (a page of records) and `GET {prefix}/{V::PATH}/{id}` (one
/// record), over the view side of `store`, with the default [`QueryLimits`]. A store that
/// keeps no views is an [`Error::ViewsUnsupported`].
pub fn view_routes<V: HttpView>(prefix: &str, store: &Arc<dyn EventStore>) -> Result<Router> {
    view_routes_limited::<V>(prefix, store, QueryLimits::default())
}

/// [`view_routes`] whose queries may have at most these many clauses (400 above).
pub fn view_routes_limited<V: HttpView>(
    prefix: &str,
    store: &Arc<dyn EventStore>,
    limits: QueryLimits,
) -> Result<Router> {
    let base = join_path(prefix, V::PATH);
    let state = Arc::new(ViewState {
        views: view_store_of(store, V::TYPE)?,
        limits,
    });
    Ok(Router::new()
        .route(&base, get(list_records::<V>))
        .route(&format!("{base}/{{id}}"), get(get_record::<V>))
        .with_state(state))
}

/// `GET {prefix}/{A::PATH}/{id}/{V::PATH}`: the records of view `V` that belong to one
/// aggregate (a child view's records: an account's movements, a list's to-dos), with the
/// same query string as the list route. An aggregate without events is the aggregate's
/// not-found error (404); one without records is an empty page. `service` (the aggregate's)
/// checks that the caller may read this aggregate's records.
pub fn child_view_routes<V>(
    prefix: &str,
    store: &Arc<dyn EventStore>,
    service: AggregateService<V::Aggregate>,
) -> Result<Router>
where
    V: HttpView,
    V::Aggregate: HttpAggregate,
{
    child_view_routes_limited::<V>(prefix, store, service, QueryLimits::default())
}

/// [`child_view_routes`] whose queries may have at most these many clauses (400 above).
pub fn child_view_routes_limited<V>(
    prefix: &str,
    store: &Arc<dyn EventStore>,
    service: AggregateService<V::Aggregate>,
    limits: QueryLimits,
) -> Result<Router>
where
    V: HttpView,
    V::Aggregate: HttpAggregate,
{
    let base = join_path(
        &join_path(prefix, <V::Aggregate as HttpAggregate>::PATH),
        "{id}",
    );
    let state = Arc::new(ChildState {
        events: store.clone(),
        views: view_store_of(store, V::TYPE)?,
        service,
        limits,
    });
    Ok(Router::new()
        .route(&join_path(&base, V::PATH), get(list_children::<V>))
        .with_state(state))
}

async fn list_records<V: HttpView>(
    State(state): State<Arc<ViewState>>,
    RequestContext(ctx): RequestContext,
    Params(query): Params<ViewListQuery>,
) -> Result<Response, ApiError> {
    let mut query = query.to_query_limited::<V>(state.limits)?;
    // The caller's visibility filters come on top of the client's, outside the limit.
    query.filters.extend(visibility::<V>(&ctx)?);
    let page = state
        .views
        .query_views(V::TYPE, &query, V::fields())
        .await?;
    Ok(axum::Json(decode_page::<V>(page)?).into_response())
}

async fn get_record<V: HttpView>(
    State(state): State<Arc<ViewState>>,
    RequestContext(ctx): RequestContext,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let filters = visibility::<V>(&ctx)?;
    match state.views.get_view(V::TYPE, &id).await? {
        Some(record) => {
            if !filters.is_empty() {
                let json: serde_json::Value = serde_json::from_str(&record.data).map_err(|e| {
                    tracing::error!(view = V::TYPE, error = %e, "unreadable view record");
                    ApiError::internal()
                })?;
                let visible = ViewQuery {
                    filters,
                    ..ViewQuery::default()
                };
                if !visible.matches(&json) {
                    return Err(ApiError::forbidden(format!(
                        "{} may not read {} record '{}'",
                        clip(ctx.user_id().unwrap_or_default(), 128),
                        V::TYPE,
                        clip(&id, 128)
                    )));
                }
            }
            Ok(axum::Json(record.decode::<V>()?).into_response())
        }
        None => Err(ApiError::not_found(format!(
            "no {} record '{}'",
            V::TYPE,
            clip(&id, 128)
        ))),
    }
}

async fn list_children<V>(
    State(state): State<Arc<ChildState<V::Aggregate>>>,
    RequestContext(ctx): RequestContext,
    PathId(id): PathId,
    query: Result<Query<ViewListQuery>, QueryRejection>,
) -> Result<Response, ApiError>
where
    V: HttpView,
    V::Aggregate: HttpAggregate,
{
    factum_core::validate_aggregate_id(&id)?;
    let Query(query) = query?;
    let query = query.to_query_limited::<V>(state.limits)?;
    state
        .service
        .authorize(&ctx, Some(&id), Access::ReadView(V::TYPE))
        .await?;
    let records = state.views.list_views_of(V::TYPE, &id).await?;
    let aggregate_type = <V::Aggregate as Aggregate>::TYPE;
    if records.is_empty() && state.events.stream_version(aggregate_type, &id).await? == 0 {
        return Err(
            match <V::Aggregate as CommandHandler>::not_found_error(&id) {
                Some(error) => ApiError::domain(&error),
                None => factum_core::Error::AggregateNotFound {
                    aggregate_type: aggregate_type.to_owned(),
                    aggregate_id: id,
                }
                .into(),
            },
        );
    }
    // One aggregate's records are few enough to filter, sort and page here, with the same
    // reference semantics the stores' SQL follows.
    let page = query.apply_to(records)?;
    Ok(axum::Json(decode_page::<V>(page)?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_with_one_slash() {
        assert_eq!(join_path("", "accounts"), "/accounts");
        assert_eq!(join_path("/views/", "/accounts/"), "/views/accounts");
        assert_eq!(join_path("views", "accounts"), "/views/accounts");
    }

    #[test]
    fn field_descriptions_name_kinds_and_operators() {
        const FIELDS: &[ViewField] = &[
            ViewField::new("owner", FieldKind::Text),
            ViewField {
                name: "open",
                kind: FieldKind::Boolean,
                filterable: true,
                sortable: false,
            },
        ];
        assert_eq!(
            describe_fields(FIELDS),
            "`owner` (text; filter: eq/ne/lt/lte/gt/gte/in/contains, sort), `open` (boolean; filter: eq/ne/in)"
        );
        assert_eq!(describe_fields(&[]), "none");
        let details = query_details(FIELDS, QueryLimits::default());
        assert_eq!(
            details["fields"][1]["operators"],
            serde_json::json!(["eq", "ne", "in"])
        );
        assert_eq!(details["max_page_size"], MAX_PAGE_SIZE);
    }
}
