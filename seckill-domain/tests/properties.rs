//! Property tests: random command sequences against the aggregate, checking the
//! invariants every flash sale must keep whatever order things arrive in.

use std::collections::HashSet;

use chrono::Duration;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use proptest::prelude::*;
use seckill_domain::testing::{self, opens, terms};
use seckill_domain::{Promotion, PromotionCommand, PromotionEvent, PromotionId};

#[derive(Debug, Clone)]
enum Step {
    Grab { customer: u8, minute: i64 },
    Cancel { minute: i64 },
    Expire { minute: i64 },
    Update { coupons: u64, minute: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (0u8..40, -5i64..70).prop_map(|(customer, minute)| Step::Grab { customer, minute }),
        1 => (-5i64..70).prop_map(|minute| Step::Cancel { minute }),
        1 => (-5i64..70).prop_map(|minute| Step::Expire { minute }),
        1 => (1u64..30, -5i64..70).prop_map(|(coupons, minute)| Step::Update { coupons, minute }),
    ]
}

fn command(step: &Step) -> PromotionCommand {
    let at = |minute: i64| opens() + Duration::minutes(minute);
    match *step {
        Step::Grab { customer, minute } => PromotionCommand::GrabCoupon {
            customer_id: testing::customer(format_args!("customer-{customer}")),
            at: at(minute),
        },
        Step::Cancel { minute } => PromotionCommand::CancelPromotion { at: at(minute) },
        Step::Expire { minute } => PromotionCommand::ExpirePromotion { at: at(minute) },
        Step::Update { coupons, minute } => PromotionCommand::UpdatePromotion {
            terms: terms(coupons),
            at: at(minute),
        },
    }
}

/// Runs the command through `handle` and returns the events it wrote.
fn decide(promotion: &mut Promotion, command: PromotionCommand) -> Vec<PromotionEvent> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sink = EventSink::default();
        match promotion.handle(command, &(), &sink).await {
            Ok(()) => sink.collect().await,
            Err(_) => Vec::new(),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn grabs_keep_every_flash_sale_invariant(coupons in 1u64..25, steps in prop::collection::vec(step(), 0..120)) {
        let mut promotion = Promotion::default();
        let id = PromotionId::from_uuid(uuid::Uuid::from_u128(7));
        let mut events = decide(&mut promotion, PromotionCommand::CreatePromotion { promotion_id: id, terms: terms(coupons), at: opens() });
        for step in &steps {
            events.extend(decide(&mut promotion, command(step)));
        }

        let total = promotion.terms().unwrap().number_of_coupons().get();
        let grabs: Vec<_> = events.iter().filter_map(|e| match e {
            PromotionEvent::CouponGrabbed { coupon, remaining } => Some((coupon.clone(), *remaining)),
            _ => None,
        }).collect();

        // Never more successful grabs than coupons.
        prop_assert!(grabs.len() as u32 <= total);
        // Nobody twice.
        let holders: HashSet<_> = grabs.iter().map(|(c, _)| c.customer_id.clone()).collect();
        prop_assert_eq!(holders.len(), grabs.len());
        // Coupon numbers are 1..=granted in order, with no gaps.
        for (i, (coupon, remaining)) in grabs.iter().enumerate() {
            prop_assert_eq!(coupon.number as usize, i + 1);
            // remaining + granted = total, event by event.
            prop_assert_eq!(*remaining + coupon.number, total);
        }
        prop_assert_eq!(promotion.remaining() + promotion.granted(), total);
        prop_assert_eq!(promotion.granted() as usize, grabs.len());

        // Replaying the events rebuilds exactly the same state.
        let mut replayed = Promotion::default();
        for event in events.iter().cloned() {
            replayed.apply(event);
        }
        prop_assert_eq!(&replayed, &promotion);
        // And so does a JSON round trip of that state (what a snapshot stores).
        let snapshot: Promotion = serde_json::from_str(&serde_json::to_string(&promotion).unwrap()).unwrap();
        prop_assert_eq!(&snapshot, &promotion);
    }

    #[test]
    fn every_event_survives_a_json_round_trip(coupons in 1u64..10, steps in prop::collection::vec(step(), 0..40)) {
        let mut promotion = Promotion::default();
        let id = PromotionId::from_uuid(uuid::Uuid::from_u128(9));
        let mut events = decide(&mut promotion, PromotionCommand::CreatePromotion { promotion_id: id, terms: terms(coupons), at: opens() });
        for step in &steps {
            events.extend(decide(&mut promotion, command(step)));
        }
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            let back: PromotionEvent = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, event);
        }
    }

    /// The grab engine's hot path (`grab_events`, then `apply`) records and
    /// does exactly what `handle` does, whatever came before.
    #[test]
    fn grab_events_match_handle(coupons in 1u64..10, steps in prop::collection::vec(step(), 0..60)) {
        let id = PromotionId::from_uuid(uuid::Uuid::from_u128(11));
        let create = PromotionCommand::CreatePromotion { promotion_id: id, terms: terms(coupons), at: opens() };
        let mut by_handle = Promotion::default();
        decide(&mut by_handle, create.clone());
        let mut by_grab_events = Promotion::default();
        decide(&mut by_grab_events, create);
        for step in &steps {
            let command = command(step);
            let expected = decide(&mut by_handle, command.clone());
            let recorded = match &command {
                PromotionCommand::GrabCoupon { customer_id, at } => {
                    match by_grab_events.grab_events(customer_id, *at) {
                        Ok(grab) => grab.into_iter().inspect(|event| by_grab_events.apply(event.clone())).collect(),
                        Err(_) => Vec::new(),
                    }
                }
                _ => decide(&mut by_grab_events, command.clone()),
            };
            prop_assert_eq!(&recorded, &expected);
            prop_assert_eq!(&by_grab_events, &by_handle);
        }
    }
}
