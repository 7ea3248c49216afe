//! The behaviour suite: what every backend must do, written once.
//!
//! Each test is an `async fn` taking a [`Fixture`]; [`suite!`](crate::suite)
//! turns them into `#[tokio::test]`s for one backend, so the in-memory
//! adapter provably behaves like PostgreSQL.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use seckill_app::{
    coupons_in, Backend, ConfigError, EngineConfig, FixedClock, SecKill, SecKillError, StoreError,
};
use seckill_domain::{
    Coupon, CouponCount, Discount, PromotionError, PromotionEvent, PromotionId, PromotionName,
    PromotionStatus, PromotionTerms,
};

use crate::faults::{FaultPlan, FaultyStore};
use crate::fixture::Fixture;

/// The suite's times, terms and customers: the fixtures every crate's tests share.
pub use seckill_domain::testing::{customer, opens, terms};

/// A service over `store` with a clock standing one second after [`opens`].
pub fn service(store: Arc<dyn Backend>) -> (SecKill, Arc<FixedClock>) {
    service_with(
        store,
        EngineConfig {
            idle_timeout: StdDuration::from_millis(500),
            ..EngineConfig::default()
        },
    )
}

/// [`service`] with these engine settings.
pub fn service_with(store: Arc<dyn Backend>, config: EngineConfig) -> (SecKill, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let seckill = SecKill::builder(store)
        .clock(clock.clone())
        .config(config)
        .build()
        .expect("valid engine settings");
    (seckill, clock)
}

/// Checks one promotion's stored truth against the rules and the projections:
/// coupons numbered 1..=n with no gaps, nobody twice, never more than offered,
/// the summary's remaining count right, and every coupon in its holder's list.
/// Returns the coupons the event stream holds.
pub async fn assert_consistent(store: &Arc<dyn Backend>, promotion_id: PromotionId) -> Vec<Coupon> {
    let events = store.load_events(promotion_id, 0).await.unwrap();
    let Some(PromotionEvent::PromotionCreated { .. }) = events.first() else {
        panic!("stream of {promotion_id} does not start with PromotionCreated: {events:?}");
    };
    let coupons: Vec<Coupon> = coupons_in(&events).cloned().collect();
    let summary = store
        .promotion(promotion_id)
        .await
        .unwrap()
        .expect("summary projected");
    assert!(
        coupons.len() <= summary.number_of_coupons as usize,
        "oversold"
    );
    for (i, coupon) in coupons.iter().enumerate() {
        assert_eq!(coupon.number as usize, i + 1, "coupon numbers have a gap");
    }
    let holders: HashSet<_> = coupons.iter().map(|c| &c.customer_id).collect();
    assert_eq!(holders.len(), coupons.len(), "a customer holds two coupons");
    assert_eq!(
        summary.remaining as usize,
        summary.number_of_coupons as usize - coupons.len(),
        "remaining count disagrees with the events"
    );
    assert_eq!(
        summary.last_sequence,
        events.len() as u64,
        "projection position lags"
    );
    for coupon in &coupons {
        let held = store.coupons_of(&coupon.customer_id).await.unwrap();
        let mine: Vec<_> = held
            .iter()
            .filter(|c| c.promotion_id == promotion_id)
            .collect();
        assert_eq!(
            mine,
            vec![coupon],
            "coupon projection disagrees for {}",
            coupon.customer_id
        );
    }
    coupons
}

