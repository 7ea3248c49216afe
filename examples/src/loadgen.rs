//! The load generator: N customers race for M coupons over HTTP, then it
//! checks through the query API that the server told the truth.
//!
//! A library function ([`run`]) so tests drive it against an in-process
//! server; the `loadgen` binary only parses flags and prints the report.
//!
//! What it checks after the race (any failure is a [`LoadReport::violations`] entry):
//! * exactly min(customers, coupons left) grabs won;
//! * the promotion's `remaining` and `granted` agree with that;
//! * coupon numbers are distinct;
//! * every customer's coupon list holds exactly the coupon they were told
//!   they won (none for the others), so nobody holds two.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::server::{CouponDto, PromotionDto};

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
        }
    }
}

/// Why the load generator could not run (as opposed to finding the server wrong).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An HTTP request failed outright.
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered an admin or query request unexpectedly.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// What was being done.
        what: String,
        /// The status it answered.
        status: StatusCode,
        /// The body it answered, for the problem's detail.
        body: String,
    },
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

/// How one customer's grab ended.
enum Outcome {
    Won(CouponDto),
    SoldOut,
    Other(StatusCode),
}

/// Most 503 retries of one grab: a server that stays overloaded this long is
/// reported rather than waited for.
const MAX_RETRIES: u32 = 50;

/// Runs the race and the checks.
pub async fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(config.concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|source| LoadError::Http {
            what: "building the HTTP client".into(),
            source,
        })?;
    let base = config.base_url.trim_end_matches('/').to_owned();
    let promotion = match config.promotion {
        Some(id) => fetch_promotion(&client, &base, id).await?,
        None => create_promotion(&client, &base, config.coupons).await?,
    };

    let progress = if config.show_progress {
        ProgressBar::new(config.customers as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} grabs  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let race = Race {
        client: client.clone(),
        url: format!("{base}/command/coupons/"),
        promotion_id: promotion.promotion_id,
        prefix: config.customer_prefix.clone(),
        next: AtomicUsize::new(0),
        customers: config.customers,
        progress: progress.clone(),
    };
    let race = Arc::new(race);
    let started = Instant::now();
    let workers: Vec<_> = (0..config.concurrency.max(1))
        .map(|_| tokio::spawn(Arc::clone(&race).work()))
        .collect();
    let mut outcomes: Vec<(usize, Outcome)> = Vec::with_capacity(config.customers);
    let mut latency = new_histogram();
    let mut retries = 0;
    for worker in workers {
        let (mine, histogram, retried) = worker.await.map_err(|error| LoadError::Status {
            what: format!("a grab worker panicked: {error}"),
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: String::new(),
        })??;
        outcomes.extend(mine);
        let _ = latency.add(&histogram);
        retries += retried;
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();

    let mut report = LoadReport {
        promotion_id: promotion.promotion_id,
        customers: config.customers,
        coupons_left: promotion.remaining,
        won: 0,
        sold_out: 0,
        other: BTreeMap::new(),
        retries,
        elapsed,
        latency,
        violations: Vec::new(),
    };
    check(&client, &base, &promotion, config, outcomes, &mut report).await?;
    Ok(report)
}

/// The shared state of the racing workers.
struct Race {
    client: reqwest::Client,
    url: String,
    promotion_id: Uuid,
    prefix: String,
    next: AtomicUsize,
    customers: usize,
    progress: ProgressBar,
}

type WorkerResult = Result<(Vec<(usize, Outcome)>, Histogram<u64>, u64), LoadError>;

impl Race {
    /// Takes customers off the shared counter until none are left.
    async fn work(self: Arc<Self>) -> WorkerResult {
        let mut outcomes = Vec::new();
        let mut latency = new_histogram();
        let mut retries = 0;
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.customers {
                return Ok((outcomes, latency, retries));
            }
            let customer = format!("{}{index}", self.prefix);
            let mut attempt = 0;
            let outcome = loop {
                let sent = Instant::now();
                let response = self
                    .client
                    .post(&self.url)
                    .json(&json!({ "promotionId": self.promotion_id, "customerId": customer }))
                    .send()
                    .await
                    .map_err(|source| LoadError::Http {
                        what: format!("grab for {customer}"),
                        source,
                    })?;
                let status = response.status();
                let body = response.bytes().await.map_err(|source| LoadError::Http {
                    what: format!("reading the grab answer for {customer}"),
                    source,
                })?;
                let _ =
                    latency.record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                match status {
                    StatusCode::CREATED => match serde_json::from_slice(&body) {
                        Ok(coupon) => break Outcome::Won(coupon),
                        Err(_) => break Outcome::Other(status),
                    },
                    // A retry after a 503 that was committed after all: the
                    // problem carries the coupon, so it counts as won.
                    StatusCode::CONFLICT => {
                        match serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|problem| {
                                serde_json::from_value(problem["coupon"].clone()).ok()
                            }) {
                            Some(coupon) if attempt > 0 => break Outcome::Won(coupon),
                            _ => break Outcome::Other(status),
                        }
                    }
                    StatusCode::GONE => break Outcome::SoldOut,
                    StatusCode::SERVICE_UNAVAILABLE if attempt < MAX_RETRIES => {
                        attempt += 1;
                        retries += 1;
                        // Spread retries out instead of hammering a full queue.
                        tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
                    }
                    other => break Outcome::Other(other),
                }
            };
            outcomes.push((index, outcome));
            self.progress.inc(1);
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

async fn create_promotion(
    client: &reqwest::Client,
    base: &str,
    coupons: u64,
) -> Result<PromotionDto, LoadError> {
    let now = Utc::now();
    let body = json!({
        "numberOfCoupons": coupons,
        "discount": 0.7,
        // A second in the past, so clock skew cannot make it "not started".
        "publishTime": now - chrono::Duration::seconds(1),
        "finishTime": now + chrono::Duration::hours(1),
        "name": "loadgen",
    });
    let response = client
        .post(format!("{base}/admin/promotions/"))
        .json(&body)
        .send()
        .await
        .map_err(|source| LoadError::Http {
            what: "creating the promotion".into(),
            source,
        })?;
    expect_json(response, StatusCode::CREATED, "creating the promotion").await
}

async fn fetch_promotion(
    client: &reqwest::Client,
    base: &str,
    id: Uuid,
) -> Result<PromotionDto, LoadError> {
    get_json(
        client,
        format!("{base}/query/promotions/{id}"),
        &format!("reading promotion {id}"),
    )
    .await
}

/// A query that must answer 200 with JSON.
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: String,
    what: &str,
) -> Result<T, LoadError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|source| LoadError::Http {
            what: what.to_owned(),
            source,
        })?;
    expect_json(response, StatusCode::OK, what).await
}

