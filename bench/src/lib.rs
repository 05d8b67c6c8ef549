//! # factum-bench
//!
//! The bank workload of `docs/benchmarks.md`, run against Factum and against the peer library
//! (`cqrs-es` 0.5, with `postgres-es` 0.5 for PostgreSQL) in the same run, through one
//! interface ([`driver::BankDriver`]) so that both sides execute the same loops.
//!
//! The binary (`cargo run --release -p factum-bench -- all`) prints a Markdown table with
//! Factum/peer ratios and one JSON line; criterion micro-benchmarks live in `benches/`.
//!
//! ```
//! use factum_bench::workload::Scale;
//! let scale = Scale { accounts: 1_000, commands_per_account: 100 };
//! assert_eq!(scale.commands(), 100_000);
//! ```

pub mod driver;
pub mod fsync;
pub mod http;
pub mod latency;
pub mod nats;
pub mod peer;
pub mod pg;
pub mod replay;
pub mod report;
pub mod suites;
pub mod workload;