fn rejection(result: Result<Coupon, SecKillError>) -> PromotionError {
    match result {
        Err(SecKillError::Rejected(error)) => error,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The happy path: create, update before the start, grab, query.
pub async fn creates_updates_grabs_and_queries(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, clock) = service(store.clone());
    clock.set(opens() - Duration::minutes(10));

    let id = seckill.create_promotion(terms(3)).await.unwrap();
    let view = seckill.promotion(id).await.unwrap();
    assert_eq!(view.status, PromotionStatus::Upcoming);
    assert_eq!(
        (view.summary.number_of_coupons, view.summary.remaining),
        (3, 3)
    );

    let renamed = PromotionTerms::new(
        CouponCount::new(5).unwrap(),
        Discount::new(0.5).unwrap(),
        opens(),
        opens() + Duration::hours(2),
        Some(PromotionName::parse("Singles' Day").unwrap()),
    )
    .unwrap();
    seckill.update_promotion(id, renamed).await.unwrap();
    let view = seckill.promotion(id).await.unwrap();
    assert_eq!(view.summary.name.as_deref(), Some("Singles' Day"));
    assert_eq!(
        (view.summary.number_of_coupons, view.summary.remaining),
        (5, 5)
    );
    assert_eq!(view.summary.discount, 0.5);

    let active = seckill.active_promotions().await.unwrap();
    assert_eq!(
        active
            .iter()
            .map(|v| v.summary.promotion_id)
            .collect::<Vec<_>>(),
        vec![id]
    );

    clock.set(opens() + Duration::seconds(1));
    let alice = seckill.grab(id, customer("alice")).await.unwrap();
    let bob = seckill.grab(id, customer("bob")).await.unwrap();
    assert_eq!((alice.number, bob.number), (1, 2));
    assert_eq!(alice.discount.get(), 0.5);
    assert_eq!(alice.grabbed_at, opens() + Duration::seconds(1));

    assert_eq!(
        seckill.coupons_of(&customer("alice")).await.unwrap(),
        vec![alice]
    );
    assert_eq!(
        seckill.coupons_of(&customer("stranger")).await.unwrap(),
        vec![]
    );
    let view = seckill.promotion(id).await.unwrap();
    assert_eq!(view.status, PromotionStatus::Active);
    assert_eq!(view.summary.remaining, 3);
    assert_consistent(&store, id).await;
}

/// Every way a command can be refused has its own typed answer, and none of
/// them records anything.
pub async fn every_rejection_is_typed_and_records_nothing(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, clock) = service(store.clone());
    let unknown = PromotionId::from_uuid(uuid::Uuid::new_v4());
    assert!(matches!(
        seckill.grab(unknown, customer("alice")).await,
        Err(SecKillError::NotFound(id)) if id == unknown
    ));
    assert!(matches!(
        seckill.promotion(unknown).await,
        Err(SecKillError::NotFound(_))
    ));
    assert!(matches!(
        seckill.cancel_promotion(unknown).await,
        Err(SecKillError::NotFound(_))
    ));

    clock.set(opens() - Duration::minutes(1));
    let id = seckill.create_promotion(terms(1)).await.unwrap();
    assert!(matches!(
        seckill.create_promotion_with_id(id, terms(1)).await,
        Err(SecKillError::Rejected(PromotionError::AlreadyExists))
    ));
    assert!(matches!(
        rejection(seckill.grab(id, customer("early")).await),
        PromotionError::NotStarted { publish_time } if publish_time == opens()
    ));

    clock.set(opens() + Duration::seconds(1));
    assert!(matches!(
        seckill.update_promotion(id, terms(9)).await,
        Err(SecKillError::Rejected(
            PromotionError::AlreadyStarted { .. }
        ))
    ));
    assert!(matches!(
        seckill.expire_promotion(id).await,
        Err(SecKillError::Rejected(PromotionError::NotYetExpired { .. }))
    ));
    let won = seckill.grab(id, customer("alice")).await.unwrap();
    match rejection(seckill.grab(id, customer("alice")).await) {
        PromotionError::AlreadyGrabbed(coupon) => assert_eq!(*coupon, won),
        other => panic!("expected AlreadyGrabbed, got {other:?}"),
    }
    assert!(matches!(
        rejection(seckill.grab(id, customer("bob")).await),
        PromotionError::SoldOut {
            number_of_coupons: 1
        }
    ));
    assert_eq!(seckill.coupons_of(&customer("bob")).await.unwrap(), vec![]);
    assert_eq!(
        seckill.promotion(id).await.unwrap().status,
        PromotionStatus::SoldOut
    );

    let late = seckill.create_promotion(terms(5)).await.unwrap();
    clock.set(opens() + Duration::hours(1));
    assert!(matches!(
        rejection(seckill.grab(late, customer("carol")).await),
        PromotionError::Ended { .. }
    ));
    assert_eq!(
        seckill.promotion(late).await.unwrap().status,
        PromotionStatus::Expired
    );
    seckill.expire_promotion(late).await.unwrap();

    clock.set(opens() + Duration::seconds(1));
    let cancelled = seckill.create_promotion(terms(5)).await.unwrap();
    seckill.cancel_promotion(cancelled).await.unwrap();
    assert!(matches!(
        rejection(seckill.grab(cancelled, customer("dave")).await),
        PromotionError::Ended { .. }
    ));
    assert!(matches!(
        seckill.cancel_promotion(cancelled).await,
        Err(SecKillError::Rejected(PromotionError::AlreadyFinished))
    ));
    assert_eq!(
        seckill.promotion(cancelled).await.unwrap().status,
        PromotionStatus::Cancelled
    );
    assert!(seckill.active_promotions().await.unwrap().is_empty());

    // Rejections recorded nothing: one event per accepted command only.
    assert_eq!(store.load_events(id, 0).await.unwrap().len(), 3); // created, grabbed, sold out
    assert_eq!(store.load_events(cancelled, 0).await.unwrap().len(), 2);
    for promotion in [id, late, cancelled] {
        assert_consistent(&store, promotion).await;
    }
}

