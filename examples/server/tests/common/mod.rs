//! What the reliability tests share: the real `seckill-server` binary as a
//! child process with a typed client for it, and the checks every test ends with.

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different part.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use seckill_client::api::{CouponDto, PromotionDto};
use seckill_client::Client;
use serde_json::Value;
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The server binary cargo built for these tests.
pub const SERVER: &str = env!("CARGO_BIN_EXE_seckill-server");

pub use seckill_testkit::postgres::cluster::free_port;

pub mod server;

use server::promotion_request;

/// One `seckill-server` process on a loopback port.
pub struct ServerProcess {
    /// A client of it whose every call is bounded, so a hung server fails
    /// the test.
    pub client: Client,
    /// The loopback port it serves on.
    pub port: u16,
    child: Child,
}

/// The admin token of every server these tests start (their clients present it).
pub const ADMIN_TOKEN: &str = "process-tests-admin-token";

/// The cluster secret the replica tests share.
pub const CLUSTER_SECRET: &str = "replica-tests-secret";

/// How a test's [`ServerProcess`] is started: [`ServerProcess::builder`],
/// then what differs from the defaults, then [`start`](Self::start).
#[derive(Debug, Default)]
pub struct ServerProcessBuilder {
    port: Option<u16>,
    database_url: Option<String>,
    replica: bool,
    bare: bool,
    flags: Vec<String>,
    log_file: Option<PathBuf>,
}

impl ServerProcessBuilder {
    /// On PostgreSQL at `url` instead of in memory.
    pub fn database(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// As one replica of several on the same database: it advertises its
    /// own loopback URL and shares [`CLUSTER_SECRET`].
    pub fn replica(mut self) -> Self {
        self.replica = true;
        self
    }

    /// Without the defaults (the admin token and no rate limit): only
    /// `--bind`, `--log` and the given flags.
    pub fn bare(mut self) -> Self {
        self.bare = true;
        self
    }

    /// On this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Its log at `info` into `path`, for a test that reads it.
    pub fn log_file(mut self, path: &Path) -> Self {
        self.log_file = Some(path.to_owned());
        self
    }

    /// More flags, after the others.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags
            .extend(flags.iter().map(|flag| (*flag).to_owned()));
        self
    }

    /// Starts the process and waits until `/healthz` answers. Its client
    /// presents [`ADMIN_TOKEN`].
    pub async fn start(self) -> ServerProcess {
        let port = self.port.unwrap_or_else(free_port);
        let mut args: Vec<String> = Vec::new();
        if let Some(url) = &self.database_url {
            args.extend(["--database-url".to_owned(), url.clone()]);
        }
        if !self.bare {
            // The admin token, and no rate limit: the tests grab thousands
            // of times from one loopback address.
            args.extend(["--admin-token", ADMIN_TOKEN, "--rate-limit", "off"].map(str::to_owned));
        }
        if self.replica {
            args.extend([
                "--advertise-url".to_owned(),
                format!("http://127.0.0.1:{port}"),
                "--cluster-secret".to_owned(),
                CLUSTER_SECRET.to_owned(),
            ]);
        }
        args.extend(self.flags);
        ServerProcess::spawn(port, &args, self.log_file.as_deref()).await
    }
}

impl ServerProcess {
    /// A builder: in memory, on a free port, with [`ADMIN_TOKEN`] and no
    /// rate limit unless told otherwise.
    pub fn builder() -> ServerProcessBuilder {
        ServerProcessBuilder::default()
    }

