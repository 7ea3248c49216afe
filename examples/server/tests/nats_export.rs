//! Events out through NATS JetStream, with real processes: `seckill-server`
//! on PostgreSQL with `--nats-url` is `kill -9`ed in the middle of sales,
//! round after round, and seckill-nats's example `coupon_consumer` is
//! killed once too.
//! Afterwards every event in the store is in the stream exactly once by
//! `Nats-Msg-Id`, in sequence order per promotion, and the consumer's table
//! equals the store's coupons.
//!
//! ```text
//! cargo test --workspace --test nats_export     # needs nats-server -js at NATS_URL
//! ```
//!
//! The consumer is a Cargo example of another crate, so cargo builds it for
//! `cargo test --workspace` but names no path for it: the test finds it
//! beside its own executable, in the profile's `examples/`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_open, metric, publishing_to, ServerProcess};
use futures::StreamExt;
use seckill_client::Grab;
use seckill_nats::async_nats::header::NATS_MESSAGE_ID;
use seckill_nats::testing::NatsFixture;
use seckill_nats::SEQUENCE_HEADER;
use seckill_postgres::testing::PgFixture;
use sqlx::PgPool;
use tokio::process::{Child, Command};

/// The example consumer: `<target>/<profile>/examples/coupon_consumer`,
/// where cargo puts it for `cargo test --workspace`.
///
/// # Panics
/// When it is not there, with the command that builds it.
fn consumer() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    // <target>/<profile>/deps/<test binary>
    let profile = test
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let consumer = profile.join("examples").join("coupon_consumer");
    assert!(
        consumer.exists(),
        "{} is missing: run `cargo test --workspace`, or build it with \
         `cargo build -p seckill-nats --example coupon_consumer`",
        consumer.display()
    );
    consumer
}

/// Rounds of sale-and-kill; each round's promotion is a new one.
const ROUNDS: usize = 3;
const COUPONS: u32 = 150;
const CUSTOMERS: usize = 200;
const CONCURRENCY: usize = 16;
const SCHEMA: &str = "coupon_consumer";

/// The example consumer as a child process.
struct ConsumerProcess {
    child: Child,
}

