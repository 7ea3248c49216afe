//! Shared pieces of the cross-crate tests.
//!
//! # Layout
//! * `fixture` – [`Fixture`]: how the suites get a fresh store, and reopen it.
//! * `suite`   – the behaviour suite, written once and run against every
//!   backend through [`suite!`]`(behaviour, ..)`.
//! * `http`    – the HTTP end-to-end suite: the real server on a loopback
//!   port, driven through the typed client, run per backend through
//!   [`suite!`]`(http, ..)`.
//! * `doomed`  – [`Doomed`](doomed::Doomed): a runtime of its own for work a
//!   test kills mid-flight, as kill -9 would.
//! * `faults`  – [`FaultyStore`], a store wrapper that fails or conflicts on
//!   chosen commits, for fault-injection tests.
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
pub mod doomed;
mod fallback;
pub mod faults;
pub mod fixture;
pub mod http;
pub mod nats;
pub mod postgres;
pub mod suite;

pub use faults::FaultyStore;
pub use fixture::{Fixture, MemoryFixture};

/// Runs every test of one suite against one backend:
/// `suite!(behaviour, fixture)` or `suite!(http, fixture)`, where `fixture`
/// is an expression that yields a fresh [`Fixture`] (it is evaluated once
/// per test). Each suite's tests are listed here once, so every backend
/// runs all of them.
#[macro_export]
macro_rules! suite {
    (behaviour, $fixture:expr) => {
        $crate::suite!(@tests suite, $fixture;
            creates_updates_grabs_and_queries,
            every_rejection_is_typed_and_records_nothing,
            ten_thousand_tasks_race_for_one_hundred_coupons,
            two_instances_grab_one_promotion_without_oversell,
            a_restarted_instance_sees_every_promotion_and_coupon,
            rebuilt_projections_match_the_live_ones,
            a_stale_rebuild_never_erases_newer_coupons,
            the_global_feed_lists_every_event_once_in_order,
            injected_store_faults_never_lose_an_acknowledged_grab,
            a_commit_whose_answer_is_lost_is_confirmed_or_reported_unknown,
            many_promotions_sell_out_independently,
            a_group_append_answers_each_commit_on_its_own,
            a_conflict_in_a_shared_group_costs_only_its_promotion,
            writers_append_alone_when_group_commit_is_off,
            admin_commands_answer_with_the_promotion_as_it_stands,
            a_promotion_watch_holds_its_latest_summary,
            errors_name_their_code_and_whether_a_retry_may_help,
            snapshots_equal_the_replayed_state,
            a_full_queue_answers_overloaded_at_once_and_loses_nothing,
            watchers_see_every_commit,
            lagging_projections_catch_up_from_the_events,
            a_finished_promotion_leaves_memory_after_its_ttl_and_comes_back,
            engine_settings_that_would_hang_are_refused,
            writers_retiring_between_waves_of_grabs_answer_every_grab,
            a_subscription_catches_up_then_follows_live_without_gap_or_duplicate,
            a_subscription_resumes_from_its_checkpoint,
            a_failing_handler_is_retried_and_nothing_is_skipped,
            one_consumer_is_active_per_name_and_a_standby_takes_over,
            a_crashed_consumer_is_taken_over_and_nothing_is_missed,
            subscription_leases_fence_a_consumer_that_lost_its_name,
            subscription_settings_that_cannot_work_are_refused,
            a_promotion_with_coupons_left_expires_at_its_finish_time,
            a_finished_promotion_is_never_expired_and_none_twice,
            the_expiry_timer_ends_with_the_service,
        );
    };
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