async fn expect_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    expected: StatusCode,
    what: &str,
) -> Result<T, LoadError> {
    let status = response.status();
    let body = response.text().await.map_err(|source| LoadError::Http {
        what: what.to_owned(),
        source,
    })?;
    if status != expected {
        return Err(LoadError::Status {
            what: what.to_owned(),
            status,
            body,
        });
    }
    serde_json::from_str(&body).map_err(|error| LoadError::Status {
        what: format!("{what}: unreadable answer ({error})"),
        status,
        body,
    })
}

/// Counts the outcomes and checks them against the query API.
async fn check(
    client: &reqwest::Client,
    base: &str,
    before: &PromotionDto,
    config: &LoadConfig,
    outcomes: Vec<(usize, Outcome)>,
    report: &mut LoadReport,
) -> Result<(), LoadError> {
    let mut won = vec![None; config.customers];
    for (index, outcome) in outcomes {
        match outcome {
            Outcome::Won(coupon) => {
                report.won += 1;
                won[index] = Some(coupon);
            }
            Outcome::SoldOut => report.sold_out += 1,
            Outcome::Other(status) => *report.other.entry(status.as_u16()).or_default() += 1,
        }
    }
    let violations = &mut report.violations;
    let expected = config.customers.min(before.remaining as usize);
    if report.won != expected {
        violations.push(format!(
            "{} grabs won, expected min({} customers, {} coupons left) = {expected}",
            report.won, config.customers, before.remaining
        ));
    }
    if !report.other.is_empty() {
        violations.push(format!("unexpected grab answers: {:?}", report.other));
    }
    let numbers: HashSet<u32> = won.iter().flatten().map(|c| c.number).collect();
    if numbers.len() != report.won {
        violations.push("two winners were told the same coupon number".into());
    }

    let after = fetch_promotion(client, base, before.promotion_id).await?;
    if after.remaining as usize + report.won != before.remaining as usize {
        violations.push(format!(
            "promotion says {} remaining; {} before minus {} won is {}",
            after.remaining,
            before.remaining,
            report.won,
            before.remaining as usize - report.won.min(before.remaining as usize)
        ));
    }
    if after.granted + after.remaining != after.number_of_coupons {
        violations.push(format!(
            "promotion's granted {} + remaining {} != {} coupons",
            after.granted, after.remaining, after.number_of_coupons
        ));
    }

    // Every customer's list, at the same concurrency as the race.
    let lists = futures::stream::iter(0..config.customers)
        .map(|index| {
            let url = format!("{base}/query/coupons/{}{index}", config.customer_prefix);
            async move {
                let what = format!("listing coupons of customer {index}");
                let coupons: Vec<CouponDto> = get_json(client, url, &what).await?;
                Ok::<_, LoadError>((index, coupons))
            }
        })
        .buffer_unordered(config.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for listed in lists {
        let (index, coupons) = listed?;
        let held: Vec<&CouponDto> = coupons
            .iter()
            .filter(|c| c.promotion_id == before.promotion_id)
            .collect();
        match (&won[index], held.as_slice()) {
            (Some(told), [stored]) if *stored == told => {}
            (None, []) => {}
            (told, stored) => violations.push(format!(
                "customer {}{index} was told {:?} but holds {:?}",
                config.customer_prefix,
                told.as_ref().map(|c| c.number),
                stored.iter().map(|c| c.number).collect::<Vec<_>>()
            )),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::routing::{get, post};
    use axum::{Json, Router};

    use super::*;
    use crate::server::StatusDto;

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
