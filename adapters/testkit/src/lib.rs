//! The conformance suite for SecKill backends: what every implementation of
//! [`Backend`](seckill_app::Backend) must do, written once as plain
//! `async fn`s over a [`Fixture`], and turned into one `#[tokio::test]` each
//! by [`conformance!`].
//!
//! A backend passes when its crate's tests run the suite and all of them
//! pass. The in-memory and PostgreSQL backends run it in this workspace's CI,
//! and so does the worked example of docs/backends.md, a backend over
//! postgres-es's `PostgresEventRepository`
//! (`examples/postgres-es-backend`).
//!
//! ```ignore
//! // tests/conformance.rs of your backend's crate; needs `tokio` (with
//! // `macros` and `rt-multi-thread`) among its dev-dependencies.
//! struct MyFixture { /* a fresh database per test */ }
//!
//! #[async_trait::async_trait]
//! impl seckill_testkit::Fixture for MyFixture {
//!     async fn store(&self) -> Arc<dyn Backend> { /* .. */ }
//!     async fn reopen(&self) -> Arc<dyn Backend> { /* a second handle */ }
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::all().with_snapshots(false)
//!     }
//! }
//!
//! seckill_testkit::conformance!(MyFixture::new().await);
//! ```
//!
//! The kit is light on purpose: it needs the domain, the application crate
//! and Tokio, and no web server or HTTP client, so a backend's crate builds
//! it in seconds.
//!
//! # Layout
//! * `fixture` – [`Fixture`]: a fresh store per test, a second handle on it,
//!   and the [`Capabilities`] a backend declares; [`InProcess`] for a
//!   backend whose state lives in the process.
//! * `suite`   – the tests, by topic: commands, projections, the engine,
//!   typed replies, group commit, subscriptions, the expiry timer; and
//!   [`assert_consistent`](suite::assert_consistent), which every test
//!   ends with.
//! * `faults`  – [`FaultyStore`], a wrapper over any backend that fails,
//!   conflicts or loses the answer on chosen commits, or is slow.
//! * `doomed`  – [`Doomed`](doomed::Doomed): a runtime of its own for work a
//!   test kills mid-flight, as kill -9 would.
//! * `teardown` – [`clean_up`](teardown::clean_up): a fixture's clean-up,
//!   run from its `Drop` and finished before the test process exits.
//! * `postgres` (feature `postgres`) – [`TestDatabase`](postgres::TestDatabase):
//!   a fresh PostgreSQL database per test at `DATABASE_URL`, or on a
//!   throwaway cluster started from the installed binaries when nothing
//!   answers there. seckill-postgres's `testing` feature builds its
//!   `PgFixture` on it.

pub mod doomed;
pub mod faults;
pub mod fixture;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod suite;
pub mod teardown;

pub use faults::{FaultPlan, FaultyStore};
pub use fixture::{Capabilities, Fixture, InProcess};

/// Runs every conformance test against one backend:
/// `conformance!(fixture)`, where `fixture` is an expression that yields a
/// fresh [`Fixture`]. It is evaluated once per test, inside the test's
/// runtime, so it may `.await`. The tests are listed here once, so every
/// backend runs all of them.
///
/// The calling crate needs `tokio` with `macros` and `rt-multi-thread`.
#[macro_export]
macro_rules! conformance {
    ($fixture:expr) => {
        $crate::conformance!(@tests $fixture;
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
            the_feed_hands_back_each_events_traceparent,
            admin_commands_answer_with_the_promotion_as_it_stands,
            a_promotion_watch_holds_its_latest_summary,
            errors_name_their_code_and_whether_a_retry_may_help,
            snapshots_equal_the_replayed_state,
            a_full_queue_answers_overloaded_at_once_and_loses_nothing,
            grabs_decided_ahead_of_a_failed_commit_are_decided_again,
            watchers_see_every_commit,
            lagging_projections_catch_up_from_the_events,
            a_finished_promotion_leaves_memory_after_its_ttl_and_comes_back,
            engine_settings_that_would_hang_are_refused,
            writers_retiring_between_waves_of_grabs_answer_every_grab,
            a_subscription_catches_up_then_follows_live_without_gap_or_duplicate,
            a_subscription_resumes_from_its_checkpoint,
            a_checkpoint_past_the_head_shows_until_the_head_reaches_it,
            a_failing_handler_is_retried_and_nothing_is_skipped,
            a_stuck_subscription_shows_how_long_its_oldest_event_waits,
            one_consumer_is_active_per_name_and_a_standby_takes_over,
            a_crashed_consumer_is_taken_over_and_nothing_is_missed,
            subscription_leases_fence_a_consumer_that_lost_its_name,
            subscription_settings_that_cannot_work_are_refused,
            a_promotion_with_coupons_left_expires_at_its_finish_time,
            a_finished_promotion_is_never_expired_and_none_twice,
            the_expiry_timer_ends_with_the_service,
            a_draw_is_drawn_at_its_close_and_anyone_can_verify_it,
            a_draw_is_made_once_by_two_services,
        );
    };
    (@tests $fixture:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture;
                $crate::suite::$name(fixture).await;
            }
        )+
    };
}
