//! Commands: creating, grabbing and refusing, one promotion or many, one
//! engine or two on one store, under a 10,000-task race.

use super::*;

/// The happy path: create, update before the start, grab, query.
pub async fn creates_updates_grabs_and_queries(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, clock) = service(store.clone());
    clock.set(opens() - Duration::minutes(10));

    let id = seckill.create_promotion(terms(3)).await.unwrap().id();
    let view = seckill.promotion(id).await.unwrap();
    assert_eq!(view.status, PromotionStatus::Upcoming);
    assert_eq!(
        (view.summary.number_of_coupons, view.summary.remaining),
        (3, 3)
    );

    let renamed = renamed_terms();
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
    // The expiry timer checks hourly here, so the manual expiry below is the
    // one that records it (the timer's own test is in `lifecycle`).
    let (seckill, clock) = service_with(
        store.clone(),
        EngineConfig::default()
            .with_idle_timeout(StdDuration::from_millis(500))
            .with_expiry_interval(StdDuration::from_secs(3_600)),
    );
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
    let id = seckill.create_promotion(terms(1)).await.unwrap().id();
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

    let late = seckill.create_promotion(terms(5)).await.unwrap().id();
    clock.set(opens() + Duration::hours(1));
    assert!(matches!(
        rejection(seckill.grab(late, customer("carol")).await),
        PromotionError::Ended { .. }
    ));
    assert_eq!(
        seckill.promotion(late).await.unwrap().status,
        PromotionStatus::Expired
    );
    match seckill.expire_promotion(late).await {
        Ok(_) => {}
        // The timer's first tick comes at once (then hourly); when its task
        // runs late, it may see the clock moved on and record this first.
        Err(SecKillError::Rejected(PromotionError::AlreadyFinished)) => {}
        other => panic!("expected the expiry recorded, got {other:?}"),
    }
    assert_eq!(
        seckill.promotion(late).await.unwrap().summary.finish_reason,
        Some(seckill_domain::FinishReason::Expired)
    );

    clock.set(opens() + Duration::seconds(1));
    let cancelled = seckill.create_promotion(terms(5)).await.unwrap().id();
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

/// The flash sale itself: 10,000 tasks, 100 coupons.
pub async fn ten_thousand_tasks_race_for_one_hundred_coupons(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _clock) = service(store.clone());
    let id = seckill.create_promotion(terms(100)).await.unwrap().id();

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
    let id = first.create_promotion(terms(300)).await.unwrap().id();

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

/// Promotions are independent: each has its own writer and sells out alone.
/// A store that groups commits gets several promotions' commits in one group
/// at least once (ten writers race), and the stats count the groups.
pub async fn many_promotions_sell_out_independently(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    sell_out_many(&seckill, &store, 10, 50).await;
    let stats = seckill.stats();
    if store.groups_commits() {
        assert!(
            (1..stats.commits).contains(&stats.commit_groups),
            "ten promotions' {} commits went in {} groups",
            stats.commits,
            stats.commit_groups
        );
    } else {
        assert_eq!(
            stats.commit_groups, 0,
            "a store that does not group commits"
        );
    }
}

/// `promotions` promotions of `coupons` each, raced for by twice as many
/// customers as there are coupons: every promotion sells out exactly.
pub(super) async fn sell_out_many(
    seckill: &SecKill,
    store: &Arc<dyn Backend>,
    promotions: usize,
    coupons: u64,
) {
    let mut ids = Vec::new();
    for _ in 0..promotions {
        ids.push(seckill.create_promotion(terms(coupons)).await.unwrap().id());
    }
    let customers = promotions * coupons as usize * 2;
    let tasks: Vec<_> = (0..customers)
        .map(|i| {
            let seckill = seckill.clone();
            let id = ids[i % ids.len()];
            tokio::spawn(async move { seckill.grab(id, customer(format!("c{i}"))).await })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => granted += 1,
            Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => {}
            Err(other) => panic!("unexpected grab outcome: {other:?}"),
        }
    }
    assert_eq!(granted, customers / 2);
    for id in ids {
        assert_eq!(assert_consistent(store, id).await.len(), coupons as usize);
    }
}
