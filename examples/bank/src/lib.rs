//! The reference bank account service of Factum: a bank account whose every change is an
//! event. [`domain`] is the model (it imports `factum-core` and serde only), [`money`] keeps
//! amounts exact, [`http`] serves them: the first request of the reference, in process.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use axum::body::{Body, to_bytes};
//! use axum::http::Request;
//! use tower::ServiceExt;
//!
//! let store = std::sync::Arc::new(factum_core::InMemoryEventStore::new());
//! let bank = bank::http::Bank::open(store).unwrap();
//! let app = bank::http::router(&bank, factum_http::HttpConfig::default()).unwrap();
//! let open = Request::post("/accounts/acc-001")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"type": "OpenAccount", "owner": "Alice", "initial_balance": 1000.0}"#))
//!     .unwrap();
//! let response = app.oneshot(open).await.unwrap();
//! assert_eq!(response.status(), 201);
//! let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
//! assert_eq!(body, r#"{"id":"acc-001","owner":"Alice","balance":1000.0,"version":1}"#);
//! # });
//! ```

pub mod domain;
#[cfg(feature = "openapi")]
pub mod http;
pub mod money;
pub mod views;
