//! The engine under stress: injected store faults, frozen promotions that
//! leave memory, a full queue, settings that would hang, writers retiring
//! between waves of grabs.

use super::*;

/// A commit whose answer is lost (the connection broke after it) is read
/// back from the store and answered as won; one still in flight when its
/// timeout passes is answered "outcome unknown", never "failed", and a
/// retry answers with the one coupon the customer holds.
pub async fn a_commit_whose_answer_is_lost_is_confirmed_or_reported_unknown(fixture: impl Fixture) {
    let real = fixture.store().await;
    let losing = Arc::new(FaultyStore::new(
        real.clone(),
        FaultPlan {
            lose_answer_every: 1,
            ..FaultPlan::default()
        },
    ));
    let (seckill, _) = service(losing.clone());
    let id = seckill.create_promotion(terms(100)).await.unwrap().id();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let seckill = seckill.clone();
            tokio::spawn(async move { seckill.grab(id, customer(format!("lost-{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("confirmed from the store, so won");
    }
    assert!(losing.counts().lost_answers > 0);
    assert_eq!(assert_consistent(&real, id).await.len(), 40);

    // Now a commit that is still in flight when the engine stops waiting.
    let late = Arc::new(FaultyStore::new(
        real.clone(),
        FaultPlan {
            land_late_every: 1,
            ..FaultPlan::default()
        },
    ));
    // Long enough for every call the store answers (the writer's load, the
    // late commit once resumed) on a stalled machine; the paused append
    // still times out, only later.
    let (seckill, _) = service_with(
        late.clone(),
        EngineConfig::default().with_store_timeout(StdDuration::from_secs(3)),
    );
    late.pause();
    let dana = customer("dana");
    match seckill.grab(id, dana.clone()).await {
        Err(SecKillError::OutcomeUnknown {
            promotion_id,
            source,
        }) => {
            assert_eq!(promotion_id, id);
            assert!(source.outcome_unknown(), "{source}");
        }
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    late.resume();
    // Asking again tells the customer: the late commit landed (already
    // grabbed), or lost the race to this one (won). One coupon either way.
    // A retry may also meet the late commit still in flight (unknown again).
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    let coupon = loop {
        match seckill.grab(id, dana.clone()).await {
            Ok(coupon) => break coupon,
            Err(SecKillError::Rejected(PromotionError::AlreadyGrabbed(coupon))) => break *coupon,
            Err(
                SecKillError::Storage(StoreError::Conflict { .. })
                | SecKillError::OutcomeUnknown { .. },
            ) if std::time::Instant::now() < deadline => continue,
            other => panic!("expected the coupon recorded late, got {other:?}"),
        }
    };
    assert_eq!(coupon.customer_id, dana);
    let stored = assert_consistent(&real, id).await;
    assert_eq!(stored.iter().filter(|c| c.customer_id == dana).count(), 1);
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
            ..FaultPlan::default()
        },
    ));
    // Small batches, so every kind of fault is hit however fast the backend
    // commits: a slower store otherwise groups each round into a few appends.
    let (seckill, _) = service_with(
        faulty.clone(),
        EngineConfig::default()
            .with_idle_timeout(StdDuration::from_millis(500))
            .with_max_batch(8),
    );
    let id = seckill.create_promotion(terms(500)).await.unwrap().id();

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
    let (seckill, _) = service_with(
        store.clone(),
        EngineConfig::default().with_frozen_ttl(StdDuration::from_millis(200)),
    );
    let id = seckill.create_promotion(terms(1)).await.unwrap().id();
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

/// A stalled store fills the promotion's queue: further grabs are refused at
/// once with `Overloaded`, and every grab that was queued completes once the
/// store recovers. The writer holds at most a queue and one batch decided
/// ahead of the stalled commit.
pub async fn a_full_queue_answers_overloaded_at_once_and_loses_nothing(fixture: impl Fixture) {
    let real = fixture.store().await;
    let store = Arc::new(FaultyStore::new(real.clone(), FaultPlan::default()));
    let config = EngineConfig::default()
        .with_queue_capacity(8)
        .with_max_batch(4);
    // Queued, plus decided ahead while the stalled commit is in flight.
    let held = 8 + if config.decide_ahead { 4 } else { 0 };
    let (seckill, _) = service_with(store.clone(), config);
    let id = seckill.create_promotion(terms(1_000)).await.unwrap().id();

    let first = hold_a_grab_in_flight(&seckill, &store, id).await;
    let burst = spawn_grabs(&seckill, id, "burst", 100);
    // While the store is stalled nothing queued can finish, so whatever
    // finishes now was refused without waiting.
    let waiting_since = std::time::Instant::now();
    let mut refused_early = 0;
    while waiting_since.elapsed() < StdDuration::from_secs(5) {
        refused_early = burst.iter().filter(|t| t.is_finished()).count();
        if refused_early >= 100 - held {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert!(
        refused_early >= 100 - held,
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
        acknowledged.len() <= 1 + held,
        "more grabs completed than the writer holds"
    );
    acknowledged.sort_by_key(|c| c.number);
    assert_eq!(assert_consistent(&real, id).await, acknowledged);
    assert!(seckill.stats().overloaded >= 100 - held as u64);
}

/// Grabs that arrive while a commit is in flight are decided on the state
/// that includes it (`decide_ahead`). When that commit fails, or meets a
/// conflict, those decisions rest on events the store does not hold: they
/// are dropped and made again on what the store holds, so the coupons are
/// numbered from the store's state, without a gap, and nobody decided ahead
/// is answered anything untrue.
pub async fn grabs_decided_ahead_of_a_failed_commit_are_decided_again(fixture: impl Fixture) {
    let real = fixture.store().await;
    // Append 1 creates the promotion; append 2, the first grab's, fails
    // (or conflicts) while the store is paused and grabs arrive behind it.
    let plans = [
        (
            "fails",
            FaultPlan {
                fail_every: 2,
                ..FaultPlan::default()
            },
        ),
        (
            "conflicts",
            FaultPlan {
                conflict_every: 2,
                ..FaultPlan::default()
            },
        ),
    ];
    for (label, plan) in plans {
        let store = Arc::new(FaultyStore::new(real.clone(), plan));
        let (seckill, _) = service(store.clone());
        let id = seckill.create_promotion(terms(100)).await.unwrap().id();
        let first = hold_a_grab_in_flight(&seckill, &store, id).await;
        let ahead = spawn_grabs(&seckill, id, "ahead", 10);
        // Give the writer time to take them while its commit is held; if it
        // has not, they are decided after it instead, and must end the same.
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        store.resume();

        let first = first.await.unwrap();
        let mut won = Vec::new();
        for task in ahead {
            won.push(
                task.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{label}: a grab decided ahead was answered {e:?}")),
            );
        }
        match (label, first) {
            ("fails", Err(SecKillError::Storage(_))) => {}
            ("conflicts", Ok(coupon)) => {
                // Decided again first, as it arrived first.
                assert_eq!(coupon.number, 1, "{label}");
                won.push(coupon);
            }
            (_, other) => panic!("{label}: the first grab was answered {other:?}"),
        }
        won.sort_by_key(|c| c.number);
        let stored = assert_consistent(&real, id).await;
        assert_eq!(
            stored, won,
            "{label}: acknowledged is exactly what is stored"
        );
        seckill.shutdown().await;
    }
}

/// Pauses `store` and grabs for customer "first" on a task of its own;
/// returns once that grab's append (the promotion's second) is held there.
async fn hold_a_grab_in_flight(
    seckill: &SecKill,
    store: &FaultyStore,
    id: PromotionId,
) -> tokio::task::JoinHandle<Result<Coupon, SecKillError>> {
    store.pause();
    let first = {
        let seckill = seckill.clone();
        tokio::spawn(async move { seckill.grab(id, customer("first")).await })
    };
    while store.counts().appends < 2 {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    first
}

/// Grabs by customers `{prefix}-0` to `{prefix}-{n - 1}`, a task each.
fn spawn_grabs(
    seckill: &SecKill,
    id: PromotionId,
    prefix: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Coupon, SecKillError>>> {
    (0..n)
        .map(|i| {
            let seckill = seckill.clone();
            let who = customer(format!("{prefix}-{i}"));
            tokio::spawn(async move { seckill.grab(id, who).await })
        })
        .collect()
}

/// A zero `max_batch` would make a retiring writer hang (it takes no request
/// from its queue), so the builder refuses it, naming the setting.
pub async fn engine_settings_that_would_hang_are_refused(fixture: impl Fixture) {
    let store = fixture.store().await;
    let built = SecKill::builder(store)
        .config(EngineConfig::default().with_max_batch(0))
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
    let config = EngineConfig::default()
        .with_idle_timeout(StdDuration::from_millis(1))
        .with_max_batch(3);
    let (seckill, _clock) = service_with(store.clone(), config);
    let id = seckill
        .create_promotion(terms((WAVES * PER_WAVE) as u64))
        .await
        .unwrap()
        .id();

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
