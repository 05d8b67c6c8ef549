//! An empty stand-in for sqlx-sqlite 0.8.6 (see this crate's Cargo.toml): it exists so that
//! the peers' sqlx 0.8 resolves beside factum-sqlite's libsqlite3-sys, and is never built.