    async fn spawn(port: u16, flags: &[String], log_file: Option<&Path>) -> Self {
        // Quiet unless TEST_LOG is set or the test reads the log: the
        // outage test provokes failures the server rightly logs.
        let (log, stderr) = match (log_file, std::env::var_os("TEST_LOG")) {
            (Some(path), _) => (
                "info",
                Stdio::from(std::fs::File::create(path).expect("creating the log file")),
            ),
            (None, Some(_)) => ("info", Stdio::inherit()),
            (None, None) => ("off", Stdio::null()),
        };
        let child = Command::new(SERVER)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--log", log])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {SERVER}: {e}"));
        let client =
            Client::with_timeout(format!("http://127.0.0.1:{port}"), Duration::from_secs(20))
                .expect("build client")
                .with_admin_token(ADMIN_TOKEN);
        let mut server = Self {
            client,
            port,
            child,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                panic!("the server exited before it was healthy: {status}");
            }
            if self.client.health().await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the server never became healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll the server").is_none()
    }

    /// SIGTERM, and waits until the process has drained and exited.
    pub async fn terminate(mut self) {
        let pid = self.pid().expect("a running server has a pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(status.success(), "kill -TERM {pid}: {status}");
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let status = exited.expect("the server exits within 30 s of SIGTERM");
        assert!(
            status.expect("waiting for the server").success(),
            "exit after SIGTERM"
        );
    }

    /// SIGKILL: no shutdown hook, no flush, nothing in flight is answered.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill -9 the server");
    }
}

/// The server flags that publish to `nats`'s stream of its own.
pub fn publishing_to(nats: &seckill_nats::testing::NatsFixture) -> [&str; 6] {
    [
        "--nats-url",
        nats.url(),
        "--nats-stream",
        nats.stream(),
        "--nats-subject-prefix",
        nats.prefix(),
    ]
}

/// `POST /admin/promotions/`: an open promotion of `coupons` coupons.
pub async fn create_open(client: &Client, coupons: u32) -> PromotionDto {
    let now = Utc::now();
    let request = promotion_request(
        u64::from(coupons),
        now - chrono::Duration::minutes(1),
        Some(now + chrono::Duration::hours(1)),
    );
    client
        .create_promotion(&request)
        .await
        .unwrap_or_else(|error| panic!("{error}: creating {request:?}"))
}

/// `POST /admin/promotions/` of an open promotion: only the status it got.
pub async fn create_open_answer(client: &Client) -> reqwest::StatusCode {
    let now = Utc::now();
    let request = promotion_request(5, now, Some(now + chrono::Duration::hours(1)));
    let sent = client
        .as_admin(client.http().post(client.url("/admin/promotions/")))
        .json(&request);
    sent.send().await.expect("a create request").status()
}

/// What the store holds for one promotion, read behind the API's back.
#[derive(Debug)]
pub struct Stored {
    /// `(customer, number)` of every `CouponGrabbed` event.
    pub grabbed_events: Vec<(String, u32)>,
    /// `(customer, number)` of every row of `coupons`.
    pub coupon_rows: Vec<(String, u32)>,
    /// `promotion_summaries.remaining`.
    pub remaining: u32,
    /// `promotion_summaries.last_sequence`.
    pub last_sequence: i64,
    /// The stream's last event.
    pub head: i64,
}

/// Reads [`Stored`] for `promotion`.
pub async fn stored(pool: &PgPool, promotion: Uuid) -> Stored {
    let events: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->'CouponGrabbed'->'coupon'->>'customer_id', \
                (payload->'CouponGrabbed'->'coupon'->>'number')::bigint \
         FROM events WHERE aggregate_type = 'Promotion' AND aggregate_id = $1 \
           AND event_type = 'CouponGrabbed' ORDER BY sequence",
    )
    .bind(promotion.to_string())
    .fetch_all(pool)
    .await
    .expect("reading the events");
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "SELECT customer_id, number FROM coupons WHERE promotion_id = $1 ORDER BY number",
    )
    .bind(promotion)
    .fetch_all(pool)
    .await
    .expect("reading the coupons");
    let (remaining, last_sequence): (i32, i64) = sqlx::query_as(
        "SELECT remaining, last_sequence FROM promotion_summaries WHERE promotion_id = $1",
    )
    .bind(promotion)
    .fetch_one(pool)
    .await
    .expect("reading the summary");
    let head: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(sequence), 0) FROM events \
         WHERE aggregate_type = 'Promotion' AND aggregate_id = $1",
    )
    .bind(promotion.to_string())
    .fetch_one(pool)
    .await
    .expect("reading the stream head");
    Stored {
        grabbed_events: events
            .into_iter()
            .map(|(c, n)| (c, u32::try_from(n).expect("coupon number")))
            .collect(),
        coupon_rows: rows
            .into_iter()
            .map(|(c, n)| (c, u32::try_from(n).expect("coupon number")))
            .collect(),
        remaining: u32::try_from(remaining).expect("remaining"),
        last_sequence,
        head,
    }
}

