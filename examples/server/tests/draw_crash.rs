//! Draws under `kill -9` (docs/draws.md): the real server on PostgreSQL is
//! killed while customers enter, and again while it awards a draw too big
//! for one commit; restarted on the same database, every acknowledged
//! entry is in the draw, the draw happens exactly once, and the stored
//! events verify. Among two replicas, the draw's owner is killed before the
//! close, and the other replica draws it.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use common::ServerProcess;
use futures::StreamExt;
use seckill_app::EventStore;
use seckill_client::api::{PromotionRequest, StatusDto};
use seckill_client::{Client, ClientError, Enter};
use seckill_domain::{draw, Promotion, PromotionEvent, PromotionId};
use seckill_postgres::testing::PgFixture;

/// A draw of `coupons` closing `closes_in` from now.
async fn create_draw(client: &Client, coupons: u64, closes_in: chrono::Duration) -> uuid::Uuid {
    let now = Utc::now();
    let request = PromotionRequest {
        number_of_coupons: coupons,
        discount: 0.5,
        publish_time: now - chrono::Duration::minutes(1),
        finish_time: Some(now + chrono::Duration::hours(1)),
        name: Some("a draw under kill -9".into()),
        draw_closes_at: Some(
            (now + closes_in)
                .duration_trunc(chrono::Duration::milliseconds(1))
                .unwrap(),
        ),
    };
    client
        .create_promotion(&request)
        .await
        .unwrap()
        .promotion_id
}

