//! One given/when/then test per rule of a promotion that allocates by draw
//! (docs/draws.md), with cqrs-es's `TestFramework` from plain `#[test]`s.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;
use seckill_domain::draw::{self, DrawSecret};
use seckill_domain::testing::{
    self, closes, customer, draw_closes, draw_terms, opens, seal, secret, terms,
};
use seckill_domain::{
    Allocation, Coupon, Discount, Entry, FinishReason, Promotion, PromotionCommand, PromotionError,
    PromotionEvent, PromotionId, ValueError,
};

type PromotionTest = TestFramework<Promotion>;

fn id() -> PromotionId {
    PromotionId::from_uuid(uuid::Uuid::from_u128(0xd4a3))
}

fn during() -> DateTime<Utc> {
    opens() + Duration::minutes(5)
}

fn created(coupons: u64) -> PromotionEvent {
    testing::draw_created(id(), coupons)
}

fn entry(name: &str, number: u32) -> Entry {
    Entry {
        promotion_id: id(),
        number,
        customer_id: customer(name),
        entered_at: during(),
    }
}

fn entered(name: &str, number: u32) -> PromotionEvent {
    PromotionEvent::DrawEntered {
        entry: entry(name, number),
    }
}

fn enter(name: &str) -> PromotionCommand {
    enter_at(name, during())
}

fn enter_at(name: &str, at: DateTime<Utc>) -> PromotionCommand {
    PromotionCommand::EnterDraw {
        customer_id: customer(name),
        at,
    }
}

fn draw_at(at: DateTime<Utc>) -> PromotionCommand {
    PromotionCommand::Draw {
        secret: secret(),
        at,
    }
}

fn drawn(entries: u32, winners: u32) -> PromotionEvent {
    PromotionEvent::PromotionDrawn {
        secret: secret(),
        at: draw_closes(),
        entries,
        winners,
    }
}

fn awarded(name: &str, number: u32, remaining: u32) -> PromotionEvent {
    PromotionEvent::CouponGrabbed {
        coupon: Coupon {
            promotion_id: id(),
            number,
            customer_id: customer(name),
            discount: Discount::new(0.8).unwrap(),
            grabbed_at: draw_closes(),
        },
        remaining,
    }
}

fn finished_drawn() -> PromotionEvent {
    PromotionEvent::PromotionFinished {
        at: draw_closes(),
        reason: FinishReason::Drawn,
    }
}

/// The given entries' names in the draw's order with [`secret`].
fn draw_order(names: &[&str], coupons: u32) -> Vec<String> {
    draw::winners(&secret(), names.iter().copied(), coupons)
        .into_iter()
        .map(|place| names[place as usize].to_owned())
        .collect()
}

#[test]
fn a_draw_is_created_with_the_seal_of_its_secret() {
    PromotionTest::with(())
        .given_no_previous_events()
        .when(PromotionCommand::CreatePromotion {
            promotion_id: id(),
            terms: draw_terms(3),
            at: opens() - Duration::days(1),
            seal: Some(seal()),
        })
        .then_expect_events(vec![created(3)]);
}

#[test]
fn a_draw_without_a_seal_or_a_first_come_with_one_is_refused() {
    for (terms, seal) in [(draw_terms(3), None), (terms(3), Some(seal()))] {
        PromotionTest::with(())
            .given_no_previous_events()
            .when(PromotionCommand::CreatePromotion {
                promotion_id: id(),
                terms,
                at: opens() - Duration::days(1),
                seal,
            })
            .then_expect_error(PromotionError::Seal);
    }
}

#[test]
fn a_draw_closes_within_the_sale() {
    for closes_at in [
        opens() - Duration::seconds(1),
        closes() + Duration::seconds(1),
    ] {
        let refused = terms(3).with_allocation(Allocation::Draw { closes_at });
        assert!(
            matches!(refused, Err(ValueError::CloseOutsideSale { .. })),
            "{closes_at}"
        );
    }
    for closes_at in [opens(), closes()] {
        assert!(terms(3)
            .with_allocation(Allocation::Draw { closes_at })
            .is_ok());
    }
}

