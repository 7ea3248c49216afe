//! Lifecycle events on time: the engine's expiry timer records a promotion
//! whose finish time passed with coupons left as expired, by the service's
//! clock, without anyone grabbing; never twice, never a finished one, and
//! it leaves no task behind when the service goes.

use chrono::{DateTime, Utc};
use seckill_app::PositionedEvent;
use seckill_domain::testing::closes;
use seckill_domain::FinishReason;

use super::*;

/// How long a test waits for the timer. The promise is one
/// `expiry_interval` (250 ms); the slack is for a loaded machine.
const PATIENCE: StdDuration = StdDuration::from_secs(20);

/// Polls until `count` (an expiry counter) reaches `expected`, failing
/// after [`PATIENCE`]: a service counts an expiry once its command has
/// returned, a moment after the promotion reads finished.
async fn await_count(count: impl Fn() -> u64, expected: u64) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while count() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "{} expiries counted, {expected} expected",
            count()
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(count(), expected, "no expiry counted twice");
}

/// Polls until the promotion is recorded finished (expired, or drawn),
/// failing after [`PATIENCE`].
pub(super) async fn await_finished(
    seckill: &SecKill,
    id: PromotionId,
) -> seckill_app::PromotionView {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let view = seckill.promotion(id).await.unwrap();
        if view.summary.finish_reason.is_some() {
            return view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} not recorded finished within {PATIENCE:?} of the clock passing its finish time"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// The promotion's events in the global feed, in feed order, once the
/// feed holds its whole stream. A committed event is in the feed at once
/// (ADR 0011); the bounded wait keeps a regression a failed assertion
/// rather than a hang.
async fn in_feed(
    seckill: &SecKill,
    store: &Arc<dyn Backend>,
    id: PromotionId,
) -> Vec<PositionedEvent> {
    let stream = store.load_events(id, 0).await.unwrap().len();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = seckill.events_after(after, 100).await.unwrap();
            let Some(last) = page.last() else {
                break;
            };
            after = last.position;
            all.extend(page.into_iter().filter(|e| e.promotion_id == id));
        }
        if all.len() >= stream {
            return all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the feed lists {} of {id}'s {stream} events",
            all.len()
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

fn expiries(events: &[PositionedEvent]) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                PromotionEvent::PromotionFinished {
                    reason: FinishReason::Expired,
                    ..
                }
            )
        })
        .count()
}

/// Terms like [`terms`] that close at `finish`.
fn closing_at(coupons: u64, finish: DateTime<Utc>) -> PromotionTerms {
    PromotionTerms::new(
        CouponCount::new(coupons).unwrap(),
        Discount::new(0.8).unwrap(),
        opens(),
        finish,
        None,
    )
    .unwrap()
}

/// A promotion with coupons left is recorded `Expired` once the service's
/// clock passes its finish time: by a service that learnt of it only from
/// the store at start, and without a grab. It leaves the unfinished ones,
/// its event is in the global feed, and late grabs are `Ended`.
pub async fn a_promotion_with_coupons_left_expires_at_its_finish_time(fixture: impl Fixture) {
    let store = fixture.store().await;
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let build = |store| service_on(store, clock.clone(), EngineConfig::default());
    let first = build(store.clone());
    let id = first.create_promotion(terms(5)).await.unwrap().id();
    first.grab(id, customer("alice")).await.unwrap();
    first.shutdown().await;
    drop(first);

    // A restarted service knows the promotion from the store alone.
    let seckill = build(fixture.reopen().await);
    let unfinished = |store: Arc<dyn Backend>| async move {
        store
            .unfinished_promotions()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.promotion_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(unfinished(store.clone()).await, vec![id]);

    clock.set(closes());
    let view = await_finished(&seckill, id).await;
    assert_eq!(view.summary.finish_reason, Some(FinishReason::Expired));
    assert_eq!(view.summary.finished_at, Some(closes()));
    assert_eq!(view.summary.remaining, 4);
    assert_eq!(view.status, PromotionStatus::Expired);
    assert!(unfinished(store.clone()).await.is_empty());
    await_count(|| seckill.stats().expired_promotions, 1).await;

    let events = in_feed(&seckill, &store, id).await;
    assert_eq!(expiries(&events), 1, "{events:?}");
    assert!(
        matches!(
            events.last().map(|e| &e.event),
            Some(PromotionEvent::PromotionFinished { at, .. }) if *at == closes()
        ),
        "the expiry is the promotion's last event: {events:?}"
    );
    assert!(matches!(
        rejection(seckill.grab(id, customer("late")).await),
        PromotionError::Ended { finished_at } if finished_at == closes()
    ));
    assert_consistent(&store, id).await;
}

/// Two services on one store each run a timer: a promotion is expired
/// once, a sold-out one not at all, and a manual expiry after the timer's
/// is refused `AlreadyFinished` without a second event.
pub async fn a_finished_promotion_is_never_expired_and_none_twice(fixture: impl Fixture) {
    let store = fixture.store().await;
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let build = |store| service_on(store, clock.clone(), EngineConfig::default());
    let one = build(store.clone());
    let sold_out = one.create_promotion(terms(1)).await.unwrap().id();
    one.grab(sold_out, customer("alice")).await.unwrap();
    let first = one.create_promotion(terms(3)).await.unwrap().id();
    let second = one
        .create_promotion(closing_at(3, closes() + Duration::minutes(1)))
        .await
        .unwrap()
        .id();
    // Built after the creations, so its timer loads both from the store and
    // races the first service's for each expiry.
    let two = build(fixture.reopen().await);

    clock.set(closes() + Duration::seconds(1));
    await_finished(&one, first).await;
    assert!(matches!(
        one.expire_promotion(first).await,
        Err(SecKillError::Rejected(PromotionError::AlreadyFinished))
    ));
    // Expiring the later one takes further ticks of both timers, long
    // after the sold-out promotion's finish time passed.
    clock.set(closes() + Duration::minutes(2));
    await_finished(&two, second).await;

    for id in [first, second] {
        assert_eq!(
            expiries(&in_feed(&one, &store, id).await),
            1,
            "{id} expired once"
        );
    }
    let sold_out_events = in_feed(&one, &store, sold_out).await;
    assert_eq!(expiries(&sold_out_events), 0, "{sold_out_events:?}");
    assert_eq!(sold_out_events.len(), 3, "created, grabbed, sold out");
    assert_eq!(
        one.promotion(sold_out).await.unwrap().status,
        PromotionStatus::SoldOut
    );
    await_count(
        || one.stats().expired_promotions + two.stats().expired_promotions,
        2,
    )
    .await;
    for id in [sold_out, first, second] {
        assert_consistent(&store, id).await;
    }
}

/// A dropped service leaves no timer holding its engine: once it is shut
/// down and dropped, the store it was built over is released.
pub async fn the_expiry_timer_ends_with_the_service(fixture: impl Fixture) {
    let store = fixture.store().await;
    let baseline = Arc::strong_count(&store);
    let (seckill, _clock) = service(store.clone());
    seckill.create_promotion(terms(3)).await.unwrap().id();
    assert!(Arc::strong_count(&store) > baseline);
    seckill.shutdown().await;
    drop(seckill);

    let deadline = std::time::Instant::now() + PATIENCE;
    while Arc::strong_count(&store) > baseline {
        assert!(
            std::time::Instant::now() < deadline,
            "a task still holds the dropped service's store"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}
