//! One given/when/then test per rule of the `Promotion` aggregate, written with
//! cqrs-es's `TestFramework` from plain `#[test]`s (its `when` starts its own
//! runtime, so it must not run inside one).

use chrono::{DateTime, Duration, Utc};
use cqrs_es::test::TestFramework;
use seckill_domain::testing::{self, closes, customer, opens, terms};
use seckill_domain::{
    Coupon, CouponCount, Discount, FinishReason, Promotion, PromotionCommand, PromotionError,
    PromotionEvent, PromotionId, PromotionTerms, ScheduleError, ValueError,
};

type PromotionTest = TestFramework<Promotion>;

fn id() -> PromotionId {
    PromotionId::from_uuid(uuid::Uuid::from_u128(0x5ec_4111))
}

fn during() -> DateTime<Utc> {
    opens() + Duration::minutes(5)
}

fn created(coupons: u64) -> PromotionEvent {
    testing::created(id(), coupons)
}

fn coupon(name: &str, number: u32) -> Coupon {
    Coupon {
        promotion_id: id(),
        number,
        customer_id: customer(name),
        discount: Discount::new(0.8).unwrap(),
        grabbed_at: during(),
    }
}

fn grabbed(name: &str, number: u32, remaining: u32) -> PromotionEvent {
    PromotionEvent::CouponGrabbed {
        coupon: coupon(name, number),
        remaining,
    }
}

fn grab(name: &str) -> PromotionCommand {
    grab_at(name, during())
}

fn grab_at(name: &str, at: DateTime<Utc>) -> PromotionCommand {
    PromotionCommand::GrabCoupon {
        customer_id: customer(name),
        at,
    }
}

fn finished(reason: FinishReason) -> PromotionEvent {
    PromotionEvent::PromotionFinished {
        at: during(),
        reason,
    }
}

#[test]
fn a_new_promotion_is_created() {
    PromotionTest::with(())
        .given_no_previous_events()
        .when(PromotionCommand::CreatePromotion {
            promotion_id: id(),
            terms: terms(3),
            at: opens() - Duration::days(1),
            seal: None,
        })
        .then_expect_events(vec![created(3)]);
}

#[test]
fn a_promotion_cannot_be_created_twice() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::CreatePromotion {
            promotion_id: id(),
            terms: terms(5),
            at: opens() - Duration::days(1),
            seal: None,
        })
        .then_expect_error(PromotionError::AlreadyExists);
}

#[test]
fn commands_to_an_unknown_promotion_are_refused() {
    for command in [
        grab("alice"),
        PromotionCommand::UpdatePromotion {
            terms: terms(1),
            at: during(),
            seal: None,
        },
        PromotionCommand::CancelPromotion { at: during() },
        PromotionCommand::ExpirePromotion { at: closes() },
    ] {
        PromotionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(PromotionError::UnknownPromotion);
    }
}

#[test]
fn the_first_grab_gets_coupon_number_one() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(grab("alice"))
        .then_expect_events(vec![grabbed("alice", 1, 2)]);
}

#[test]
fn first_come_first_get_numbers_coupons_in_grab_order() {
    PromotionTest::with(())
        .given(vec![created(3), grabbed("alice", 1, 2)])
        .when(grab("bob"))
        .then_expect_events(vec![grabbed("bob", 2, 1)]);
}

#[test]
fn the_grab_that_takes_the_last_coupon_also_finishes_the_promotion() {
    PromotionTest::with(())
        .given(vec![created(2), grabbed("alice", 1, 1)])
        .when(grab("bob"))
        .then_expect_events(vec![grabbed("bob", 2, 0), finished(FinishReason::SoldOut)]);
}

#[test]
fn a_sold_out_promotion_rejects_the_next_grab() {
    PromotionTest::with(())
        .given(vec![
            created(1),
            grabbed("alice", 1, 0),
            finished(FinishReason::SoldOut),
        ])
        .when(grab("bob"))
        .then_expect_error(PromotionError::SoldOut {
            number_of_coupons: 1,
        });
}

#[test]
fn a_customer_cannot_grab_twice_and_gets_their_coupon_back() {
    PromotionTest::with(())
        .given(vec![created(3), grabbed("alice", 1, 2)])
        .when(grab("alice"))
        .then_expect_error(PromotionError::AlreadyGrabbed(Box::new(coupon("alice", 1))));
}

#[test]
fn a_winner_retrying_after_sell_out_still_gets_their_coupon() {
    PromotionTest::with(())
        .given(vec![
            created(1),
            grabbed("alice", 1, 0),
            finished(FinishReason::SoldOut),
        ])
        .when(grab("alice"))
        .then_expect_error(PromotionError::AlreadyGrabbed(Box::new(coupon("alice", 1))));
}