#[test]
fn a_customer_enters_with_the_next_number() {
    PromotionTest::with(())
        .given(vec![created(3), entered("alice", 1)])
        .when(enter("bob"))
        .then_expect_events(vec![entered("bob", 2)]);
}

#[test]
fn a_second_entry_is_answered_with_the_first() {
    PromotionTest::with(())
        .given(vec![created(3), entered("alice", 1)])
        .when(enter_at("alice", during() + Duration::minutes(1)))
        .then_expect_error(PromotionError::AlreadyEntered(Box::new(entry("alice", 1))));
}

#[test]
fn an_entry_before_the_publish_time_is_refused() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(enter_at("alice", opens() - Duration::seconds(1)))
        .then_expect_error(PromotionError::NotStarted {
            publish_time: opens(),
        });
}

#[test]
fn an_entry_at_or_after_the_close_is_refused() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(enter_at("alice", draw_closes()))
        .then_expect_error(PromotionError::EntriesClosed {
            closes_at: draw_closes(),
        });
}

#[test]
fn a_first_come_promotion_takes_no_entries_and_no_draw() {
    for command in [enter("alice"), draw_at(draw_closes())] {
        PromotionTest::with(())
            .given(vec![testing::created(id(), 3)])
            .when(command)
            .then_expect_error(PromotionError::NotADraw);
    }
}

#[test]
fn a_grab_on_a_draw_is_refused() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::GrabCoupon {
            customer_id: customer("alice"),
            at: during(),
        })
        .then_expect_error(PromotionError::IsADraw {
            closes_at: draw_closes(),
        });
}

#[test]
fn the_draw_waits_for_the_close() {
    PromotionTest::with(())
        .given(vec![created(3), entered("alice", 1)])
        .when(draw_at(draw_closes() - Duration::seconds(1)))
        .then_expect_error(PromotionError::NotYetClosed {
            closes_at: draw_closes(),
        });
}

#[test]
fn the_draw_needs_the_committed_secret() {
    PromotionTest::with(())
        .given(vec![created(3), entered("alice", 1)])
        .when(PromotionCommand::Draw {
            secret: DrawSecret::from_bytes([8; 32]),
            at: draw_closes(),
        })
        .then_expect_error(PromotionError::WrongSecret);
}

#[test]
fn when_fewer_entered_than_there_are_coupons_everyone_wins_in_draw_order() {
    let order = draw_order(&["alice", "bob"], 3);
    PromotionTest::with(())
        .given(vec![created(3), entered("alice", 1), entered("bob", 2)])
        .when(draw_at(draw_closes()))
        .then_expect_events(vec![
            drawn(2, 2),
            awarded(&order[0], 1, 2),
            awarded(&order[1], 2, 1),
            finished_drawn(),
        ]);
}

#[test]
fn the_smallest_keys_win_as_many_as_there_are_coupons() {
    let names = ["alice", "bob", "carol", "dave", "erin"];
    let order = draw_order(&names, 2);
    let mut given = vec![created(2)];
    given.extend(names.iter().zip(1..).map(|(name, n)| entered(name, n)));
    PromotionTest::with(())
        .given(given)
        .when(draw_at(draw_closes()))
        .then_expect_events(vec![
            drawn(5, 2),
            awarded(&order[0], 1, 1),
            awarded(&order[1], 2, 0),
            finished_drawn(),
        ]);
}

#[test]
fn a_late_draw_takes_the_close_as_its_time() {
    // The command comes an hour late (after the finish time); every event
    // still names the close.
    PromotionTest::with(())
        .given(vec![created(1), entered("alice", 1)])
        .when(draw_at(closes() + Duration::hours(1)))
        .then_expect_events(vec![drawn(1, 1), awarded("alice", 1, 0), finished_drawn()]);
}

#[test]
fn a_draw_with_no_entries_finishes_with_no_winner() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(draw_at(draw_closes()))
        .then_expect_events(vec![drawn(0, 0), finished_drawn()]);
}

