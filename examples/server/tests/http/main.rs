//! The HTTP end-to-end suite: the real server (`seckill_server::serve`) on
//! a port of 127.0.0.1, driven over HTTP through the typed
//! [`Client`](seckill_client::Client) (and its raw requests where a test
//! checks the wire), written once and run against the in-memory backend
//! (`memory::`) and PostgreSQL (`postgres::`) by `suite!`.
//!
//! Every error answer is checked for `application/problem+json`, its status
//! and its problem type; no test may provoke a 5xx other than the deliberate
//! 503 of a shutting-down server.
//!
//! # Layout
//! * `server`     – `TestServer` (shared with the reliability tests, in
//!   `../common/server.rs`): `serve()` on a loopback port with a client, built
//!   by one builder, and the helpers the tests share.
//! * `commands`   – create, update, grab, query, cancel; every losing grab; the
//!   typed client's outcomes; the load generator.
//! * `rejections` – 400/413/415/404/405 for what does not parse, 422/409 for
//!   broken rules, 503 with `Retry-After` for a failing store or a full queue.
//! * `draws`      – a draw's entries, their problems, the draw on time and
//!   a result recomputed from what the API shows.
//! * `feed`       – the Server-Sent Events of one promotion, `/sync`, and the
//!   global event feed `/events` resumed with `Last-Event-ID`.
//! * `operations` – metrics, probes, OpenAPI and pages, graceful shutdown.
//! * `security`   – the admin token, customer tokens, rate limits, trusted
//!   proxies, the live page's security headers.

mod commands;
mod draws;
mod feed;
mod operations;
mod rejections;
mod security;
#[path = "../common/server.rs"]
mod server;

use commands::*;
use draws::*;
use feed::*;
use operations::*;
use rejections::*;
use security::*;

/// Every test of the suite, each as one `#[tokio::test]` on a fresh
/// `$fixture` (evaluated inside the test's runtime, so it may `.await`).
/// The tests are listed once, so every backend runs all of them.
macro_rules! suite {
    ($fixture:expr) => {
        suite!(@tests $fixture;
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
            a_draw_takes_entries_and_is_drawn_on_time,
            entries_outside_a_draw_are_refused_with_problems,
        );
    };
    (@tests $fixture:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($fixture).await;
            }
        )+
    };
}

/// The in-memory backend: snapshots kept, projections derived from the
/// events.
mod memory {
    use seckill_memory::MemoryStore;
    use seckill_testkit::{Capabilities, InProcess};

    suite!(InProcess::new(MemoryStore::new())
        .with_capabilities(Capabilities::all().with_stored_projections(false)));
}

/// PostgreSQL: each test on a fresh database of its own.
mod postgres {
    suite!(seckill_postgres::testing::PgFixture::new().await);
}
