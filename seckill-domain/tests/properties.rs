//! Property tests: random command sequences against the aggregate, checking the
//! invariants every flash sale must keep whatever order things arrive in; and
//! random draws (entries, retries, late entries among them), checked against
//! the draw's definition and by `draw::verify` from the events alone.

use std::collections::HashSet;

use chrono::Duration;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use proptest::prelude::*;
use seckill_domain::draw::{self, verify, DrawCheckError, DrawSecret};
use seckill_domain::testing::{self, customer, draw_closes, opens, seal, terms};
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
            seal: None,
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
        let mut events = decide(&mut promotion, PromotionCommand::CreatePromotion { promotion_id: id, terms: terms(coupons), at: opens(), seal: None });
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
        let mut events = decide(&mut promotion, PromotionCommand::CreatePromotion { promotion_id: id, terms: terms(coupons), at: opens(), seal: None });
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
        let create = PromotionCommand::CreatePromotion { promotion_id: id, terms: terms(coupons), at: opens(), seal: None };
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

/// A draw of `coupons` coupons; each `(customer, minute)` asks to enter at
/// that minute after the opening (the close is at minute 30); then it is
/// drawn with `secret`. The events recorded.
fn run(coupons: u64, entries: &[(u16, i64)], secret: DrawSecret) -> Vec<PromotionEvent> {
    let id = PromotionId::from_uuid(uuid::Uuid::from_u128(7));
    let mut promotion = Promotion::default();
    let mut events = decide(
        &mut promotion,
        PromotionCommand::CreatePromotion {
            promotion_id: id,
            terms: testing::draw_terms(coupons),
            at: opens() - Duration::days(1),
            seal: Some(draw::DrawSeal {
                commitment: secret.commitment(),
                ..seal()
            }),
        },
    );
    for &(who, minute) in entries {
        events.extend(decide(
            &mut promotion,
            PromotionCommand::EnterDraw {
                customer_id: customer(format_args!("customer-{who}")),
                at: opens() + Duration::minutes(minute),
            },
        ));
    }
    events.extend(decide(
        &mut promotion,
        PromotionCommand::Draw {
            secret,
            at: draw_closes(),
        },
    ));
    while promotion.awaits_awards() {
        events.extend(decide(&mut promotion, PromotionCommand::AwardDraw));
    }
    events
}

proptest! {
    #[test]
    fn the_winners_are_exactly_the_smallest_keys(
        coupons in 1u64..20,
        entries in prop::collection::vec((0u16..60, -3i64..35), 0..80),
        bytes in any::<[u8; 32]>(),
    ) {
        let secret = DrawSecret::from_bytes(bytes);
        let events = run(coupons, &entries, secret);
        let verified = verify(&events).expect("a draw the aggregate recorded checks out");

        // Entries: each customer once, only between the opening and the close.
        let mut expected_entries: Vec<String> = Vec::new();
        for &(who, minute) in &entries {
            let name = format!("customer-{who}");
            if (0..30).contains(&minute) && !expected_entries.contains(&name) {
                expected_entries.push(name);
            }
        }
        let recorded: Vec<&str> = verified.entries.iter().map(|c| c.as_str()).collect();
        prop_assert_eq!(&recorded, &expected_entries);

        // As many winners as coupons, or everyone; no one twice.
        let winners: Vec<&str> = verified.winners.iter().map(|c| c.as_str()).collect();
        prop_assert_eq!(winners.len(), expected_entries.len().min(coupons as usize));
        prop_assert_eq!(winners.iter().collect::<HashSet<_>>().len(), winners.len());

        // The winners, in order, have the smallest keys; every loser's key
        // is larger than every winner's.
        let key = |name: &str| draw::draw_key(&secret, name);
        prop_assert!(winners.windows(2).all(|pair| key(pair[0]) < key(pair[1])));
        if let Some(last) = winners.last() {
            for loser in expected_entries.iter().filter(|e| !winners.contains(&e.as_str())) {
                prop_assert!(key(loser) > key(last));
            }
        }
        let finished = matches!(
            events.last(),
            Some(PromotionEvent::PromotionFinished { reason: seckill_domain::FinishReason::Drawn, .. })
        );
        prop_assert!(finished);
    }

    #[test]
    fn a_tampered_draw_does_not_check_out(
        entries in prop::collection::vec(0u16..40, 3..30),
        bytes in any::<[u8; 32]>(),
    ) {
        let secret = DrawSecret::from_bytes(bytes);
        let timed: Vec<(u16, i64)> = entries.iter().map(|&who| (who, 5)).collect();
        let events = run(2, &timed, secret);
        // Another secret revealed.
        let mut other = events.clone();
        for event in &mut other {
            if let PromotionEvent::PromotionDrawn { secret, .. } = event {
                let mut bytes = *secret.as_bytes();
                bytes[0] ^= 1;
                *secret = DrawSecret::from_bytes(bytes);
            }
        }
        let refused = matches!(verify(&other), Err(DrawCheckError::CommitmentMismatch { .. }));
        prop_assert!(refused);
        // The first coupon handed to someone else.
        let mut swapped = events.clone();
        let entrants: Vec<_> = swapped.iter().filter_map(|e| match e {
            PromotionEvent::DrawEntered { entry } => Some(entry.customer_id.clone()),
            _ => None,
        }).collect();
        for event in &mut swapped {
            if let PromotionEvent::CouponGrabbed { coupon, .. } = event {
                if coupon.number == 1 {
                    let someone_else = entrants.iter().find(|c| **c != coupon.customer_id);
                    if let Some(other) = someone_else {
                        coupon.customer_id = other.clone();
                    }
                }
            }
        }
        if entrants.len() > 1 {
            let refused = matches!(verify(&swapped), Err(DrawCheckError::WrongWinner { number: 1, .. }));
            prop_assert!(refused);
        }
    }
}