/// Runs `customers` concurrent grabs, one task each, and returns the coupons won.
async fn race(
    seckills: &[SecKill],
    id: PromotionId,
    customers: usize,
    prefix: &str,
) -> Vec<Coupon> {
    let tasks: Vec<_> = (0..customers)
        .map(|i| {
            let seckill = seckills[i % seckills.len()].clone();
            let who = customer(format!("{prefix}-{i}"));
            tokio::spawn(async move { seckill.grab(id, who).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(coupon) => won.push(coupon),
            Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => {}
            Err(other) => panic!("unexpected grab outcome: {other:?}"),
        }
    }
    won
}

/// The flash sale itself: 10,000 tasks, 100 coupons.
pub async fn ten_thousand_tasks_race_for_one_hundred_coupons(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _clock) = service(store.clone());
    let id = seckill.create_promotion(terms(100)).await.unwrap();

    let mut won = race(std::slice::from_ref(&seckill), id, 10_000, "customer").await;

    won.sort_by_key(|c| c.number);
    assert_eq!(
        won.iter().map(|c| c.number).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    let winners: HashSet<_> = won.iter().map(|c| c.customer_id.clone()).collect();
    assert_eq!(winners.len(), 100);
    let stored = assert_consistent(&store, id).await;
    assert_eq!(
        stored, won,
        "the event stream holds exactly the acknowledged coupons"
    );
    let view = seckill.promotion(id).await.unwrap();
    assert_eq!(
        (view.summary.remaining, view.status),
        (0, PromotionStatus::SoldOut)
    );
}

/// Two application instances (for PostgreSQL: two pools) write one promotion
/// at once. Optimistic concurrency plus reload keeps it exact.
pub async fn two_instances_grab_one_promotion_without_oversell(fixture: impl Fixture) {
    let first_store = fixture.store().await;
    let (first, _) = service(first_store.clone());
    let (second, _) = service(fixture.reopen().await);
    let id = first.create_promotion(terms(300)).await.unwrap();

    // Every customer tries on both instances: the second try must not win again.
    let tasks: Vec<_> = (0..2_000)
        .map(|i| {
            let seckill = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { seckill.grab(id, customer(format!("c{}", i / 2))).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(coupon) => won.push(coupon),
            Err(SecKillError::Rejected(
                PromotionError::SoldOut { .. } | PromotionError::AlreadyGrabbed(_),
            )) => {}
            Err(other) => panic!("unexpected grab outcome: {other:?}"),
        }
    }
    won.sort_by_key(|c| c.number);
    assert_eq!(won.len(), 300, "exactly every coupon is granted");
    let stored = assert_consistent(&first_store, id).await;
    assert_eq!(stored, won);
}

/// A new instance on the same storage sees every promotion, coupon and
/// remaining count, and carries on numbering where the old one stopped.
pub async fn a_restarted_instance_sees_every_promotion_and_coupon(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (before, _) = service(store.clone());
    let mut promotions = Vec::new();
    for n in 1..=3u64 {
        let id = before.create_promotion(terms(10 * n)).await.unwrap();
        for c in 0..n * 3 {
            before
                .grab(id, customer(format!("p{n}-c{c}")))
                .await
                .unwrap();
        }
        promotions.push((id, n));
    }
    before.shutdown().await;
    assert!(matches!(
        before.grab(promotions[0].0, customer("late")).await,
        Err(SecKillError::ShuttingDown)
    ));

    let (after, _) = service(fixture.reopen().await);
    let active: BTreeSet<_> = after
        .active_promotions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.summary.promotion_id)
        .collect();
    assert_eq!(active, promotions.iter().map(|(id, _)| *id).collect());
    for &(id, n) in &promotions {
        let view = after.promotion(id).await.unwrap();
        assert_eq!(view.summary.remaining as u64, 10 * n - n * 3);
        let held = after
            .coupons_of(&customer(format!("p{n}-c0")))
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        assert!(matches!(
            rejection(after.grab(id, customer(format!("p{n}-c0"))).await),
            PromotionError::AlreadyGrabbed(coupon) if coupon.number == 1
        ));
        let next = after.grab(id, customer(format!("p{n}-new"))).await.unwrap();
        assert_eq!(next.number as u64, n * 3 + 1);
        assert_consistent(&store, id).await;
    }
}

/// Rebuilding the projections from the events gives what live updates gave.
pub async fn rebuilt_projections_match_the_live_ones(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = seckill.create_promotion(terms(5)).await.unwrap();
        for c in 0..(n + 3) {
            // Customer c grabs from several promotions, so lists mix promotions.
            let _ = seckill.grab(id, customer(format!("c{c}"))).await;
        }
        ids.push(id);
    }
    let mut before = HashMap::new();
    for c in 0..6 {
        let who = customer(format!("c{c}"));
        before.insert(who.clone(), seckill.coupons_of(&who).await.unwrap());
    }
    let summaries: Vec<_> =
        futures::future::join_all(ids.iter().map(|id| store.promotion(*id))).await;

    let mut seen = Vec::new();
    let rebuilt = seckill
        .rebuild_projections(|id| seen.push(id))
        .await
        .unwrap();
    assert_eq!(rebuilt, 3);
    assert_eq!(seen.len(), 3);

    for (who, coupons) in before {
        let mut now = seckill.coupons_of(&who).await.unwrap();
        let mut then = coupons;
        now.sort_by_key(|c| (c.promotion_id, c.number));
        then.sort_by_key(|c| (c.promotion_id, c.number));
        assert_eq!(now, then, "coupons of {who} changed in the rebuild");
    }
    for (id, summary) in ids.iter().zip(summaries) {
        assert_eq!(store.promotion(*id).await.unwrap(), summary.unwrap());
        assert_consistent(&store, *id).await;
    }
}

/// A rebuild that read the events before a writer appended more must not
/// erase the newer coupons: on a replicated deployment a starting replica's
/// catch-up runs while another replica sells the same promotion.
pub async fn a_stale_rebuild_never_erases_newer_coupons(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let id = seckill.create_promotion(terms(10)).await.unwrap();
    for c in 0..3 {
        seckill
            .grab(id, customer(format!("early-{c}")))
            .await
            .unwrap();
    }
    // The rebuild reads the stream here ...
    let events = store.load_events(id, 0).await.unwrap();
    let mut promotion = seckill_domain::Promotion::default();
    for event in events.iter().cloned() {
        cqrs_es::Aggregate::apply(&mut promotion, event);
    }
    let stale = seckill_app::PromotionSummary::of(&promotion, events.len() as u64).unwrap();
    let stale_coupons: Vec<Coupon> = seckill_app::coupons_in(&events).cloned().collect();
    // ... a writer appends ...
    for c in 0..2 {
        seckill
            .grab(id, customer(format!("late-{c}")))
            .await
            .unwrap();
    }
    // ... and then the rebuild writes what it read.
    let replaced = store
        .replace_projection_if_current(&stale, &stale_coupons)
        .await
        .unwrap();
    assert!(
        !replaced,
        "a rebuild behind the stream replaced the projection"
    );

    for c in 0..2 {
        let late = customer(format!("late-{c}"));
        assert_eq!(
            seckill.coupons_of(&late).await.unwrap().len(),
            1,
            "{late} lost their coupon"
        );
    }
    assert_eq!(store.promotion(id).await.unwrap().unwrap().remaining, 5);
    assert_consistent(&store, id).await;
}

/// Commits fail before writing, fail after writing, and conflict. Whatever
/// happens, every acknowledged coupon is stored, nobody holds two, and every
/// caller who was not acknowledged got an error instead of a coupon.
pub async fn injected_store_faults_never_lose_an_acknowledged_grab(fixture: impl Fixture) {
    let real = fixture.store().await;
    let faulty = Arc::new(FaultyStore::new(
        real.clone(),
        FaultPlan {
            fail_every: 7,
            fail_after_write_every: 5,
            conflict_every: 3,
        },
    ));
    // Small batches, so every kind of fault is hit however fast the backend
    // commits: a slower store otherwise groups each round into a few appends.
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let seckill = SecKill::builder(faulty.clone())
        .clock(clock)
        .config(EngineConfig {
            idle_timeout: StdDuration::from_millis(500),
            max_batch: 8,
            ..EngineConfig::default()
        })
        .build()
        .expect("valid engine settings");
    let id = seckill.create_promotion(terms(500)).await.unwrap();

    let mut acknowledged = Vec::new();
    let mut storage_errors = 0;
    for round in 0..3 {
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let seckill = seckill.clone();
                // Every customer comes back in later rounds, as impatient clients do.
                tokio::spawn(async move {
                    seckill
                        .grab(id, customer(format!("c{}", (i + round * 150) % 700)))
                        .await
                })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                Ok(coupon) => acknowledged.push(coupon),
                Err(SecKillError::Storage(
                    StoreError::Backend(_) | StoreError::Conflict { .. },
                )) => {
                    storage_errors += 1;
                }
                Err(SecKillError::Rejected(
                    PromotionError::SoldOut { .. } | PromotionError::AlreadyGrabbed(_),
                )) => {}
                Err(other) => panic!("unexpected grab outcome: {other:?}"),
            }
        }
    }
    let counts = faulty.counts();
    assert!(
        counts.failed > 0 && counts.failed_after_write > 0 && counts.conflicts > 0,
        "{counts:?}"
    );
    assert!(
        storage_errors > 0,
        "failed commits must reach their callers"
    );

    let stored = assert_consistent(&real, id).await;
    let stored_by_customer: HashMap<_, _> =
        stored.iter().map(|c| (c.customer_id.clone(), c)).collect();
    for coupon in &acknowledged {
        assert_eq!(
            stored_by_customer.get(&coupon.customer_id),
            Some(&coupon),
            "acknowledged grab lost"
        );
    }
    let acknowledged_customers: HashSet<_> = acknowledged.iter().map(|c| &c.customer_id).collect();
    assert_eq!(
        acknowledged_customers.len(),
        acknowledged.len(),
        "a customer was acknowledged twice"
    );
}

