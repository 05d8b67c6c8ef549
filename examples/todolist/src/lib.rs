//! The to-do list example of Factum: lists with child to-dos, a summary view per list and a
//! to-do view queryable by assignee and resolved state. [`domain`] and [`views`] import
//! `factum-core` and serde only; [`http`] serves them (the `todolist` binary), with the
//! summaries kept inline and the to-dos as an asynchronous projection.
//!
//! Both views can also be kept inline, as here:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use factum_core::*;
//! use todolist::domain::{CreateListCommand, TodoList, TodoListCommand};
//! use todolist::views::{ListSummary, TodoView};
//!
//! let store = Arc::new(InMemoryEventStore::new());
//! let engine = CqrsCommandEngine::<TodoList>::builder(store.clone())
//!     .inline_view::<ListSummary>()
//!     .inline_view::<TodoView>()
//!     .build()
//!     .unwrap();
//! let ctx = CqrsContext::new();
//! engine.create_with_id("home", &CreateListCommand::CreateList { name: "Home".into() }, &ctx).await.unwrap();
//! let add = TodoListCommand::AddTodo { todo_id: "t1".into(), title: "Fix the tap".into() };
//! engine.update("home", &add, &ctx).await.unwrap();
//!
//! let query = ViewQuery::parse(Some("resolved:eq:false"), None, None, None, TodoView::fields()).unwrap();
//! let open = store.query_views(TodoView::TYPE, &query, TodoView::fields()).await.unwrap();
//! assert_eq!(open.total, 1);
//! let summary: ListSummary = store.get_view(ListSummary::TYPE, "home").await.unwrap().unwrap().decode().unwrap();
//! assert_eq!((summary.total, summary.open), (1, 1));
//! # });
//! ```

pub mod domain;
#[cfg(feature = "openapi")]
pub mod http;
pub mod views;
