//! Shared pieces of the adapter tests: real domain events (from the domain's
//! `testing` fixtures), and commits built the way the grab engine builds them.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use chrono::Duration;
use cqrs_es::{Aggregate, DomainEvent};
use seckill_app::{Commit, EventStore, PromotionSummary, StoreError};
use seckill_domain::testing;
pub use seckill_domain::testing::{created, opens};
use seckill_domain::{Coupon, Promotion, PromotionEvent, PromotionId};
use seckill_postgres::PgStore;

/// The one value `sql` selects, as a bigint.
pub async fn count(store: &PgStore, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// How many coupons of `id` are stored.
pub async fn coupons_of(store: &PgStore, id: PromotionId) -> i64 {
    count(
        store,
        &format!("SELECT count(*) FROM coupons WHERE promotion_id = '{id}'"),
    )
    .await
}

/// Appends `commits` as one group, as the engine's committer hands them over.
pub async fn append_together(store: &PgStore, commits: &[Commit]) -> Vec<Result<(), StoreError>> {
    store
        .append_group(&commits.iter().collect::<Vec<_>>())
        .await
}

/// Inserts `event` as event `sequence` of `id`'s stream on `connection`,
/// inside whatever transaction it has open, as another writer's append would
/// (its statement trigger takes the events lock): no coupons, no summary.
pub async fn insert_around_the_store(
    connection: &mut sqlx::PgConnection,
    id: PromotionId,
    sequence: i64,
    event: &PromotionEvent,
) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Promotion', $1, $2, $3, $4, $5::json, '{}')",
    )
    .bind(id.to_string())
    .bind(sequence)
    .bind(event.event_type())
    .bind(event.event_version())
    .bind(serde_json::to_string(event).unwrap())
    .execute(connection)
    .await
    .unwrap();
}

/// `id`'s stored summary as (remaining, last sequence); it must exist.
pub async fn summary_of(store: &PgStore, id: PromotionId) -> (u32, u64) {
    let summary = seckill_app::ProjectionStore::promotion(store, id)
        .await
        .unwrap()
        .expect("the promotion has a summary");
    (summary.remaining, summary.last_sequence)
}

/// A new promotion id.
pub fn new_id() -> PromotionId {
    PromotionId::from_uuid(uuid::Uuid::new_v4())
}

/// The next grab of `promotion` by `customer`, decided by the aggregate.
pub fn grab(promotion: &Promotion, customer: &str) -> Vec<PromotionEvent> {
    let customer = testing::customer(customer);
    let coupon: Coupon = promotion
        .decide_grab(&customer, opens() + Duration::seconds(1))
        .unwrap();
    let remaining = promotion.remaining() - 1;
    vec![PromotionEvent::CouponGrabbed { coupon, remaining }]
}

/// One promotion as the engine tracks it: its state and its position.
#[derive(Debug, Clone)]
pub struct Writer {
    pub id: PromotionId,
    pub state: Promotion,
    pub sequence: u64,
}

impl Writer {
    /// A writer of a promotion not created yet.
    pub fn new(id: PromotionId) -> Self {
        Self {
            id,
            state: Promotion::default(),
            sequence: 0,
        }
    }

    /// Creates a new promotion of `coupons` coupons in `store`.
    pub async fn create(store: &PgStore, coupons: u64) -> Self {
        let mut writer = Self::new(new_id());
        writer
            .append(store, vec![created(writer.id, coupons)])
            .await;
        writer
    }

    /// Appends `events`, which must succeed.
    pub async fn append(&mut self, store: &PgStore, events: Vec<PromotionEvent>) {
        let commit = self.commit(events);
        store.append(&commit).await.unwrap();
    }

    /// Appends `n` grabs by customers `{prefix}{i}`, which must succeed.
    pub async fn append_grabs(&mut self, store: &PgStore, prefix: &str, n: usize) {
        let events = self.grabs(prefix, n);
        self.append(store, events).await;
    }

    /// The commit of `events` on top of this writer's state, which it then
    /// takes on, as if the append succeeded.
    pub fn commit(&mut self, events: Vec<PromotionEvent>) -> Commit {
        let id = self.id;
        let expected = self.sequence;
        for event in events.iter().cloned() {
            self.state.apply(event);
        }
        self.sequence += events.len() as u64;
        Commit {
            promotion_id: id,
            expected_sequence: expected,
            summary: PromotionSummary::of(&self.state, self.sequence).unwrap(),
            events,
            traceparents: Vec::new(),
        }
    }

    /// `n` grabs by customers named `{prefix}{i}`, decided one after another.
    pub fn grabs(&self, prefix: &str, n: usize) -> Vec<PromotionEvent> {
        let mut state = self.state.clone();
        let mut events = Vec::with_capacity(n);
        for i in 0..n {
            for event in grab(&state, &format!("{prefix}{i}")) {
                state.apply(event.clone());
                events.push(event);
            }
        }
        events
    }
}

/// The error of an append through `store` while another session (on
/// `blocker`'s pool) holds the events table, so the append waits until
/// something gives up: its statement timeout, when it has one.
pub async fn append_behind_a_lock(blocker: &PgStore, store: &PgStore) -> StoreError {
    let mut lock = blocker.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let id = new_id();
    let error = store
        .append(&Writer::new(id).commit(vec![created(id, 1)]))
        .await
        .unwrap_err();
    lock.rollback().await.unwrap();
    error
}