/// A sold-out promotion's final state answers late grabs from memory while
/// they come, leaves memory once idle for `frozen_ttl`, and the next grab
/// loads it again and gets the same answers.
pub async fn a_finished_promotion_leaves_memory_after_its_ttl_and_comes_back(
    fixture: impl Fixture,
) {
    let store = fixture.store().await;
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let seckill = SecKill::builder(store.clone())
        .clock(clock)
        .config(EngineConfig {
            frozen_ttl: StdDuration::from_millis(200),
            ..EngineConfig::default()
        })
        .build()
        .expect("valid engine settings");
    let id = seckill.create_promotion(terms(1)).await.unwrap();
    let won = seckill.grab(id, customer("first")).await.unwrap();

    let frozen = || seckill.stats().frozen_promotions;
    let wait_for = |want: u64| async move {
        // Polls a state change, with a generous deadline against hangs; how
        // long it takes is not what this test checks.
        for _ in 0..500 {
            if frozen() == want {
                return;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        panic!("frozen promotions stayed {} instead of {want}", frozen());
    };
    wait_for(1).await;
    let late = |name: &'static str| {
        let seckill = seckill.clone();
        async move { seckill.grab(id, customer(name)).await }
    };
    // In use, it stays: late grabs for three TTLs, one every 20 ms.
    for _ in 0..30 {
        assert!(matches!(
            late("late").await,
            Err(SecKillError::Rejected(PromotionError::SoldOut { .. }))
        ));
        assert_eq!(frozen(), 1, "a frozen promotion in use was dropped");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }

    wait_for(0).await;
    // Loaded again on demand: the same answers, from the store's history.
    match late("first").await {
        Err(SecKillError::Rejected(PromotionError::AlreadyGrabbed(coupon))) => {
            assert_eq!(*coupon, won);
        }
        other => panic!("expected AlreadyGrabbed, got {other:?}"),
    }
    assert!(matches!(
        late("later").await,
        Err(SecKillError::Rejected(PromotionError::SoldOut { .. }))
    ));
    wait_for(1).await;
    assert_eq!(seckill.promotion(id).await.unwrap().summary.remaining, 0);
    assert_eq!(assert_consistent(&store, id).await, vec![won]);
}

/// Promotions are independent: each has its own writer and sells out alone.
pub async fn many_promotions_sell_out_independently(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(seckill.create_promotion(terms(50)).await.unwrap());
    }
    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            let seckill = seckill.clone();
            let id = ids[i % ids.len()];
            tokio::spawn(async move { seckill.grab(id, customer(format!("c{i}"))).await })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            granted += 1;
        }
    }
    assert_eq!(granted, 500);
    for id in ids {
        assert_eq!(assert_consistent(&store, id).await.len(), 50);
    }
}

