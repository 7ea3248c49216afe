//! A bare axum hello-world: the yardstick for the server's HTTP numbers in
//! `docs/benchmarks.md`. Same runtime and axum version as `seckill-server`,
//! nothing else: no middleware, no JSON, no engine.
//!
//! ```text
//! cargo run --release -p seckill-examples --bin http-baseline -- 127.0.0.1:3001
//! wrk -t2 -c64 -d10s http://127.0.0.1:3001/hello
//! ```

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let app = Router::new().route("/hello", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("http-baseline listening on http://{bind}/hello");
    axum::serve(listener, app).await?;
    Ok(())
}
