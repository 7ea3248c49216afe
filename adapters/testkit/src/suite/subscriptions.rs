//! Durable subscriptions, on every backend: catch-up then live with no gap
//! or duplicate at the seam, resuming from the checkpoint, retrying a
//! failing handler without skipping, one active consumer per name, a
//! takeover after a crash, and the lease rules of the store port itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use seckill_app::subscription::{
    EventHandler, HandlerError, Start, Subscription, SubscriptionError, SubscriptionLease,
};
use seckill_app::{Backend, PositionedEvent, SecKill};

use super::{customer, service, terms};
use crate::doomed::Doomed;
use crate::fixture::Fixture;

/// Records what it is handed, and fails (or panics) on chosen positions a
/// chosen number of times first.
#[derive(Clone, Default)]
pub struct Recorder {
    seen: Arc<Mutex<Vec<PositionedEvent>>>,
    // position -> failures still to inject; a negative count panics instead.
    faults: Arc<Mutex<HashMap<u64, i32>>>,
}

impl Recorder {
    /// Fails `times` times on `position` before handling it.
    pub fn fail_on(&self, position: u64, times: i32) {
        self.faults.lock().unwrap().insert(position, times);
    }

    /// Panics once on `position` before handling it.
    pub fn panic_on(&self, position: u64) {
        self.faults.lock().unwrap().insert(position, -1);
    }

    /// Every position handed over, in the order handled.
    pub fn positions(&self) -> Vec<u64> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect()
    }

    /// Waits until `count` events were handed over, or 20 s pass.
    pub async fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + StdDuration::from_secs(20);
        while self.seen.lock().unwrap().len() < count && Instant::now() < deadline {
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, event: &PositionedEvent) -> Result<(), HandlerError> {
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            match faults.get_mut(&event.position) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    Some(false)
                }
                Some(left) if *left < 0 => {
                    *left = 0;
                    Some(true)
                }
                _ => None,
            }
        };
        match fault {
            Some(true) => panic!("injected panic at position {}", event.position),
            Some(false) => Err(format!("injected failure at position {}", event.position).into()),
            None => {
                self.seen.lock().unwrap().push(event.clone());
                Ok(())
            }
        }
    }
}

/// Every position in the store, read straight from the global feed.
async fn every_position(seckill: &SecKill) -> Vec<u64> {
    let mut positions = Vec::new();
    let mut after = 0;
    loop {
        let page = seckill.events_after(after, 1_000).await.unwrap();
        let Some(last) = page.last() else {
            return positions;
        };
        after = last.position;
        positions.extend(page.iter().map(|e| e.position));
    }
}