fn replay(events: &[PromotionEvent]) -> seckill_domain::Promotion {
    let mut promotion = seckill_domain::Promotion::default();
    for event in events.iter().cloned() {
        cqrs_es::Aggregate::apply(&mut promotion, event);
    }
    promotion
}

/// Snapshots taken while grabbing, when a writer idles out and when a sale
/// ends are exactly the state a full replay gives (cqrs-es 0.5's own snapshot
/// stores apply new events twice; ours must not), and a writer that starts
/// from one carries on correctly.
pub async fn snapshots_equal_the_replayed_state(fixture: impl Fixture) {
    let store = fixture.store().await;
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let config = EngineConfig {
        snapshot_after: 7,
        idle_timeout: StdDuration::from_millis(100),
        ..EngineConfig::default()
    };
    let seckill = SecKill::builder(store.clone())
        .clock(clock.clone())
        .config(config.clone())
        .build()
        .expect("valid engine settings");
    let id = seckill.create_promotion(terms(200)).await.unwrap();
    for c in 0..60 {
        seckill
            .grab(id, customer(format!("early-{c}")))
            .await
            .unwrap();
    }
    race(std::slice::from_ref(&seckill), id, 100, "first-wave").await;

    let check = |label: &'static str| {
        let store = store.clone();
        async move {
            let snapshot = store
                .load_snapshot(id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{label}: no snapshot"));
            let events = store.load_events(id, 0).await.unwrap();
            assert!(
                snapshot.sequence <= events.len() as u64,
                "{label}: snapshot ahead of the stream"
            );
            let prefix = usize::try_from(snapshot.sequence).unwrap();
            assert_eq!(
                snapshot.promotion,
                replay(&events[..prefix]),
                "{label}: snapshot differs from replay"
            );
            snapshot.sequence
        }
    };
    // Wait for the idle writer to stop and save its final snapshot.
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    let at_idle = check("after idling").await;
    assert_eq!(
        at_idle,
        store.load_events(id, 0).await.unwrap().len() as u64,
        "idle writer snapshots everything"
    );

    // A new writer starts from that snapshot and numbers on without a gap.
    let next = seckill.grab(id, customer("after-idle")).await.unwrap();
    assert_eq!(next.number, 161);
    // Sell out: the frozen state is snapshotted too.
    race(std::slice::from_ref(&seckill), id, 100, "second-wave").await;
    seckill.shutdown().await;
    check("after selling out").await;

    let (restarted, _) = service(fixture.reopen().await);
    assert!(matches!(
        rejection(restarted.grab(id, customer("early-0")).await),
        PromotionError::AlreadyGrabbed(coupon) if coupon.number == 1
    ));
    assert_eq!(assert_consistent(&store, id).await.len(), 200);
}

