//! The OpenAPI document of the view and projection routes.

use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::aggregate::HttpAggregate;
use crate::body_schemas::{page_of, string};
use crate::openapi::{
    STORE_UNREADABLE, aggregate_id_param, by_name, document, error_response, json_response,
    operation, path_param, query_param, with_errors,
};
use crate::projections::ProjectionStatusDoc;
use crate::views::{HttpView, describe_fields, join_path};
use factum_core::MAX_PAGE_SIZE;

fn view_query_params<V: HttpView>() -> Vec<utoipa::openapi::path::Parameter> {
    let fields = describe_fields(V::fields());
    let default_sort = match V::default_sort() {
        "" => "record id".to_owned(),
        sort => format!("`{sort}`, then record id"),
    };
    vec![
        query_param(
            "filter",
            format!(
                "Comma-separated `field:op:value` filters, all of which must hold (`in` takes `a|b|c`). Fields: {fields}"
            ),
            string().examples([serde_json::Value::String(
                V::fields()
                    .iter()
                    .find(|f| f.filterable)
                    .map(|f| format!("{}:eq:...", f.name))
                    .unwrap_or_default(),
            )]),
        ),
        query_param(
            "sort",
            format!(
                "Comma-separated fields, `-field` for descending; ties by record id. Default: {default_sort}"
            ),
            string(),
        ),
        query_param(
            "page",
            "The page, from 1 (default 1)".to_owned(),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(u32::MAX)),
        ),
        query_param(
            "page_size",
            format!("Records per page, 1 to {MAX_PAGE_SIZE} (default 50)"),
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_PAGE_SIZE)),
        ),
    ]
}

fn record_page_schema(record: &str) -> RefOr<Schema> {
    let count = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
    };
    page_of("One page of a view's records", "items", record)
        .property(
            "total",
            count().description(Some("How many records match in all")),
        )
        .property("page", count().minimum(Some(1)))
        .property("page_size", count().minimum(Some(1)))
        .required("total")
        .required("page")
        .required("page_size")
        .into()
}

/// The schemas of a view's routes: its record, and a page of records.
fn view_schemas<V: HttpView>() -> (String, String, Vec<(String, RefOr<Schema>)>) {
    let record = V::name().into_owned();
    let page = format!("{record}Page");
    let mut schemas = vec![
        (record.clone(), V::schema()),
        (page.clone(), record_page_schema(&record)),
    ];
    V::schemas(&mut schemas);
    (record, page, schemas)
}

/// A query of a view's records: its parameters, the page it answers, and what a `400`
/// (`bad`) and a `500` mean.
fn paged_query<V: HttpView>(op: OperationBuilder, page: &str, bad: &str) -> OperationBuilder {
    let op = op.parameters(Some(view_query_params::<V>())).response(
        "200",
        json_response("A page of records", Ref::from_schema_name(page)),
    );
    with_errors(op, &[("400", bad), ("500", STORE_UNREADABLE)])
}

/// The document of [`view_routes`](crate::view_routes) under `prefix`.
pub fn view_openapi<V: HttpView>(prefix: &str, auth: bool) -> OpenApi {
    let base = join_path(prefix, V::PATH);
    let (record, page, schemas) = view_schemas::<V>();
    let list = operation(
        "views",
        format!("Query the {} view: filter, sort, page", V::TYPE),
        format!("view_{}_query", V::TYPE),
    );
    let list = paged_query::<V>(
        list,
        &page,
        "Unknown field or operator, a value of the wrong type, or bad paging (VALIDATION_ERROR; details list the fields)",
    );
    let get = operation(
        "views",
        format!("One record of the {} view", V::TYPE),
        format!("view_{}_get", V::TYPE),
    )
    .parameter(path_param("id", "The record id"))
    .response(
        "200",
        json_response("The record", Ref::from_schema_name(&record)),
    );
    let get = with_errors(
        get,
        &[
            ("404", "No record with this id (NOT_FOUND)"),
            ("500", STORE_UNREADABLE),
        ],
    );
    let routes = vec![
        (base.clone(), HttpMethod::Get, list),
        (format!("{base}/{{id}}"), HttpMethod::Get, get),
    ];
    document(auth, routes, schemas)
}

/// The document of [`child_view_routes`](crate::child_view_routes) under `prefix`.
pub fn child_view_openapi<V>(prefix: &str, auth: bool) -> OpenApi
where
    V: HttpView,
    V::Aggregate: HttpAggregate,
{
    let aggregate = <V::Aggregate as factum_core::Aggregate>::TYPE;
    let base = join_path(prefix, <V::Aggregate as HttpAggregate>::PATH);
    let (_, page, schemas) = view_schemas::<V>();
    let list = operation(
        <V::Aggregate as HttpAggregate>::PATH.trim_matches('/'),
        format!(
            "The {} records of one {aggregate}: filter, sort, page",
            V::TYPE
        ),
        format!("{aggregate}_{}", V::TYPE),
    )
    .parameter(aggregate_id_param("The aggregate id"))
    .response("404", error_response("No aggregate with this id"));
    let list = paged_query::<V>(
        list,
        &page,
        "Invalid id, unknown field or operator, a value of the wrong type, or bad paging",
    );
    let path = join_path(&format!("{base}/{{id}}"), V::PATH);
    document(auth, vec![(path, HttpMethod::Get, list)], schemas)
}

/// The document of [`projection_routes`](crate::projection_routes).
pub fn projections_openapi(auth: bool) -> OpenApi {
    let status = ProjectionStatusDoc::name().into_owned();
    let mut schemas = vec![(status.clone(), ProjectionStatusDoc::schema())];
    ProjectionStatusDoc::schemas(&mut schemas);
    let list = operation(
        "operations",
        "How far each asynchronous projection is behind the event log",
        "projections",
    )
    .response(
        "200",
        json_response(
            "Every projection's checkpoint, the log's head, and the difference",
            ArrayBuilder::new().items(Ref::from_schema_name(&status)),
        ),
    );
    let one = by_name(
        "How far one asynchronous projection is behind",
        "projection",
        "The projection's name",
    )
    .response(
        "200",
        json_response("Its lag", Ref::from_schema_name(&status)),
    );
    let routes = vec![
        (
            "/projections".to_owned(),
            HttpMethod::Get,
            with_errors(list, &[("500", STORE_UNREADABLE)]),
        ),
        (
            "/projections/{name}".to_owned(),
            HttpMethod::Get,
            with_errors(
                one,
                &[
                    ("404", "No projection with this name"),
                    ("500", STORE_UNREADABLE),
                ],
            ),
        ),
    ];
    document(auth, routes, schemas)
}
