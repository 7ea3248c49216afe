//! Runnable examples of SecKill: the web server, its load generator, and an
//! in-process flash sale.
//!
//! # Layout
//! * [`server`]  – the axum web server as a library: [`server::app`] builds
//!   the router, [`server::serve`] runs it with graceful shutdown.
//! * [`client`]  – [`client::Client`], the one typed client of the HTTP API:
//!   its answers are the server's DTOs, a grab's outcome is a [`client::Grab`].
//! * [`loadgen`] – the load generator's logic: N customers race for M
//!   coupons over HTTP, then it checks what the query API says.
//! * [`shutdown`] – [`shutdown::signal`]: Ctrl-C or SIGTERM, for the binaries.
//!
//! Binaries in `src/bin/`:
//! * `seckill-server` – the web server (`--help` lists every flag).
//! * `loadgen`        – the load generator against a running server.
//! * `http-baseline`  – a bare axum hello-world, the yardstick in `docs/benchmarks.md`.
//! * `flash-sale`     – a whole flash sale in one process, no HTTP.
//! * `coupon-consumer` – an example consumer of the NATS JetStream stream
//!   that keeps its own coupon table.
//! * `fairness`       – one bot against many people over HTTP: who wins
//!   the coupons (`examples/bench/fairness.sh`).

pub mod client;
pub mod loadgen;
pub mod server;
pub mod shutdown;