#[test]
fn a_promotion_is_drawn_once() {
    PromotionTest::with(())
        .given(vec![created(1), entered("alice", 1), drawn(1, 1)])
        .when(draw_at(draw_closes()))
        .then_expect_error(PromotionError::AlreadyDrawn);
}

#[test]
fn awards_left_by_an_interrupted_draw_are_made_by_award_draw() {
    // Drawn, then the commit of its awards was lost: the awards follow.
    PromotionTest::with(())
        .given(vec![created(1), entered("alice", 1), drawn(1, 1)])
        .when(PromotionCommand::AwardDraw)
        .then_expect_events(vec![awarded("alice", 1, 0), finished_drawn()]);
    PromotionTest::with(())
        .given(vec![
            created(1),
            entered("alice", 1),
            drawn(1, 1),
            awarded("alice", 1, 0),
            finished_drawn(),
        ])
        .when(PromotionCommand::AwardDraw)
        .then_expect_error(PromotionError::NothingToAward);
}

#[test]
fn entries_close_with_the_draw_and_the_winner_grabs_their_coupon() {
    let given = vec![
        created(1),
        entered("alice", 1),
        drawn(1, 1),
        awarded("alice", 1, 0),
        finished_drawn(),
    ];
    PromotionTest::with(())
        .given(given.clone())
        .when(enter_at("bob", during()))
        .then_expect_error(PromotionError::EntriesClosed {
            closes_at: draw_closes(),
        });
    PromotionTest::with(())
        .given(given)
        .when(PromotionCommand::GrabCoupon {
            customer_id: customer("alice"),
            at: closes(),
        })
        .then_expect_error(PromotionError::AlreadyGrabbed(Box::new(Coupon {
            promotion_id: id(),
            number: 1,
            customer_id: customer("alice"),
            discount: Discount::new(0.8).unwrap(),
            grabbed_at: draw_closes(),
        })));
}

#[test]
fn a_draw_does_not_expire_it_is_drawn() {
    PromotionTest::with(())
        .given(vec![created(1)])
        .when(PromotionCommand::ExpirePromotion { at: closes() })
        .then_expect_error(PromotionError::NotYetDrawn {
            closes_at: draw_closes(),
        });
}

#[test]
fn a_draw_can_be_cancelled_before_it_is_drawn_not_after() {
    PromotionTest::with(())
        .given(vec![created(1), entered("alice", 1)])
        .when(PromotionCommand::CancelPromotion { at: during() })
        .then_expect_events(vec![PromotionEvent::PromotionFinished {
            at: during(),
            reason: FinishReason::Cancelled,
        }]);
    PromotionTest::with(())
        .given(vec![created(1), entered("alice", 1), drawn(1, 1)])
        .when(PromotionCommand::CancelPromotion { at: closes() })
        .then_expect_error(PromotionError::AlreadyDrawn);
}

#[test]
fn a_big_draw_awards_a_commits_worth_at_a_time() {
    let coupons = Promotion::AWARDS_PER_COMMIT + 5;
    let mut promotion = Promotion::default();
    let apply = |promotion: &mut Promotion, event| cqrs_es::Aggregate::apply(promotion, event);
    apply(&mut promotion, created(u64::from(coupons)));
    for n in 1..=coupons + 10 {
        let entry = promotion
            .decide_entry(&customer(format_args!("c{n}")), during())
            .unwrap();
        apply(&mut promotion, PromotionEvent::DrawEntered { entry });
    }
    let event = promotion.draw_event(secret(), draw_closes()).unwrap();
    apply(&mut promotion, event);
    let first = promotion.award_events().unwrap();
    assert_eq!(first.len(), Promotion::AWARDS_PER_COMMIT as usize);
    for event in first {
        apply(&mut promotion, event);
    }
    let second = promotion.award_events().unwrap();
    assert_eq!(second.len(), 6, "the last five coupons and the finish");
    assert!(matches!(
        second.last(),
        Some(PromotionEvent::PromotionFinished { .. })
    ));
    for event in second {
        apply(&mut promotion, event);
    }
    assert_eq!(promotion.granted(), coupons);
    assert!(promotion.is_finished());
}