impl ConsumerProcess {
    fn start(database_url: &str, nats: &NatsFixture) -> Self {
        let log = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let consumer = consumer();
        let child = Command::new(&consumer)
            .args(["--database-url", database_url, "--schema", SCHEMA])
            .args(["--nats-url", nats.url(), "--stream", nats.stream()])
            .args(["--subject-prefix", nats.prefix(), "--durable", "coupons"])
            // A killed consumer's unacknowledged messages come back soon.
            .args(["--ack-wait", "2s", "--batch", "32", "--log", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", consumer.display()));
        Self { child }
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll the consumer") {
            panic!("the consumer exited: {status}");
        }
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("kill -9 the consumer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_jetstream_once_and_the_consumer_ends_equal_across_kill_9() {
    let db = PgFixture::new().await;
    let nats = NatsFixture::new().await;
    let pool = db.pg_store().pool().clone();
    let flags = publishing_to(&nats);
    let subscription = publisher_name(&nats);
    let mut consumer = None;
    let mut consumer_killed = false;

    for round in 0..ROUNDS {
        let server = ServerProcess::builder()
            .database(db.url())
            .flags(&flags)
            .start()
            .await;
        let promotion = create_open(&server.client, COUPONS).await;
        if consumer.is_none() {
            // The stream exists once the first event is published.
            wait_for_stream(&nats).await;
            consumer = Some(ConsumerProcess::start(db.url(), &nats));
        }

        // Grab until `kill_after` are won, then kill -9 mid-load: some grabs
        // are committed and published, some committed and not yet, some
        // published and not checkpointed.
        let kill_after = 30 + round * 37;
        let won = Arc::new(AtomicUsize::new(0));
        let load = {
            let (client, won) = (server.client.clone(), won.clone());
            let id = promotion.promotion_id;
            tokio::spawn(async move {
                futures::stream::iter(0..CUSTOMERS)
                    .for_each_concurrent(CONCURRENCY, |i| {
                        let (client, won) = (client.clone(), won.clone());
                        async move {
                            if let Ok(Grab::Won(_)) =
                                client.grab(id, &format!("r{round}-{i}")).await
                            {
                                won.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                    .await;
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while won.load(Ordering::Relaxed) < kill_after && !load.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the load never reached {kill_after} grabs"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill().await;
        load.await.expect("load task");

        // The consumer dies once too, in the middle of the rounds.
        if round == 1 && !consumer_killed {
            consumer.take().expect("running").kill().await;
            consumer = Some(ConsumerProcess::start(db.url(), &nats));
            consumer_killed = true;
        }
    }

    // A last server publishes what the kills left unpublished.
    let server = ServerProcess::builder()
        .database(db.url())
        .flags(&flags)
        .start()
        .await;
    let stored = stored_events(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let lag_series = format!("seckill_subscription_lag{{subscription=\"{subscription}\"}}");
    loop {
        let in_stream = nats.messages().await.len();
        let lag = metric(&server.client, &lag_series).await;
        if in_stream >= stored.len() && lag == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "JetStream holds {in_stream} of {} events, lag {lag}",
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Exactly once by message id, every one of the store's events, in
    // sequence order per promotion.
    let messages = nats.messages().await;
    let mut ids = BTreeSet::new();
    let mut last_sequence: HashMap<String, u64> = HashMap::new();
    for message in &messages {
        let headers = &message.headers;
        let id = headers
            .get(NATS_MESSAGE_ID)
            .expect("Nats-Msg-Id")
            .to_string();
        assert!(ids.insert(id.clone()), "{id} is in the stream twice");
        let (promotion, sequence) = id.rsplit_once(':').expect("<promotion>:<sequence>");
        let sequence: u64 = sequence.parse().expect("a sequence");
        assert_eq!(
            headers.get(SEQUENCE_HEADER).map(|v| v.as_str()),
            Some(sequence.to_string().as_str())
        );
        let previous = last_sequence
            .insert(promotion.to_owned(), sequence)
            .unwrap_or(0);
        assert_eq!(
            sequence,
            previous + 1,
            "{id} follows #{previous} of its promotion"
        );
        let event_type = &stored[&id];
        assert_eq!(
            message.subject.as_str(),
            format!("{}.promotion.{promotion}.{event_type}", nats.prefix())
        );
    }
    let expected: BTreeSet<String> = stored.keys().cloned().collect();
    assert_eq!(ids, expected, "the stream's ids are the store's events");
    let grabs = stored.values().filter(|t| *t == "CouponGrabbed").count();
    assert!(grabs > ROUNDS * 30, "only {grabs} coupons were granted");

    // The consumer catches up, through its own kill, to the store's coupons.
    let coupons = store_coupons(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        consumer.as_mut().expect("running").assert_running();
        let table = consumer_coupons(&pool).await;
        if table.len() >= coupons.len() {
            assert_eq!(
                table, coupons,
                "the consumer's table equals the store's coupons"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer holds {} of {} coupons",
            table.len(),
            coupons.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An operator's republish of everything: all copies, none stored.
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(common::SERVER)
            .args(["publish", "--from", "1", "--database-url", db.url()])
            .args(flags)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("publish exits within 20 s")
    .expect("running seckill-server publish");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "publish failed: {said} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains(&format!(
            "published {} events from position 1",
            stored.len()
        )) && said.contains(&format!("0 stored, {} already in the stream", stored.len())),
        "{said}"
    );
    assert_eq!(nats.messages().await.len(), stored.len(), "no copy stored");

    // How many copies the last server's catch-up sent (dropped by JetStream):
    // the kills that hit between the acknowledgements and the checkpoint.
    let duplicates = metric(
        &server.client,
        &format!(
            "seckill_nats_duplicates_total{{stream=\"{}\"}}",
            nats.stream()
        ),
    )
    .await;
    eprintln!(
        "nats export: {} events, {grabs} coupons, {ROUNDS} server kills, 1 consumer kill, \
         {duplicates} copies dropped after the last restart",
        stored.len()
    );
    server.terminate().await;
}

/// Two server processes run the same subscription (the publisher of one
/// stream): one is active, the other stands by; after a `kill -9` of the
/// active one the standby takes over from the checkpoint, and every event
/// still reaches the stream exactly once by `Nats-Msg-Id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_subscription_and_the_standby_takes_over_after_kill_9() {
    let db = PgFixture::new().await;
    let nats = NatsFixture::new().await;
    let pool = db.pg_store().pool().clone();
    let flags = publishing_to(&nats);
    let active_series = format!(
        "seckill_subscription_active{{subscription=\"{}\"}}",
        publisher_name(&nats)
    );
    let first = ServerProcess::builder()
        .database(db.url())
        .replica()
        .flags(&flags)
        .start()
        .await;
    let second = ServerProcess::builder()
        .database(db.url())
        .replica()
        .flags(&flags)
        .start()
        .await;
    let promotion = create_open(&first.client, COUPONS).await;
    for i in 0..40 {
        second
            .client
            .grab(promotion.promotion_id, &format!("before-{i}"))
            .await
            .expect("grab");
    }

    // Exactly one of the two is active, once both have looked.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (active, standby) = loop {
        let states = (
            metric(&first.client, &active_series).await,
            metric(&second.client, &active_series).await,
        );
        match states {
            (1.0, 0.0) => break (first, second),
            (0.0, 1.0) => break (second, first),
            (a, b) => assert!(
                Instant::now() < deadline,
                "expected one active publisher, got {a} and {b}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    active.kill().await;

    // The standby takes over once the dead one's lease lapses, and
    // publishes what comes next as well as what the kill left behind.
    for i in 0..40 {
        standby
            .client
            .grab(promotion.promotion_id, &format!("after-{i}"))
            .await
            .expect("grab");
    }
    let stored = stored_events(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let took_over = metric(&standby.client, &active_series).await == 1.0;
        let in_stream = nats.messages().await.len();
        if took_over && in_stream >= stored.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "standby active: {took_over}; the stream holds {in_stream} of {} events",
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = nats
        .messages()
        .await
        .iter()
        .map(|m| {
            m.headers
                .get(NATS_MESSAGE_ID)
                .expect("Nats-Msg-Id")
                .to_string()
        })
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event published twice");
    let expected: BTreeSet<&String> = stored.keys().collect();
    assert_eq!(unique, expected, "every event published");
    standby.terminate().await;
}

/// The name of the server's publishing subscription for this test's stream.
fn publisher_name(nats: &NatsFixture) -> String {
    format!("nats-publisher.{}", nats.stream())
}

async fn wait_for_stream(nats: &NatsFixture) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while nats.jetstream().get_stream(nats.stream()).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the server never created the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every stored event's message id (`<promotion>:<sequence>`) and type.
async fn stored_events(pool: &PgPool) -> HashMap<String, String> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT aggregate_id || ':' || sequence, event_type FROM events \
         WHERE aggregate_type = 'Promotion'",
    )
    .fetch_all(pool)
    .await
    .expect("reading the events")
    .into_iter()
    .collect()
}

/// `(message id, promotion, customer, number)` of every coupon in the store.
type CouponRow = (String, String, String, i32);

async fn store_coupons(pool: &PgPool) -> BTreeSet<CouponRow> {
    sqlx::query_as(
        "SELECT aggregate_id || ':' || sequence, aggregate_id, \
                payload->'CouponGrabbed'->'coupon'->>'customer_id', \
                (payload->'CouponGrabbed'->'coupon'->>'number')::int \
         FROM events WHERE aggregate_type = 'Promotion' AND event_type = 'CouponGrabbed'",
    )
    .fetch_all(pool)
    .await
    .expect("reading the store's coupons")
    .into_iter()
    .collect()
}

async fn consumer_coupons(pool: &PgPool) -> BTreeSet<CouponRow> {
    // Before the consumer's first start, its table may not exist yet.
    sqlx::query_as(&format!(
        "SELECT message_id, promotion_id::text, customer_id, number FROM {SCHEMA}.coupons"
    ))
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .into_iter()
    .collect()
}