/// Until the promotion reads drawn.
async fn await_drawn(client: &Client, id: uuid::Uuid) {
    // Generous: a restart, a takeover of the draw, and a disk that stalls.
    let deadline = Instant::now() + Duration::from_secs(90);
    while client.promotion(id).await.unwrap().status != StatusDto::Drawn {
        assert!(Instant::now() < deadline, "not drawn");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stored events of the promotion, checked: one `PromotionDrawn`, and
/// a draw that verifies. Returns the entrants.
async fn checked(fixture: &PgFixture, id: uuid::Uuid) -> HashSet<String> {
    let events = fixture
        .pg_store()
        .load_events(PromotionId::from_uuid(id), 0)
        .await
        .unwrap();
    let draws = events
        .iter()
        .filter(|e| matches!(e, PromotionEvent::PromotionDrawn { .. }))
        .count();
    assert_eq!(draws, 1, "drawn exactly once");
    let verified = draw::verify(&events).expect("the stored draw verifies");
    verified
        .entries
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect()
}

/// Entries of `customers`, `concurrency` at a time; the acknowledged ones
/// (entered, or told they had entered) collect in `acked`.
fn enter_all(
    client: &Client,
    id: uuid::Uuid,
    customers: Vec<String>,
    concurrency: usize,
    acked: Arc<Mutex<HashSet<String>>>,
) -> tokio::task::JoinHandle<Vec<(String, Result<Enter, ClientError>)>> {
    let client = client.clone();
    tokio::spawn(async move {
        futures::stream::iter(customers)
            .map(|customer| {
                let (client, acked) = (client.clone(), acked.clone());
                async move {
                    let outcome = client.enter(id, &customer).await;
                    if matches!(outcome, Ok(Enter::Entered(_) | Enter::AlreadyEntered(_))) {
                        acked.lock().unwrap().insert(customer.clone());
                    }
                    (customer, outcome)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_kill_9_and_are_in_the_draw() {
    let fixture = PgFixture::new().await;
    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let id = create_draw(&server.client, 50, chrono::Duration::seconds(10)).await;
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let customers = (0..600).map(|i| format!("entrant-{i}")).collect();
    let load = enter_all(&server.client, id, customers, 32, acked.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 150 && !load.is_finished() {
        assert!(Instant::now() < deadline, "the entries never reached 150");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().await;
    let outcomes = load.await.unwrap();

    // Restarted on the same database: whoever got no answer enters again,
    // and is told their entry, a new one, or (past the close) that entries
    // closed.
    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let mut unanswered = 0;
    for (customer, outcome) in outcomes {
        match outcome {
            Ok(Enter::Entered(_) | Enter::AlreadyEntered(_)) => {}
            Err(ClientError::Transport { .. }) => {
                unanswered += 1;
                match server.client.enter(id, &customer).await.unwrap() {
                    Enter::Entered(_) | Enter::AlreadyEntered(_) => {
                        acked.lock().unwrap().insert(customer);
                    }
                    Enter::Closed { .. } => {}
                    other => panic!("{customer}'s retry: {other:?}"),
                }
            }
            other => panic!("{customer} before the kill: {other:?}"),
        }
    }
    await_drawn(&server.client, id).await;
    let entrants = checked(&fixture, id).await;
    let acked = acked.lock().unwrap().clone();
    let missing: Vec<_> = acked.difference(&entrants).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the draw: {missing:?}"
    );
    eprintln!(
        "{} entries acknowledged, {unanswered} unanswered at the kill, {} in the draw",
        acked.len(),
        entrants.len()
    );
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draw_killed_while_awarding_finishes_once_after_a_restart() {
    // More winners than two commits award, so the kill can fall between.
    let winners = 2 * Promotion::AWARDS_PER_COMMIT as usize + 500;
    let fixture = PgFixture::new().await;
    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let id = create_draw(
        &server.client,
        winners as u64,
        chrono::Duration::seconds(40),
    )
    .await;
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let customers = (0..winners).map(|i| format!("c{i}")).collect();
    let outcomes = enter_all(&server.client, id, customers, 64, acked.clone())
        .await
        .unwrap();
    for (customer, outcome) in &outcomes {
        assert!(
            matches!(outcome, Ok(Enter::Entered(_))),
            "{customer}: {outcome:?}"
        );
    }

    // Killed as soon as the draw's first commit is visible.
    let pool = fixture.pg_store().pool();
    let drawn =
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'PromotionDrawn'";
    let awarded =
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'CouponGrabbed'";
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(id.to_string())
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(drawn).await == 0 {
        assert!(Instant::now() < deadline, "never drawn");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().await;
    let before = count(awarded).await;

    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    await_drawn(&server.client, id).await;
    let entrants = checked(&fixture, id).await;
    assert_eq!(entrants.len(), winners);
    assert_eq!(
        count(awarded).await as usize,
        winners,
        "every winner awarded once"
    );
    eprintln!("killed with {before} of {winners} coupons awarded; finished once after the restart");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_killed_before_the_close_leaves_the_draw_to_another_replica() {
    let fixture = PgFixture::new().await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let server = ServerProcess::builder()
            .database(fixture.url())
            .replica()
            .start()
            .await;
        replicas.push(server);
    }
    let id = create_draw(&replicas[0].client, 20, chrono::Duration::seconds(8)).await;
    // Entries through both replicas: the one that does not own the draw
    // forwards them to the one that does.
    let mut acked = HashSet::new();
    for n in 0..60 {
        let customer = format!("entrant-{n}");
        let client = &replicas[n % 2].client;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.enter(id, &customer).await.unwrap() {
                Enter::Entered(_) | Enter::AlreadyEntered(_) => break,
                Enter::Unavailable { .. } if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("{customer}: {other:?}"),
            }
        }
        acked.insert(customer);
    }

    // The owner dies before the close; its lease lapses, and the other
    // replica's timer finds the draw due and draws it.
    let owner: String = sqlx::query_scalar(
        "SELECT r.address FROM promotion_owners o JOIN replicas r USING (replica_id) \
         WHERE o.promotion_id = $1",
    )
    .bind(id)
    .fetch_one(fixture.pg_store().pool())
    .await
    .expect("the draw has an owner");
    let at = replicas
        .iter()
        .position(|server| owner.ends_with(&format!(":{}", server.port)))
        .expect("the owner is one of the replicas");
    let survivor = replicas.remove(1 - at);
    replicas.remove(0).kill().await;
    await_drawn(&survivor.client, id).await;
    let entrants = checked(&fixture, id).await;
    let missing: Vec<_> = acked.difference(&entrants).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the draw: {missing:?}"
    );
    survivor.kill().await;
}
