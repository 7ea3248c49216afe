//! A property test of the writer's commit pipeline (ADR 0015) under any mix
//! of store faults: for random fault plans, batch sizes and with deciding
//! ahead on or off, a crowd races for fewer coupons than it has people, and
//! every answer must be true of what the store holds afterwards.
//!
//! On this crate's backend, wrapped in the testkit's `FaultyStore`, so a
//! case runs in milliseconds and proptest can try many.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use proptest::prelude::*;
use seckill_app::testing::FixedClock;
use seckill_app::{Backend, EngineConfig, SecKill, SecKillError};
use seckill_domain::testing::{customer, opens, terms};
use seckill_domain::{CustomerId, PromotionError};
use seckill_memory::MemoryStore;
use seckill_testkit::suite::assert_consistent;
use seckill_testkit::{FaultPlan, FaultyStore};

/// Coupons on offer; the crowd is three times as large.
const COUPONS: u64 = 40;

/// Every way a grab can be answered here, as the rules see it.
#[derive(Debug)]
enum Answer {
    Won(u32),
    /// Told it holds this coupon already: its own grab landed although its
    /// first answer was a failure, and it was decided again.
    Held(u32),
    SoldOut,
    /// Refused with nothing written: conflicts until the retries ran out.
    Refused,
    /// A failure after which the grab may or may not be in the store.
    Unsure,
}

fn plan() -> impl Strategy<Value = FaultPlan> {
    // 0 turns a fault off; small numbers make it frequent. Every append
    // conflicting or failing (1) would only test the retries' patience.
    let every = || prop_oneof![Just(0u64), 2u64..6];
    // A store as fast as memory, or one whose appends take 2 ms: long
    // enough for the writer to decide what queues behind a commit in flight.
    let latency = prop_oneof![Just(0u64), Just(2)].prop_map(StdDuration::from_millis);
    (every(), every(), every(), every(), latency).prop_map(
        |(fail, after, conflict, lose, latency)| FaultPlan {
            fail_every: fail,
            fail_after_write_every: after,
            conflict_every: conflict,
            lose_answer_every: lose,
            latency,
            ..FaultPlan::default()
        },
    )
}

async fn race(plan: FaultPlan, max_batch: usize, decide_ahead: bool) {
    let real: Arc<dyn Backend> = Arc::new(MemoryStore::new());
    let store = Arc::new(FaultyStore::new(real.clone(), plan));
    let config = EngineConfig::default()
        .with_max_batch(max_batch)
        .with_decide_ahead(decide_ahead)
        .with_max_conflict_retries(8)
        .with_idle_timeout(StdDuration::from_secs(5));
    let seckill = SecKill::builder(store)
        .clock(Arc::new(FixedClock::new(opens() + Duration::seconds(1))))
        .config(config)
        .build()
        .expect("valid engine settings");
    let id = seckill
        .create_promotion(terms(COUPONS))
        .await
        .expect("creating always works")
        .id();
    let tasks: Vec<_> = (0..3 * COUPONS)
        .map(|i| {
            let seckill = seckill.clone();
            let who = customer(format!("c{i}"));
            tokio::spawn(async move { (who.clone(), seckill.grab(id, who).await) })
        })
        .collect();
    let mut answers: HashMap<CustomerId, Answer> = HashMap::new();
    for task in tasks {
        let (who, outcome) = task.await.expect("grab task");
        let answer = match outcome {
            Ok(coupon) => Answer::Won(coupon.number),
            Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => Answer::SoldOut,
            Err(SecKillError::Rejected(PromotionError::AlreadyGrabbed(coupon))) => {
                Answer::Held(coupon.number)
            }
            Err(SecKillError::Conflict { .. }) => Answer::Refused,
            // Injected failures: before writing, after writing, or the
            // answer lost; the grab's outcome is not promised either way.
            Err(SecKillError::Storage(_) | SecKillError::OutcomeUnknown { .. }) => Answer::Unsure,
            Err(other) => panic!("{who}: an answer no fault explains: {other:?}"),
        };
        answers.insert(who, answer);
    }
    seckill.shutdown().await;

    // Numbered 1..=n without a gap, nobody twice, never more than offered,
    // and the projections agree with the events.
    let stored = assert_consistent(&real, id).await;
    let holders: HashMap<&CustomerId, u32> =
        stored.iter().map(|c| (&c.customer_id, c.number)).collect();
    let mut sold_out_seen = false;
    for (who, answer) in &answers {
        match answer {
            // An acknowledged grab is stored, under the number it was told.
            Answer::Won(number) | Answer::Held(number) => assert_eq!(
                holders.get(who),
                Some(number),
                "{who} was told coupon {number}"
            ),
            // "Sold out" is only ever said of a sale that is.
            Answer::SoldOut => {
                sold_out_seen = true;
                assert!(
                    !holders.contains_key(who),
                    "{who} was told sold out but holds one"
                );
            }
            Answer::Refused => {
                assert!(
                    !holders.contains_key(who),
                    "{who} was refused but holds one"
                );
            }
            Answer::Unsure => {}
        }
    }
    if sold_out_seen {
        assert_eq!(
            stored.len() as u64,
            COUPONS,
            "sold out was said before the last coupon went"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_is_true_of_the_store_under_any_faults(
        plan in plan(),
        max_batch in 1usize..32,
        decide_ahead in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(race(plan, max_batch, decide_ahead));
    }
}