#[test]
fn a_grab_before_the_publish_time_is_not_started() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(grab_at("alice", opens() - Duration::milliseconds(1)))
        .then_expect_error(PromotionError::NotStarted {
            publish_time: opens(),
        });
}

#[test]
fn a_grab_exactly_at_the_publish_time_wins() {
    let mut expected = coupon("alice", 1);
    expected.grabbed_at = opens();
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(grab_at("alice", opens()))
        .then_expect_events(vec![PromotionEvent::CouponGrabbed {
            coupon: expected,
            remaining: 2,
        }]);
}

#[test]
fn a_grab_at_the_finish_time_has_ended() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(grab_at("alice", closes()))
        .then_expect_error(PromotionError::Ended {
            finished_at: closes(),
        });
}

#[test]
fn a_grab_after_a_cancellation_has_ended() {
    PromotionTest::with(())
        .given(vec![created(3), finished(FinishReason::Cancelled)])
        .when(grab("alice"))
        .then_expect_error(PromotionError::Ended {
            finished_at: during(),
        });
}

#[test]
fn a_customer_turned_away_when_sold_out_is_not_recorded() {
    // The sold-out rejection writes nothing, so the customer holds nothing.
    let events = PromotionTest::with(())
        .given(vec![
            created(1),
            grabbed("alice", 1, 0),
            finished(FinishReason::SoldOut),
        ])
        .when(grab("bob"))
        .inspect_result();
    assert!(events.is_err());
}

#[test]
fn an_upcoming_promotion_can_be_updated() {
    let at = opens() - Duration::minutes(1);
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::UpdatePromotion {
            terms: terms(7),
            at,
            seal: None,
        })
        .then_expect_events(vec![PromotionEvent::PromotionUpdated {
            terms: terms(7),
            at,
            seal: None,
        }]);
}

#[test]
fn an_update_after_the_start_is_rejected() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::UpdatePromotion {
            terms: terms(7),
            at: opens(),
            seal: None,
        })
        .then_expect_error(PromotionError::AlreadyStarted {
            publish_time: opens(),
        });
}

#[test]
fn an_update_is_rejected_once_a_coupon_was_granted_whatever_its_clock_says() {
    PromotionTest::with(())
        .given(vec![created(3), grabbed("alice", 1, 2)])
        .when(PromotionCommand::UpdatePromotion {
            terms: terms(7),
            at: opens() - Duration::minutes(1),
            seal: None,
        })
        .then_expect_error(PromotionError::AlreadyStarted {
            publish_time: opens(),
        });
}

#[test]
fn a_finished_promotion_cannot_be_updated_or_finished_again() {
    for command in [
        PromotionCommand::UpdatePromotion {
            terms: terms(7),
            at: opens() - Duration::minutes(1),
            seal: None,
        },
        PromotionCommand::CancelPromotion { at: during() },
        PromotionCommand::ExpirePromotion { at: closes() },
    ] {
        PromotionTest::with(())
            .given(vec![created(3), finished(FinishReason::Cancelled)])
            .when(command)
            .then_expect_error(PromotionError::AlreadyFinished);
    }
}

#[test]
fn a_promotion_expires_at_its_finish_time() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::ExpirePromotion { at: closes() })
        .then_expect_events(vec![PromotionEvent::PromotionFinished {
            at: closes(),
            reason: FinishReason::Expired,
        }]);
}

#[test]
fn a_promotion_noticed_late_still_ends_at_its_finish_time() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::ExpirePromotion {
            at: closes() + Duration::hours(2),
        })
        .then_expect_events(vec![PromotionEvent::PromotionFinished {
            at: closes(),
            reason: FinishReason::Expired,
        }]);
}

#[test]
fn a_promotion_cannot_expire_before_its_finish_time() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::ExpirePromotion { at: during() })
        .then_expect_error(PromotionError::NotYetExpired {
            finish_time: closes(),
        });
}

#[test]
fn a_promotion_can_be_cancelled_early() {
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::CancelPromotion { at: during() })
        .then_expect_events(vec![finished(FinishReason::Cancelled)]);
}

#[test]
fn invalid_terms_never_reach_the_aggregate() {
    // Terms are parsed, so an invalid command cannot even be written down.
    assert_eq!(CouponCount::new(0), Err(ValueError::CouponCount(0)));
    assert_eq!(
        CouponCount::new(10_000_001),
        Err(ValueError::CouponCount(10_000_001))
    );
    assert_eq!(Discount::new(0.0), Err(ValueError::Discount(0.0)));
    assert_eq!(Discount::new(1.5), Err(ValueError::Discount(1.5)));
    assert!(matches!(
        PromotionTerms::new(
            CouponCount::new(1).unwrap(),
            Discount::new(0.5).unwrap(),
            closes(),
            opens(),
            None
        ),
        Err(ValueError::FinishNotAfterPublish { .. })
    ));
    // ... and neither can a deserialised command.
    let json = r#"{"GrabCoupon":{"customer_id":"","at":"2030-11-11T00:05:00Z"}}"#;
    assert!(serde_json::from_str::<PromotionCommand>(json).is_err());
}

