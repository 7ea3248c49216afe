//! A bare axum hello-world: the yardstick for the server's HTTP numbers in
//! `docs/benchmarks.md`. Same runtime and axum version as `seckill-server`,
//! nothing else: no middleware, no JSON, no engine.
//!
//! Two routes: `GET /hello`, the classic, and `POST /command/coupons/`, which
//! reads the body and answers 201 "Hello, World!" without looking at it. The
//! second takes the same wrk script as a real grab, so the client spends the
//! same CPU on both sides of the comparison: on a 2-core machine the load
//! generator shares the cores with the server.
//!
//! ```text
//! cargo run --release -p seckill-server --example http_baseline -- 127.0.0.1:3001
//! wrk -t2 -c64 -d10s http://127.0.0.1:3001/hello
//! PROMOTION=x wrk -t2 -c64 -d10s -s examples/server/bench/grab.lua http://127.0.0.1:3001
//! ```

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

// The same allocator as seckill-server, so the comparison is like for like.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let app = Router::new()
        .route("/hello", get(|| async { "Hello, World!" }))
        .route(
            "/command/coupons/",
            post(|_body: String| async { (StatusCode::CREATED, "Hello, World!") }),
        );
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("http-baseline listening on http://{bind}/hello");
    axum::serve(listener, app).await?;
    Ok(())
}
