//! The load generator: N customers race for M coupons over HTTP, then it
//! checks through the query API that the server told the truth.
//!
//! A library function ([`run`]) so tests drive it against an in-process
//! server; the `loadgen` binary only parses flags and prints the report. It
//! talks to the server through [`crate::Client`].
//!
//! # Layout
//! * `race`  – the workers: each takes the next customer and grabs, retrying 503s.
//! * `check` – counts the answers and checks them against the query API.
//!
//! What it checks after the race (any failure is a [`LoadReport::violations`] entry):
//! * exactly min(customers, coupons left) grabs won;
//! * the promotion's `remaining` and `granted` agree with that;
//! * coupon numbers are distinct;
//! * every customer's coupon list holds exactly the coupon they were told
//!   they won (none for the others), so nobody holds two.

mod check;
mod race;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::api::PromotionRequest;
use crate::{Client, ClientError};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server, e.g. `http://127.0.0.1:3000`.
    pub base_url: String,
    /// How many customers race; each grabs once (retrying only on 503).
    pub customers: usize,
    /// Coupons of the promotion it creates (ignored with `promotion`).
    pub coupons: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Race for this promotion instead of creating one.
    pub promotion: Option<Uuid>,
    /// Customer ids are `{prefix}{index}`; a fresh prefix per run keeps runs
    /// against one server apart.
    pub customer_prefix: String,
    /// Draw a progress bar on the terminal.
    pub show_progress: bool,
    /// The server's admin token, to create the promotion.
    pub admin_token: Option<String>,
}

impl LoadConfig {
    /// A config with a per-run customer prefix and no progress bar.
    pub fn new(base_url: impl Into<String>, customers: usize, coupons: u64) -> Self {
        Self {
            base_url: base_url.into(),
            customers,
            coupons,
            concurrency: 64,
            promotion: None,
            customer_prefix: format!("lg-{}-", &Uuid::new_v4().simple().to_string()[..8]),
            show_progress: false,
            admin_token: None,
        }
    }
}

/// Why the load generator could not run (as opposed to finding the server wrong).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A request failed outright, or an admin or query request was answered
    /// unexpectedly.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A grab worker panicked.
    #[error("a grab worker panicked: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// What happened, and what was wrong.
#[derive(Debug)]
pub struct LoadReport {
    /// The promotion raced for.
    pub promotion_id: Uuid,
    /// Customers that raced.
    pub customers: usize,
    /// Coupons left when the race began.
    pub coupons_left: u32,
    /// Grabs answered 201 (or 409 with the coupon, after a retry).
    pub won: usize,
    /// Grabs answered 410 sold out.
    pub sold_out: usize,
    /// Final answers that were neither, by status code.
    pub other: BTreeMap<u16, usize>,
    /// 503 answers that were retried.
    pub retries: u64,
    /// Wall time of the race, first request to last answer.
    pub elapsed: Duration,
    /// Latency of every grab request, in microseconds.
    pub latency: Histogram<u64>,
    /// Every broken promise found; empty when the server told the truth.
    pub violations: Vec<String>,
}

impl LoadReport {
    /// Grab requests answered per second (retries included).
    pub fn throughput(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1e3;
        writeln!(
            f,
            "promotion {}: {} customers for {} coupons",
            self.promotion_id, self.customers, self.coupons_left
        )?;
        writeln!(
            f,
            "  won {}, sold out {}, other {:?}, retried 503s {}",
            self.won, self.sold_out, self.other, self.retries
        )?;
        writeln!(
            f,
            "  {} requests in {:.3} s = {:.0} req/s",
            self.latency.len(),
            self.elapsed.as_secs_f64(),
            self.throughput()
        )?;
        writeln!(
            f,
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            self.latency.max() as f64 / 1e3
        )?;
        if self.violations.is_empty() {
            write!(f, "  checks: all passed")
        } else {
            write!(f, "  VIOLATIONS ({}):", self.violations.len())?;
            for violation in &self.violations {
                write!(f, "\n    - {violation}")?;
            }
            Ok(())
        }
    }
}

/// Runs the race and the checks.
pub async fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|source| ClientError::Transport {
            what: "building the HTTP client".into(),
            source,
        })?;
    let mut client = Client::with_http(config.base_url.clone(), http);
    if let Some(token) = &config.admin_token {
        client = client.with_admin_token(token);
    }
    let promotion = match config.promotion {
        Some(id) => client.promotion(id).await?,
        None => {
            client
                .create_promotion(&loadgen_promotion(config.coupons))
                .await?
        }
    };

    let progress = if config.show_progress {
        ProgressBar::new(config.customers as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} grabs  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let race = Arc::new(race::Race::new(
        client.clone(),
        promotion.promotion_id,
        config,
        progress.clone(),
    ));
    let started = Instant::now();
    let raced = race.run(config.concurrency).await?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();

    let mut report = LoadReport {
        promotion_id: promotion.promotion_id,
        customers: config.customers,
        coupons_left: promotion.remaining,
        won: 0,
        sold_out: 0,
        other: BTreeMap::new(),
        retries: raced.retries,
        elapsed,
        latency: raced.latency,
        violations: Vec::new(),
    };
    check::check(&client, &promotion, config, raced.answers, &mut report).await?;
    Ok(report)
}

/// The promotion the load generator races for when it is given none.
fn loadgen_promotion(coupons: u64) -> PromotionRequest {
    let now = Utc::now();
    PromotionRequest {
        number_of_coupons: coupons,
        discount: 0.7,
        // A second in the past, so clock skew cannot make it "not started".
        publish_time: now - chrono::Duration::seconds(1),
        finish_time: Some(now + chrono::Duration::hours(1)),
        name: Some("loadgen".into()),
        draw_closes_at: None,
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

#[cfg(test)]
mod tests {
    use axum::routing::{get, post};
    use axum::{Json, Router};

    use reqwest::StatusCode;

    use super::*;
    use crate::api::{CouponDto, PromotionDto, StatusDto};

    /// A server that says yes to everyone: every grab "wins" coupon #1, and
    /// nothing is ever stored.
    async fn lying_server() -> String {
        let id = Uuid::nil();
        let promotion = move || PromotionDto {
            promotion_id: id,
            id,
            name: None,
            number_of_coupons: 3,
            remaining: 3,
            granted: 0,
            discount: 0.5,
            publish_time: Utc::now(),
            finish_time: Utc::now(),
            status: StatusDto::Active,
            finished_at: None,
            draw: None,
        };
        let coupon = move || CouponDto {
            promotion_id: id,
            number: 1,
            customer_id: "anyone".into(),
            discount: 0.5,
            grabbed_at: Utc::now(),
        };
        let app = Router::new()
            .route(
                "/admin/promotions/",
                post(move || async move { (StatusCode::CREATED, Json(promotion())) }),
            )
            .route(
                "/query/promotions/{id}",
                get(move || async move { Json(promotion()) }),
            )
            .route(
                "/command/coupons/",
                post(move || async move { (StatusCode::CREATED, Json(coupon())) }),
            )
            .route(
                "/query/coupons/{customer}",
                get(|| async { Json(Vec::<CouponDto>::new()) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    #[tokio::test]
    async fn a_server_that_oversells_is_caught() {
        let config = LoadConfig::new(lying_server().await, 10, 3);
        let report = run(&config).await.expect("the race runs");
        let found = report.violations.join("\n");
        assert!(found.contains("10 grabs won, expected"), "{found}");
        assert!(found.contains("same coupon number"), "{found}");
        assert!(found.contains("remaining"), "{found}");
        assert!(found.contains("was told Some(1) but holds []"), "{found}");
    }
}