/// A stalled store fills the promotion's queue: further grabs are refused at
/// once with `Overloaded`, and every grab that was queued completes once the
/// store recovers.
pub async fn a_full_queue_answers_overloaded_at_once_and_loses_nothing(fixture: impl Fixture) {
    let real = fixture.store().await;
    let store = Arc::new(FaultyStore::new(real.clone(), FaultPlan::default()));
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let config = EngineConfig {
        queue_capacity: 8,
        max_batch: 4,
        ..EngineConfig::default()
    };
    let seckill = SecKill::builder(store.clone())
        .clock(clock)
        .config(config)
        .build()
        .expect("valid engine settings");
    let id = seckill.create_promotion(terms(1_000)).await.unwrap();

    store.pause();
    let first = {
        let seckill = seckill.clone();
        tokio::spawn(async move { seckill.grab(id, customer("first")).await })
    };
    // Wait until the writer is stuck in the paused append.
    while store.counts().appends < 2 {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    let burst: Vec<_> = (0..100)
        .map(|i| {
            let seckill = seckill.clone();
            tokio::spawn(async move { seckill.grab(id, customer(format!("burst-{i}"))).await })
        })
        .collect();
    // While the store is stalled nothing queued can finish, so whatever
    // finishes now was refused without waiting.
    let waiting_since = std::time::Instant::now();
    let mut refused_early = 0;
    while waiting_since.elapsed() < StdDuration::from_secs(5) {
        refused_early = burst.iter().filter(|t| t.is_finished()).count();
        if refused_early >= 100 - 8 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert!(
        refused_early >= 100 - 8,
        "only {refused_early} grabs were refused while the store stalled"
    );

    store.resume();
    let mut acknowledged = vec![first.await.unwrap().unwrap()];
    let mut overloaded = 0;
    for task in burst {
        match task.await.unwrap() {
            Ok(coupon) => acknowledged.push(coupon),
            Err(SecKillError::Overloaded(p)) if p == id => overloaded += 1,
            Err(other) => panic!("unexpected grab outcome: {other:?}"),
        }
    }
    assert_eq!(overloaded + acknowledged.len(), 101);
    assert!(
        acknowledged.len() <= 1 + 8,
        "more grabs completed than the queue holds"
    );
    acknowledged.sort_by_key(|c| c.number);
    assert_eq!(assert_consistent(&real, id).await, acknowledged);
    assert!(seckill.stats().overloaded >= 92);
}

/// `watch()` reports the promotion's summary after each commit.
pub async fn watchers_see_every_commit(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let id = seckill.create_promotion(terms(3)).await.unwrap();
    let mut feed = seckill.watch();
    seckill.grab(id, customer("alice")).await.unwrap();
    let update = feed.recv().await.unwrap();
    assert_eq!((update.promotion_id, update.remaining), (id, 2));
    seckill.cancel_promotion(id).await.unwrap();
    let update = feed.recv().await.unwrap();
    assert_eq!(
        update.finish_reason,
        Some(seckill_domain::FinishReason::Cancelled)
    );
    assert_consistent(&store, id).await;
}

/// A projection behind its stream (written by another tool, or added later)
/// catches up from the events, and one that is current is left alone.
pub async fn lagging_projections_catch_up_from_the_events(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let behind = seckill.create_promotion(terms(10)).await.unwrap();
    let current = seckill.create_promotion(terms(10)).await.unwrap();
    let mut stale = None;
    for c in 0..4 {
        if c == 1 {
            stale = store.promotion(behind).await.unwrap();
        }
        seckill
            .grab(behind, customer(format!("c{c}")))
            .await
            .unwrap();
        seckill
            .grab(current, customer(format!("c{c}")))
            .await
            .unwrap();
    }
    // Roll `behind`'s projection back to after its first grab, as if the
    // later events had been written without it.
    let stale = stale.expect("summary after the first grab");
    let first: Vec<Coupon> = coupons_in(&store.load_events(behind, 0).await.unwrap())
        .take(1)
        .cloned()
        .collect();
    store.replace_projection(&stale, &first).await.unwrap();
    assert_eq!(
        seckill.coupons_of(&customer("c3")).await.unwrap().len(),
        1,
        "only `current`'s coupon is projected"
    );

    assert_eq!(seckill.catch_up_projections().await.unwrap(), 1);
    assert_eq!(seckill.coupons_of(&customer("c3")).await.unwrap().len(), 2);
    assert_eq!(assert_consistent(&store, behind).await.len(), 4);
    assert_eq!(assert_consistent(&store, current).await.len(), 4);
    assert_eq!(
        seckill.catch_up_projections().await.unwrap(),
        0,
        "nothing left to repair"
    );
}

/// A zero `max_batch` would make a retiring writer hang (it takes no request
/// from its queue), so the builder refuses it, naming the setting.
pub async fn engine_settings_that_would_hang_are_refused(fixture: impl Fixture) {
    let store = fixture.store().await;
    let built = SecKill::builder(store)
        .config(EngineConfig {
            max_batch: 0,
            ..EngineConfig::default()
        })
        .build();
    assert!(
        matches!(
            built,
            Err(ConfigError::OutOfRange {
                field: "max_batch",
                ..
            })
        ),
        "a zero max_batch was not refused as such"
    );
}

/// Writers go idle after a millisecond, so between waves of grabs they retire
/// while the next wave arrives: grabs land in a queue that is being closed
/// and drained in batches of `max_batch`, or find it closed and go to the
/// successor. Whichever way, every grab is answered, none hangs, and the
/// store holds exactly the acknowledged coupons.
///
/// The instant a request is queued between the idle timeout and the close
/// cannot be forced from outside the engine; many retirements under
/// concurrent grabs give it its chances.
pub async fn writers_retiring_between_waves_of_grabs_answer_every_grab(fixture: impl Fixture) {
    const WAVES: usize = 30;
    const PER_WAVE: usize = 20;
    let store = fixture.store().await;
    let config = EngineConfig {
        idle_timeout: StdDuration::from_millis(1),
        max_batch: 3,
        ..EngineConfig::default()
    };
    let (seckill, _clock) = service_with(store.clone(), config);
    let id = seckill
        .create_promotion(terms((WAVES * PER_WAVE) as u64))
        .await
        .unwrap();

    let waves = async {
        let mut won = Vec::new();
        for wave in 0..WAVES {
            let seckills = std::slice::from_ref(&seckill);
            won.extend(race(seckills, id, PER_WAVE, &format!("wave-{wave}")).await);
            // About the idle timeout, so the next wave often meets a writer
            // as it retires.
            tokio::time::sleep(StdDuration::from_micros(500 * (wave % 4) as u64)).await;
        }
        won
    };
    let mut won = tokio::time::timeout(StdDuration::from_secs(120), waves)
        .await
        .expect("every grab is answered: no writer hangs");

    assert_eq!(won.len(), WAVES * PER_WAVE, "every grab won a coupon");
    won.sort_by_key(|c| c.number);
    assert_eq!(assert_consistent(&store, id).await, won);
}
