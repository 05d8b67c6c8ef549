//! The to-do list example of Factum: lists with child to-dos, a summary view per list and a
//! to-do view queryable by assignee and resolved state. [`domain`] and [`views`] import
//! `factum-core` and serde only; [`http`] serves them (the `todolist` binary), with the
//! summaries kept inline and the to-dos as an asynchronous projection ([`views`] shows both
//! kept inline, through the engine alone).

pub mod domain;
#[cfg(feature = "openapi")]
pub mod http;
pub mod views;
