//! Shared pieces of the cross-crate tests.
//!
//! # Layout
//! * `fixture` – [`Fixture`]: how the suite gets a fresh store, and reopens it.
//! * `suite`   – the behaviour suite, written once and run against every
//!   backend through [`behaviour_suite!`].
//! * `http`    – the HTTP end-to-end suite: the real server on a loopback
//!   port, driven with reqwest, run per backend through [`http_suite!`].
//! * `faults`  – [`FaultyStore`], a store wrapper that fails or conflicts on
//!   chosen commits, for fault-injection tests.
//! * `postgres` – [`PgFixture`](postgres::PgFixture): a fresh PostgreSQL
//!   database per test, dropped afterwards.
//! * `cluster`  – [`Cluster`](cluster::Cluster): a PostgreSQL cluster of the
//!   tests' own, run from the installed binaries.
//! * `fallback` – the shared throwaway cluster `PgFixture` uses when no
//!   server answers at `DATABASE_URL`, and how it is stopped afterwards.

pub mod cluster;
mod fallback;
pub mod faults;
pub mod fixture;
pub mod http;
pub mod postgres;
pub mod suite;

pub use faults::FaultyStore;
pub use fixture::{Fixture, MemoryFixture};

/// The README's examples compile and pass as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