#[test]
fn errors_read_well() {
    let err = PromotionError::AlreadyGrabbed(Box::new(coupon("alice", 1)));
    assert_eq!(
        err.to_string(),
        "customer alice already holds coupon #1 of this promotion"
    );
    assert_eq!(
        PromotionError::SoldOut {
            number_of_coupons: 100
        }
        .to_string(),
        "all 100 coupons have been taken"
    );
}

fn terms_between(publish: DateTime<Utc>, finish: DateTime<Utc>) -> PromotionTerms {
    PromotionTerms::new(
        CouponCount::new(3).unwrap(),
        Discount::new(0.8).unwrap(),
        publish,
        finish,
        None,
    )
    .unwrap()
}

fn create_at(terms: PromotionTerms, at: DateTime<Utc>) -> PromotionCommand {
    PromotionCommand::CreatePromotion {
        promotion_id: id(),
        terms,
        at,
        seal: None,
    }
}

#[test]
fn a_promotion_that_is_already_over_is_refused() {
    let at = closes();
    PromotionTest::with(())
        .given_no_previous_events()
        .when(create_at(terms(3), at))
        .then_expect_error(PromotionError::Schedule(ScheduleError::FinishInPast {
            finish_time: closes(),
            at,
        }));
}

#[test]
fn a_promotion_may_open_in_the_past_if_it_is_still_running() {
    PromotionTest::with(())
        .given_no_previous_events()
        .when(create_at(terms(3), during()))
        .then_expect_events(vec![created(3)]);
}

#[test]
fn a_promotion_opening_more_than_366_days_ahead_is_refused() {
    let at = opens() - Duration::days(367);
    PromotionTest::with(())
        .given_no_previous_events()
        .when(create_at(terms(3), at))
        .then_expect_error(PromotionError::Schedule(
            ScheduleError::PublishTooFarAhead {
                publish_time: opens(),
                latest: at + ScheduleError::MAX_LEAD,
            },
        ));
    // Exactly the limit is allowed.
    PromotionTest::with(())
        .given_no_previous_events()
        .when(create_at(terms(3), opens() - ScheduleError::MAX_LEAD))
        .then_expect_events(vec![created(3)]);
}

#[test]
fn a_promotion_running_longer_than_366_days_is_refused() {
    let long = terms_between(
        opens(),
        opens() + ScheduleError::MAX_RUN + Duration::seconds(1),
    );
    PromotionTest::with(())
        .given_no_previous_events()
        .when(create_at(long.clone(), opens()))
        .then_expect_error(PromotionError::Schedule(ScheduleError::RunTooLong {
            publish_time: opens(),
            finish_time: long.finish_time(),
        }));
}

#[test]
fn times_at_the_ends_of_the_calendar_are_refused_without_overflow() {
    let (first, last) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    // From the first instant to the last: a run longer than any limit.
    let everything = terms_between(first, last);
    PromotionTest::with(())
        .given_no_previous_events()
        .when(create_at(everything, opens()))
        .then_expect_error(PromotionError::Schedule(ScheduleError::RunTooLong {
            publish_time: first,
            finish_time: last,
        }));
    // A command dated at the end of time: the latest publish time saturates.
    let at_the_end = terms_between(last - Duration::hours(1), last);
    PromotionTest::with(())
        .given_no_previous_events()
        .when(create_at(at_the_end, first))
        .then_expect_error(PromotionError::Schedule(
            ScheduleError::PublishTooFarAhead {
                publish_time: last - Duration::hours(1),
                latest: first + ScheduleError::MAX_LEAD,
            },
        ));
}

#[test]
fn an_update_is_held_to_the_same_schedule_rules() {
    let at = opens() - Duration::days(1);
    let too_far = terms_between(opens() + Duration::days(400), opens() + Duration::days(401));
    PromotionTest::with(())
        .given(vec![created(3)])
        .when(PromotionCommand::UpdatePromotion {
            terms: too_far,
            at,
            seal: None,
        })
        .then_expect_error(PromotionError::Schedule(
            ScheduleError::PublishTooFarAhead {
                publish_time: opens() + Duration::days(400),
                latest: at + ScheduleError::MAX_LEAD,
            },
        ));
}
