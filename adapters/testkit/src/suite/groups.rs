//! Group commit across promotions (ADR 0012): many promotions' commits in
//! one append, each checked and answered on its own, so one promotion's
//! conflict never costs another its acknowledged grabs.

use std::sync::Arc;

use chrono::Duration;
use seckill_app::{Backend, Commit, EngineConfig, PromotionSummary, SecKillError, StoreError};
use seckill_domain::{Coupon, PromotionError, PromotionId};

use super::commands::sell_out_many;
use super::{assert_consistent, customer, opens, replay, service, service_with, terms};
use crate::fixture::Fixture;

/// A commit of one grab by `who` on the promotion as the store holds it now,
/// expecting the stream at `expected` (the true head, or a stale one).
async fn grab_commit(
    store: &Arc<dyn Backend>,
    promotion_id: PromotionId,
    who: &str,
    expected: u64,
) -> Commit {
    let stored = store.load_events(promotion_id, 0).await.unwrap();
    let mut state = replay(&stored[..expected as usize]);
    let at = opens() + Duration::seconds(2);
    let events: Vec<_> = state
        .grab_events(&customer(who), at)
        .expect("the grab is allowed")
        .into_iter()
        .collect();
    for event in &events {
        cqrs_es::Aggregate::apply(&mut state, event.clone());
    }
    let summary = PromotionSummary::of(&state, expected + events.len() as u64).unwrap();
    Commit {
        promotion_id,
        expected_sequence: expected,
        events,
        summary,
        traceparents: Vec::new(),
    }
}

/// Three promotions' commits in one group, the middle one stale: the other two
/// are written with their coupons and summaries, the stale one gets
/// `Conflict` and nothing of it is written.
pub async fn a_group_append_answers_each_commit_on_its_own(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(seckill.create_promotion(terms(10)).await.unwrap().id());
    }
    // The middle promotion moves on after its commit was decided.
    let stale = grab_commit(&store, ids[1], "late", 1).await;
    seckill.grab(ids[1], customer("early")).await.unwrap();
    seckill.shutdown().await;

    let first = grab_commit(&store, ids[0], "ann", 1).await;
    let last = grab_commit(&store, ids[2], "cy", 1).await;
    let outcomes = store.append_group(&[&first, &stale, &last]).await;

    assert!(outcomes[0].is_ok(), "first: {:?}", outcomes[0]);
    assert!(
        matches!(&outcomes[1], Err(StoreError::Conflict { promotion_id, expected: 1 }) if *promotion_id == ids[1]),
        "the stale commit conflicts: {:?}",
        outcomes[1]
    );
    assert!(outcomes[2].is_ok(), "last: {:?}", outcomes[2]);
    for (id, holder) in [(ids[0], "ann"), (ids[1], "early"), (ids[2], "cy")] {
        let coupons = assert_consistent(&store, id).await;
        let holders: Vec<_> = coupons.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(holders, [holder], "promotion {id}");
    }
    assert!(store
        .coupons_of(&customer("late"))
        .await
        .unwrap()
        .is_empty());
}

/// Two instances on one store (for PostgreSQL: two pools), grouping commits
/// across promotions: one promotion is contested by both, three more only by
/// the first. The contested promotion's commits conflict inside groups that
/// carry the others' batches; every grab the first instance acknowledged on
/// the others is stored, each promotion sells out exactly, and nobody holds
/// two coupons.
pub async fn a_conflict_in_a_shared_group_costs_only_its_promotion(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (first, _) = service(store.clone());
    let (second, _) = service(fixture.reopen().await);
    let contested = first.create_promotion(terms(200)).await.unwrap().id();
    let mut quiet = Vec::new();
    for _ in 0..3 {
        quiet.push(first.create_promotion(terms(200)).await.unwrap().id());
    }

    let mut tasks = Vec::new();
    for i in 0..400 {
        // Each customer tries the contested promotion on both instances.
        for seckill in [&first, &second] {
            let seckill = seckill.clone();
            tasks.push(tokio::spawn(async move {
                let outcome = seckill.grab(contested, customer(format!("c{i}"))).await;
                (contested, outcome)
            }));
        }
        for &id in &quiet {
            let seckill = first.clone();
            tasks.push(tokio::spawn(async move {
                (id, seckill.grab(id, customer(format!("q{i}"))).await)
            }));
        }
    }
    let mut won: Vec<Coupon> = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (_, Ok(coupon)) => won.push(coupon),
            (
                _,
                Err(SecKillError::Rejected(
                    PromotionError::SoldOut { .. } | PromotionError::AlreadyGrabbed(_),
                )),
            ) => {}
            (id, Err(other)) => panic!("unexpected grab outcome on {id}: {other:?}"),
        }
    }
    assert!(
        first.stats().conflicts + second.stats().conflicts > 0,
        "the two instances never met on the contested promotion"
    );
    for id in std::iter::once(contested).chain(quiet) {
        let mut acknowledged: Vec<_> = won
            .iter()
            .filter(|c| c.promotion_id == id)
            .cloned()
            .collect();
        acknowledged.sort_by_key(|c| c.number);
        let stored = assert_consistent(&store, id).await;
        assert_eq!(stored.len(), 200, "promotion {id} sells out exactly");
        assert_eq!(
            stored, acknowledged,
            "promotion {id}: acknowledged = stored"
        );
    }
}

/// With group commit off (`max_commit_group: 1`) every writer appends alone,
/// and many promotions still sell out exactly.
pub async fn writers_append_alone_when_group_commit_is_off(fixture: impl Fixture) {
    let store = fixture.store().await;
    let config = EngineConfig::default().with_max_commit_group(1);
    let (seckill, _) = service_with(store.clone(), config);
    sell_out_many(&seckill, &store, 5, 40).await;
    assert_eq!(
        seckill.stats().commit_groups,
        0,
        "no commit went in a group"
    );
}

/// A commit's traceparents come back with its events in the global feed:
/// the traced event's, and none for the events of untraced commands.
pub async fn the_feed_hands_back_each_events_traceparent(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (seckill, _) = service(store.clone());
    let traced_id = seckill.create_promotion(terms(10)).await.unwrap().id();
    let plain_id = seckill.create_promotion(terms(10)).await.unwrap().id();
    seckill.shutdown().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut traced = grab_commit(&store, traced_id, "traced", 1).await;
    traced.traceparents = vec![Some(traceparent.to_owned()); traced.events.len()];
    let plain = grab_commit(&store, plain_id, "plain", 1).await;
    let head = store.head_position().await.unwrap();
    for outcome in store.append_group(&[&traced, &plain]).await {
        outcome.expect("both commits are written");
    }

    let feed = store.read_all(0, 100).await.unwrap();
    for event in &feed {
        let expected =
            (event.position > head && event.promotion_id == traced_id).then_some(traceparent);
        assert_eq!(
            event.traceparent.as_deref(),
            expected,
            "event {} of {}",
            event.sequence,
            event.promotion_id
        );
    }
    assert_eq!(feed.len() as u64, head + 2, "both grabs are in the feed");
}