/// The feed's positions once it holds `count` events. Committed events are
/// in the feed at once (ADR 0011); the bounded wait turns a regression into
/// a failed assertion rather than a hang.
async fn positions_when(seckill: &SecKill, count: usize) -> Vec<u64> {
    let deadline = Instant::now() + StdDuration::from_secs(20);
    loop {
        let positions = every_position(seckill).await;
        if positions.len() >= count || Instant::now() > deadline {
            return positions;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

async fn grab_many(
    seckill: &SecKill,
    promotion: seckill_domain::PromotionId,
    prefix: &str,
    n: usize,
) {
    for i in 0..n {
        seckill
            .grab(promotion, customer(format!("{prefix}-{i}")))
            .await
            .unwrap();
    }
}

fn quick(seckill: &SecKill, name: &str) -> seckill_app::subscription::SubscriptionBuilder {
    seckill
        .subscription(name)
        // Long enough that a loaded machine's stall (a disk's fsync was seen
        // to take 1.6 s) does not lapse a live consumer's lease, which would
        // hand its name over mid-test and deliver again from the checkpoint:
        // it is renewed every third, so a renewal would have to take over
        // 3 s. Short enough that a crashed one's lapses within the tests'
        // 20 s waits.
        .lease(StdDuration::from_secs(5))
        .poll_interval(StdDuration::from_millis(20))
        .retry(StdDuration::from_millis(5), StdDuration::from_millis(50))
}

/// A new subscription catches up from 0 while grabs keep coming, then follows
/// live: every event once, in order, and its lag reaches 0.
pub async fn a_subscription_catches_up_then_follows_live_without_gap_or_duplicate(
    fixture: impl Fixture,
) {
    let (seckill, _) = service(fixture.store().await);
    let promotion = seckill.create_promotion(terms(1_000)).await.unwrap().id();
    grab_many(&seckill, promotion, "before", 150).await;
    let recorder = Recorder::default();
    let subscription = quick(&seckill, "catch-up")
        .batch_size(16)
        .run(recorder.clone())
        .unwrap();
    // Grabs keep coming while it catches up, from several tasks at once.
    let grabbing: Vec<_> = (0..4)
        .map(|task| {
            let seckill = seckill.clone();
            tokio::spawn(async move {
                grab_many(&seckill, promotion, &format!("during-{task}"), 50).await
            })
        })
        .collect();
    for task in grabbing {
        task.await.unwrap();
    }
    let total = 1 + 150 + 200;
    recorder.wait_for(total).await;
    let expected = positions_when(&seckill, total).await;
    assert_eq!(expected.len(), total);
    assert_eq!(recorder.positions(), expected, "every event once, in order");
    let seen = recorder.seen.lock().unwrap().clone();
    let sequences: Vec<u64> = seen.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=total as u64).collect::<Vec<_>>(),
        "in stream order"
    );

    // The checkpoint reaches the head, and the library call says so.
    let deadline = Instant::now() + StdDuration::from_secs(10);
    let lag = loop {
        let lag = seckill.subscription_lag("catch-up").await.unwrap().unwrap();
        if lag.behind() == 0 || Instant::now() > deadline {
            break lag;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    };
    assert_eq!(lag.position, *expected.last().unwrap());
    assert_eq!(lag.behind(), 0);
    let status = subscription.status();
    assert!(status.active);
    assert_eq!(status.handled, total as u64);
    assert_eq!(status.failures, 0);
    subscription.stop().await;
    assert_eq!(seckill.subscription_lag("never-run").await.unwrap(), None);
}

/// Stopped and started again, a subscription goes on after its checkpoint;
/// one that starts "now" sees nothing older.
pub async fn a_subscription_resumes_from_its_checkpoint(fixture: impl Fixture) {
    let (seckill, _) = service(fixture.store().await);
    let promotion = seckill.create_promotion(terms(100)).await.unwrap().id();
    grab_many(&seckill, promotion, "first", 10).await;
    let first = Recorder::default();
    let subscription = quick(&seckill, "resume").run(first.clone()).unwrap();
    first.wait_for(11).await;
    subscription.stop().await;
    assert_eq!(first.positions(), positions_when(&seckill, 11).await);

    grab_many(&seckill, promotion, "second", 5).await;
    // A name that starts "now" sees nothing of the past.
    let late = Recorder::default();
    let now = quick(&seckill, "from-now")
        .start(Start::Now)
        .run(late.clone())
        .unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while seckill
        .subscription_lag("from-now")
        .await
        .unwrap()
        .is_none()
        && Instant::now() < deadline
    {
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }

    let again = Recorder::default();
    let subscription = quick(&seckill, "resume")
        .start(Start::Now) // ignored: the name has a checkpoint
        .run(again.clone())
        .unwrap();
    again.wait_for(5).await;
    let all = positions_when(&seckill, 16).await;
    assert_eq!(
        again.positions(),
        all[11..].to_vec(),
        "only what came after the stop"
    );

    grab_many(&seckill, promotion, "third", 3).await;
    late.wait_for(3).await;
    let all = positions_when(&seckill, 19).await;
    assert_eq!(
        late.positions(),
        all[16..].to_vec(),
        "only what came after it started"
    );
    subscription.stop().await;
    now.stop().await;
}

/// A checkpoint past the newest event (what a failover to a standby that
/// lost the newest commits leaves) is never passed over in silence: the
/// status and the gauge say how far ahead it is, until the head reaches it.
pub async fn a_checkpoint_past_the_head_shows_until_the_head_reaches_it(fixture: impl Fixture) {
    let (seckill, _) = service(fixture.store().await);
    let promotion = seckill.create_promotion(terms(100)).await.unwrap().id();
    grab_many(&seckill, promotion, "before", 4).await;
    let head = *positions_when(&seckill, 5).await.last().unwrap();
    // As if this subscription had handled five events the store then lost.
    let recorder = Recorder::default();
    let subscription = quick(&seckill, "ahead")
        .start(Start::After(head + 5))
        .run(recorder.clone())
        .unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(20);
    while subscription.status().ahead != 5 {
        assert!(
            Instant::now() < deadline,
            "the status never said how far ahead: {:?}",
            subscription.status()
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    // New events take positions up to the checkpoint, then pass it.
    grab_many(&seckill, promotion, "after", 8).await;
    let all = positions_when(&seckill, 13).await;
    let past: Vec<u64> = all.iter().copied().filter(|&p| p > head + 5).collect();
    recorder.wait_for(past.len()).await;
    assert_eq!(
        recorder.positions(),
        past,
        "only what is past the checkpoint"
    );
    let deadline = Instant::now() + StdDuration::from_secs(20);
    while subscription.status().ahead != 0 {
        assert!(
            Instant::now() < deadline,
            "the status still says ahead: {:?}",
            subscription.status()
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    subscription.stop().await;
}

/// Handler errors and panics are retried with backoff; no event is skipped,
/// and the failures show in the status.
pub async fn a_failing_handler_is_retried_and_nothing_is_skipped(fixture: impl Fixture) {
    let (seckill, _) = service(fixture.store().await);
    let promotion = seckill.create_promotion(terms(100)).await.unwrap().id();
    grab_many(&seckill, promotion, "retry", 20).await;
    let positions = positions_when(&seckill, 21).await;
    let recorder = Recorder::default();
    recorder.fail_on(positions[4], 3);
    recorder.panic_on(positions[9]);
    recorder.fail_on(positions[20], 2);
    let subscription = quick(&seckill, "retried")
        .batch_size(8)
        .run(recorder.clone())
        .unwrap();
    recorder.wait_for(21).await;
    assert_eq!(
        recorder.positions(),
        positions,
        "every event once, in order, none skipped"
    );
    let status = subscription.status();
    assert_eq!(status.failures, 6, "3 + 1 panic + 2");
    let last_error = status.last_error.unwrap();
    assert!(
        last_error.contains(&format!("position {}", positions[20])),
        "{last_error}"
    );
    subscription.stop().await;
}

/// The lag in time: while an event cannot be handled, the status says how
/// long the oldest unhandled event has waited, and it grows; a caught-up
/// subscription says `None`.
pub async fn a_stuck_subscription_shows_how_long_its_oldest_event_waits(fixture: impl Fixture) {
    let (seckill, _) = service(fixture.store().await);
    let promotion = seckill.create_promotion(terms(100)).await.unwrap().id();
    grab_many(&seckill, promotion, "waits", 3).await;
    let positions = positions_when(&seckill, 4).await;
    let stuck = Recorder::default();
    stuck.fail_on(positions[1], i32::MAX);
    let subscription = quick(&seckill, "stuck").run(stuck.clone()).unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(20);
    let waited = loop {
        let status = subscription.status();
        if let Some(waited) = status.oldest_unhandled {
            if waited >= StdDuration::from_secs(1) {
                assert!(status.lag() >= 1, "{status:?}");
                break waited;
            }
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    };
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    let later = subscription.status().oldest_unhandled.expect("still stuck");
    assert!(later > waited, "the wait grows: {waited:?} then {later:?}");
    subscription.stop().await;

    let fine = Recorder::default();
    let caught_up = quick(&seckill, "caught-up").run(fine.clone()).unwrap();
    fine.wait_for(positions.len()).await;
    let deadline = Instant::now() + StdDuration::from_secs(20);
    while caught_up.status().oldest_unhandled.is_some() {
        assert!(Instant::now() < deadline, "{:?}", caught_up.status());
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    caught_up.stop().await;
}

/// Two consumers of one name: one delivers, the other stands by, and takes
/// over at the checkpoint when the first stops.
pub async fn one_consumer_is_active_per_name_and_a_standby_takes_over(fixture: impl Fixture) {
    let (one, _) = service(fixture.store().await);
    let (two, _) = service(fixture.reopen().await);
    let promotion = one.create_promotion(terms(100)).await.unwrap().id();
    grab_many(&one, promotion, "a", 10).await;
    let (first, second) = (Recorder::default(), Recorder::default());
    let a = quick(&one, "shared").run(first.clone()).unwrap();
    let b = quick(&two, "shared").run(second.clone()).unwrap();
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while first.positions().len() + second.positions().len() < 11 && Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert!(
        a.status().active != b.status().active,
        "exactly one is active: {:?} / {:?}",
        a.status(),
        b.status()
    );
    let (active, standby, active_seen, standby_seen) = if a.status().active {
        (a, b, first, second)
    } else {
        (b, a, second, first)
    };
    assert!(
        standby_seen.positions().is_empty(),
        "the standby delivers nothing"
    );
    // The active one stops and hands over; the standby goes on from its checkpoint.
    active.stop().await;
    grab_many(&one, promotion, "b", 10).await;
    standby_seen.wait_for(10).await;
    let all = positions_when(&one, 21).await;
    assert_eq!(active_seen.positions(), all[..11].to_vec());
    assert_eq!(
        standby_seen.positions(),
        all[11..].to_vec(),
        "no gap, no duplicate at the handover"
    );
    assert!(standby.status().active);
    standby.stop().await;
}

/// A consumer that dies without a word is taken over once its lease lapses,
/// and nothing is missed across the crash.
pub async fn a_crashed_consumer_is_taken_over_and_nothing_is_missed(fixture: impl Fixture) {
    let (seckill, _) = service(fixture.store().await);
    let promotion = seckill.create_promotion(terms(1_000)).await.unwrap().id();
    grab_many(&seckill, promotion, "before", 100).await;
    let crashed = Recorder::default();
    // The doomed consumer runs on a runtime of its own, which is then torn
    // down: its task dies mid-stream, releasing nothing, as in a kill -9.
    // Borrowed: the fixture owns the test's database and must outlive both.
    let fixture = &fixture;
    let doomed = Doomed::start(|| {
        let crashed = crashed.clone();
        async move {
            let (other, _) = service(fixture.reopen().await);
            quick(&other, "crash").batch_size(4).run(crashed).unwrap()
        }
    });
    crashed.wait_for(30).await;
    let survivor = Recorder::default();
    let standby = quick(&seckill, "crash").run(survivor.clone()).unwrap();
    doomed.kill(); // no stop, no release: only the lease lapsing frees the name
    grab_many(&seckill, promotion, "after", 50).await;
    let all = positions_when(&seckill, 151).await;
    let deadline = Instant::now() + StdDuration::from_secs(20);
    while survivor.positions().last() != all.last() && Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    // At least once: what the crashed one handled without a checkpoint may
    // come again, but together they saw everything, each in order.
    let (before, after) = (crashed.positions(), survivor.positions());
    assert!(before.windows(2).all(|w| w[0] < w[1]));
    assert!(after.windows(2).all(|w| w[0] < w[1]));
    let mut union: Vec<u64> = before.iter().chain(&after).copied().collect();
    union.sort_unstable();
    union.dedup();
    assert_eq!(union, all, "no event missed across the crash");
    standby.stop().await;
}

/// Claims the name "fence" for `who` for `lease`, a new name starting at `start`.
async fn claim(
    store: &Arc<dyn Backend>,
    who: uuid::Uuid,
    lease: StdDuration,
    start: u64,
) -> Option<SubscriptionLease> {
    store
        .claim_subscription("fence", who, lease, start)
        .await
        .unwrap()
}

/// A lease that outlives the test: what must stay held does, however long
/// a loaded machine takes between two statements (a 200 ms lease once
/// lapsed between a claim and the next line's).
const HELD: StdDuration = StdDuration::from_secs(60);
/// The one lease the test lets lapse.
const LAPSING: StdDuration = StdDuration::from_millis(200);

/// The store port's lease rules: held, renewed, lapsed, fenced, released.
pub async fn subscription_leases_fence_a_consumer_that_lost_its_name(fixture: impl Fixture) {
    let store = fixture.store().await;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let held = claim(&store, a, HELD, 7).await.unwrap();
    assert_eq!(
        (held.epoch, held.checkpoint),
        (1, 7),
        "a new name starts where asked"
    );
    assert_eq!(claim(&store, b, HELD, 0).await, None, "held by another");
    // Renewing with a short lease, so that it can lapse below.
    assert_eq!(
        claim(&store, a, LAPSING, 0).await.unwrap().epoch,
        1,
        "renewing keeps the epoch"
    );
    assert!(store.save_checkpoint(&held, 9).await.unwrap());
    assert!(
        store.save_checkpoint(&held, 8).await.unwrap(),
        "accepted, never backwards"
    );
    assert_eq!(store.checkpoint("fence").await.unwrap(), Some(9));

    tokio::time::sleep(LAPSING + StdDuration::from_millis(100)).await;
    // From here on the name is held for longer than the test runs.
    let taken = claim(&store, b, HELD, 0).await.unwrap();
    assert_eq!(
        (taken.epoch, taken.checkpoint),
        (2, 9),
        "a lapsed lease passes on"
    );
    assert!(
        !store.save_checkpoint(&held, 20).await.unwrap(),
        "the old holder is fenced"
    );
    assert_eq!(claim(&store, a, HELD, 0).await, None);
    store.release_subscription(&held).await.unwrap(); // not current: no effect
    assert_eq!(claim(&store, a, HELD, 0).await, None);

    store.release_subscription(&taken).await.unwrap();
    let back = claim(&store, a, HELD, 0).await.unwrap();
    assert_eq!(
        (back.epoch, back.checkpoint),
        (3, 9),
        "a released name is free at once"
    );
    assert_eq!(store.checkpoint("unknown").await.unwrap(), None);
}

/// Names and settings a subscription cannot run with are typed errors.
pub async fn subscription_settings_that_cannot_work_are_refused(fixture: impl Fixture) {
    let (seckill, _) = service(fixture.store().await);
    let refused = |result: Result<Subscription, SubscriptionError>| match result {
        Err(error) => error,
        Ok(_) => panic!("accepted"),
    };
    assert!(matches!(
        refused(seckill.subscription("").run(Recorder::default())),
        SubscriptionError::InvalidName(_)
    ));
    assert!(matches!(
        refused(seckill.subscription("has space").run(Recorder::default())),
        SubscriptionError::InvalidName(_)
    ));
    assert!(matches!(
        refused(
            seckill
                .subscription("x")
                .batch_size(0)
                .run(Recorder::default())
        ),
        SubscriptionError::OutOfRange {
            field: "batch_size",
            ..
        }
    ));
    assert!(matches!(
        refused(
            seckill
                .subscription("x")
                .lease(StdDuration::ZERO)
                .run(Recorder::default())
        ),
        SubscriptionError::OutOfRange { field: "lease", .. }
    ));
}