/// Checks the four promises for one promotion, in the store and through the
/// API, and returns the violations found (empty when all hold):
///
/// 1. every acknowledged coupon is in the events, in `coupons`, and in the
///    customer's list over HTTP;
/// 2. nothing oversold: at most `coupons` granted, numbered 1..=granted;
/// 3. nobody holds two coupons;
/// 4. remaining = coupons − grab events, in the summary row and over HTTP.
pub async fn violations(
    client: &Client,
    pool: &PgPool,
    promotion: &PromotionDto,
    acknowledged: &HashMap<String, CouponDto>,
) -> Vec<String> {
    let mut found = Vec::new();
    let id = promotion.promotion_id;
    let stored = stored(pool, id).await;
    let events: HashMap<&str, u32> = stored
        .grabbed_events
        .iter()
        .map(|(c, n)| (c.as_str(), *n))
        .collect();
    let rows: HashMap<&str, u32> = stored
        .coupon_rows
        .iter()
        .map(|(c, n)| (c.as_str(), *n))
        .collect();

    // 1. Acknowledged means durable.
    for (customer, coupon) in acknowledged {
        if events.get(customer.as_str()) != Some(&coupon.number) {
            found.push(format!(
                "acknowledged coupon {coupon:?} is not in the events"
            ));
        }
        if rows.get(customer.as_str()) != Some(&coupon.number) {
            found.push(format!(
                "acknowledged coupon {coupon:?} is not in `coupons`"
            ));
        }
        let listed = client.coupons_of(customer).await.expect("listing coupons");
        let held: Vec<&CouponDto> = listed.iter().filter(|c| c.promotion_id == id).collect();
        if held.len() != 1 || held[0].number != coupon.number {
            found.push(format!(
                "{customer} was acknowledged {coupon:?} but lists {held:?}"
            ));
        }
    }

    // 2. Nothing oversold, numbers 1..=granted with no gap or repeat.
    let granted = stored.grabbed_events.len();
    if granted > promotion.number_of_coupons as usize {
        found.push(format!(
            "oversold: {granted} of {}",
            promotion.number_of_coupons
        ));
    }
    let numbers: HashSet<u32> = stored.grabbed_events.iter().map(|(_, n)| *n).collect();
    let expected: HashSet<u32> = (1..=u32::try_from(granted).unwrap_or(u32::MAX)).collect();
    if numbers != expected {
        found.push(format!("coupon numbers are not 1..={granted}: {numbers:?}"));
    }
    if stored.coupon_rows.len() != granted {
        found.push(format!(
            "{} rows in `coupons` but {granted} grab events",
            stored.coupon_rows.len()
        ));
    }

    // 3. Nobody holds two.
    if events.len() != granted {
        found.push(format!(
            "{} grab events for {} customers",
            granted,
            events.len()
        ));
    }
    if rows.len() != stored.coupon_rows.len() {
        found.push("a customer has two rows in `coupons`".to_owned());
    }

    // 4. The count adds up, and the projection is at the stream's head.
    let should_remain =
        promotion.number_of_coupons as usize - granted.min(promotion.number_of_coupons as usize);
    if stored.remaining as usize != should_remain {
        found.push(format!(
            "summary says {} remain, events say {should_remain}",
            stored.remaining
        ));
    }
    if stored.last_sequence != stored.head {
        found.push(format!(
            "summary is at event {} but the stream at {}",
            stored.last_sequence, stored.head
        ));
    }
    let view = client.promotion(id).await.expect("reading the promotion");
    if view.remaining as usize != should_remain {
        found.push(format!(
            "the API says {} remain, events say {should_remain}",
            view.remaining
        ));
    }
    found
}

/// A series without labels (or with its labels written into `name`), read
/// from the server's `/metrics`; 0 if it has not been recorded yet.
pub async fn metric(client: &Client, name: &str) -> f64 {
    let text = client.metrics().await.expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A short JSON summary line the scripts can grep.
pub fn figures(name: &str, values: Value) {
    eprintln!("FIGURES {name} {values}");
}
