//! The HTTP end-to-end suite: the real server (`seckill_examples::server::serve`)
//! on a port of 127.0.0.1, driven over HTTP through the typed
//! [`Client`](seckill_examples::client::Client) (and its raw requests where a
//! test checks the wire), written once and run against every backend through
//! [`suite!`](crate::suite).
//!
//! Every error answer is checked for `application/problem+json`, its status
//! and its problem type; no test may provoke a 5xx other than the deliberate
//! 503 of a shutting-down server.
//!
//! # Layout
//! * `server`     – [`TestServer`]: `serve()` on a loopback port with a client,
//!   and the helpers the tests share ([`promotion_request`], [`assert_problem`]).
//! * `commands`   – create, update, grab, query, cancel; every losing grab; the
//!   typed client's outcomes; the load generator.
//! * `rejections` – 400/413/415/404/405 for what does not parse, 422/409 for
//!   broken rules, 503 with `Retry-After` for a failing store or a full queue.
//! * `feed`       – the Server-Sent Events of one promotion, `/sync`, and the
//!   global event feed `/events` resumed with `Last-Event-ID`.
//! * `operations` – metrics, probes, OpenAPI and pages, graceful shutdown.
//! * `security`   – the admin token, customer tokens, rate limits, trusted
//!   proxies, the live page's security headers.

mod commands;
mod feed;
mod operations;
mod rejections;
mod security;
mod server;

// The tests, flat under `http::`, where `suite!(http, ..)` finds them.
pub use commands::*;
pub use feed::*;
pub use operations::*;
pub use rejections::*;
pub use security::*;
pub use server::{
    assert_problem, promotion_request, rfc3339, test_security, wait_until, TestServer, ADMIN_TOKEN,
};
