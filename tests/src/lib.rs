//! Cross-crate benches, and the README's examples as doctests.
//!
//! # Layout
//! * `benches/grab.rs`         – the grab path in-process, on every backend
//!   and on the naive cqrs-es path, in one run so the ratios are fair.
//! * `benches/subscription.rs` – durable subscriptions and the JetStream
//!   publisher, on every backend.
//!
//! The tests of each crate live in that crate: the conformance suite in
//! `seckill-testkit` (run by every backend), the HTTP and reliability
//! suites in `seckill-server`. What stays here compares several crates in
//! one run.

/// The README's examples compile and pass as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
