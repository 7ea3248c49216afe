//! Shared pieces of the cross-crate tests.
//!
//! # Layout
//! * `fixture` – [`MemoryFixture`] ([`memory_fixture`]), and the clean-up the other fixtures share.
//!   The [`Fixture`] trait, the behaviour suite (`suite`), [`FaultyStore`]
//!   and `doomed` come from seckill-testkit, the conformance suite every
//!   backend runs (`seckill_testkit::conformance!`), re-exported here.
//! * `http`    – the HTTP end-to-end suite: the real server on a loopback
//!   port, driven through the typed client, run per backend through
//!   [`suite!`]`(http, ..)`.
//! * `postgres` – [`PgFixture`](postgres::PgFixture): a fresh PostgreSQL
//!   database per test, dropped afterwards.
//! * `nats`     – [`NatsFixture`](nats::NatsFixture): a stream name and
//!   subject prefix per test on the NATS server at `NATS_URL`, the stream
//!   deleted afterwards.
//! * `cluster`  – [`Cluster`](cluster::Cluster): a PostgreSQL cluster of the
//!   tests' own, run from the installed binaries.
//! * `fallback` – the shared throwaway cluster `PgFixture` uses when no
//!   server answers at `DATABASE_URL`, and how it is stopped afterwards.

pub mod cluster;
mod fallback;
pub mod fixture;
pub mod http;
pub mod nats;
pub mod postgres;

pub use fixture::{memory_fixture, Fixture, MemoryFixture};
pub use seckill_testkit::{doomed, faults, suite, FaultyStore};

/// Runs every test of the HTTP suite against one backend:
/// `suite!(http, fixture)`, where `fixture` is an expression that yields a
/// fresh [`Fixture`] (it is evaluated once per test). The tests are listed
/// here once, so every backend runs all of them. The behaviour suite is
/// seckill-testkit's `conformance!`.
#[macro_export]
macro_rules! suite {
    (http, $fixture:expr) => {
        $crate::suite!(@tests http, $fixture;
            creates_updates_grabs_and_queries_over_http,
            each_losing_grab_has_its_own_status_and_problem_type,
            the_client_reads_every_grab_answer_as_its_outcome,
            malformed_requests_are_answered_with_problems_not_5xx,
            invalid_values_are_422_and_rule_breaks_409,
            the_event_stream_delivers_an_update_after_a_grab,
            the_sync_feed_pages_every_coupon_exactly_once,
            metrics_count_grabs_by_outcome,
            probes_openapi_and_pages_answer,
            graceful_shutdown_answers_queued_grabs,
            the_load_generator_verifies_a_small_flash_sale,
            unavailable_answers_are_503_with_retry_after_never_500,
            a_lost_commit_answer_is_503_outcome_unknown_and_a_retry_learns_the_coupon,
            a_short_promotion_expires_without_a_grab,
            the_global_event_feed_resumes_after_the_last_event_id,
            every_admin_route_needs_the_admin_token,
            admin_routes_are_closed_without_a_token,
            open_admin_routes_take_requests_without_a_token,
            customer_tokens_decide_who_grabs_and_whose_coupons_are_read,
            requests_over_a_rate_limit_are_429_with_retry_after,
            forwarded_client_addresses_count_only_from_trusted_proxies,
            the_live_page_is_served_with_security_headers,
        );
    };
    (@tests $module:ident, $fixture:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture;
                $crate::$module::$name(fixture).await;
            }
        )+
    };
}

/// The README's examples compile and pass as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
