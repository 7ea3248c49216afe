//! The read side: what a restart, a rebuild, a stale rebuild, a lagging
//! projection and the change feed must show, and snapshots that equal the
//! replayed stream.

use super::*;

/// A new instance on the same storage sees every promotion, coupon and
/// remaining count, and carries on numbering where the old one stopped.
pub async fn a_restarted_instance_sees_every_promotion_and_coupon(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (before, _) = service(store.clone());
    let mut promotions = Vec::new();
    for n in 1..=3u64 {
        let id = before.create_promotion(terms(10 * n)).await.unwrap().id();
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
        let id = seckill.create_promotion(terms(5)).await.unwrap().id();
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
    let id = seckill.create_promotion(terms(10)).await.unwrap().id();
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
    let stale_coupons: Vec<Coupon> = seckill_app::testing::coupons_in(&events).cloned().collect();
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

/// A projection behind its stream (written by another tool, or added later)
/// catches up from the events, and one that is current is left alone.
///
/// A backend that derives its projections from the events
/// ([`Capabilities`](crate::Capabilities)) has none to roll back: replacing
/// one must change nothing a reader sees, and nothing is left to repair.
pub async fn lagging_projections_catch_up_from_the_events(fixture: impl Fixture) {
    let stored = fixture.capabilities().stored_projections;
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let behind = seckill.create_promotion(terms(10)).await.unwrap().id();
    let current = seckill.create_promotion(terms(10)).await.unwrap().id();
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
    if stored {
        assert_eq!(
            seckill.coupons_of(&customer("c3")).await.unwrap().len(),
            1,
            "only `current`'s coupon is projected"
        );
        assert_eq!(seckill.catch_up_projections().await.unwrap(), 1);
    } else {
        assert_eq!(
            store
                .promotion(behind)
                .await
                .unwrap()
                .unwrap()
                .last_sequence,
            5,
            "a derived summary follows the events, whatever was replaced"
        );
    }
    assert_eq!(seckill.coupons_of(&customer("c3")).await.unwrap().len(), 2);
    assert_eq!(assert_consistent(&store, behind).await.len(), 4);
    assert_eq!(assert_consistent(&store, current).await.len(), 4);
    assert_eq!(
        seckill.catch_up_projections().await.unwrap(),
        0,
        "nothing left to repair"
    );
}

/// `watch()` reports the promotion's summary after each commit.
pub async fn watchers_see_every_commit(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let id = seckill.create_promotion(terms(3)).await.unwrap().id();
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

/// Snapshots taken while grabbing, when a writer idles out and when a sale
/// ends are exactly the state a full replay gives (cqrs-es 0.5's own snapshot
/// stores apply new events twice; ours must not), and a writer that starts
/// from one carries on correctly.
///
/// A backend that declares no snapshots ([`Capabilities`](crate::Capabilities))
/// must never answer one, and its writers, starting from a full replay each
/// time, must carry on just as correctly.
pub async fn snapshots_equal_the_replayed_state(fixture: impl Fixture) {
    let keeps_snapshots = fixture.capabilities().snapshots;
    let store = fixture.store().await;
    let config = EngineConfig::default()
        .with_snapshot_after(7)
        .with_idle_timeout(StdDuration::from_millis(100));
    let (seckill, _) = service_with(store.clone(), config);
    let id = seckill.create_promotion(terms(200)).await.unwrap().id();
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
            let snapshot = store.load_snapshot(id).await.unwrap();
            let events = store.load_events(id, 0).await.unwrap();
            if !keeps_snapshots {
                assert!(
                    snapshot.is_none(),
                    "{label}: a backend without snapshots answered one"
                );
                return events.len() as u64;
            }
            let snapshot = snapshot.unwrap_or_else(|| panic!("{label}: no snapshot"));
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
    // Wait for the idle writer to stop and save its final snapshot: polled,
    // not slept for, because that save is a commit, which a loaded machine's
    // disk can hold for a second or more.
    if keeps_snapshots {
        let total = store.load_events(id, 0).await.unwrap().len() as u64;
        let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
        while std::time::Instant::now() < deadline {
            let saved = store.load_snapshot(id).await.unwrap().map(|s| s.sequence);
            if saved == Some(total) {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }
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

/// The global feed, read in small pages, lists every stored event exactly
/// once, in increasing positions, each promotion's in its own order.
pub async fn the_global_feed_lists_every_event_once_in_order(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let ids = [
        seckill.create_promotion(terms(10)).await.unwrap().id(),
        seckill.create_promotion(terms(10)).await.unwrap().id(),
    ];
    for c in 0..6 {
        for id in ids {
            seckill
                .grab(id, customer(format!("feed-{c}")))
                .await
                .unwrap();
        }
    }
    let mut feed = Vec::new();
    let mut after = 0;
    // Every event is committed, so each is in the feed already (ADR 0011);
    // an empty page would mean "not yet", so wait for all 14, boundedly.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    while feed.len() < 14 && std::time::Instant::now() < deadline {
        let page = store.read_all(after, 3).await.unwrap();
        match page.last() {
            Some(last) => after = last.position,
            None => tokio::time::sleep(StdDuration::from_millis(20)).await,
        }
        feed.extend(page);
    }
    let positions: Vec<u64> = feed.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    for id in ids {
        let mine: Vec<_> = feed.iter().filter(|e| e.promotion_id == id).collect();
        let stream = store.load_events(id, 0).await.unwrap();
        assert_eq!(mine.len(), stream.len(), "every event of {id}, once");
        for (n, (positioned, event)) in mine.iter().zip(&stream).enumerate() {
            assert_eq!(positioned.sequence, n as u64 + 1);
            assert_eq!(&positioned.event, event);
        }
    }
    assert_eq!(feed.len(), 14, "2 creations and 12 grabs");
}
