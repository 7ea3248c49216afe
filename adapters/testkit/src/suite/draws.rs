//! Draws (docs/draws.md) on every backend: entries through the engine, the
//! draw made on time by the timer of a service that learnt of the
//! promotion from the store alone, and a result anyone can recompute from
//! the stored events.

use seckill_domain::draw::{self, DrawCheckError};
use seckill_domain::testing::{draw_closes, draw_terms};
use seckill_domain::{Entry, FinishReason};

use super::lifecycle::await_finished;
use super::*;

/// Eight customers enter a draw of five coupons (one twice); a restarted
/// service draws it at the close by its clock, with no request; the stored
/// events verify, the five winners hold coupons 1 to 5 in the draw's order,
/// and the summary shows the commitment, the entries and the secret.
pub async fn a_draw_is_drawn_at_its_close_and_anyone_can_verify_it(fixture: impl Fixture) {
    let store = fixture.store().await;
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let build = |store| service_on(store, clock.clone(), EngineConfig::default());
    let first = build(store.clone());
    let view = first.create_promotion(draw_terms(5)).await.unwrap();
    let id = view.id();
    let shown = view.summary.draw.clone().expect("a draw's summary");
    assert_eq!(shown.closes_at, draw_closes());
    assert_eq!(shown.entries, 0);
    assert!(
        shown.secret.is_none(),
        "the secret stays sealed until the close"
    );

    let mut entries: Vec<Entry> = Vec::new();
    for n in 0..8 {
        entries.push(
            first
                .enter_draw(id, customer(format_args!("entrant-{n}")))
                .await
                .unwrap(),
        );
    }
    let numbers: Vec<u32> = entries.iter().map(|e| e.number).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    // A second entry is answered with the first; a grab is refused.
    assert!(matches!(
        rejection(first.enter_draw(id, customer("entrant-3")).await),
        PromotionError::AlreadyEntered(entry) if *entry == entries[3]
    ));
    assert!(matches!(
        rejection(first.grab(id, customer("entrant-3")).await),
        PromotionError::IsADraw { closes_at } if closes_at == draw_closes()
    ));
    first.shutdown().await;
    drop(first);

    // A restarted service knows the draw from the store alone.
    let seckill = build(fixture.reopen().await);
    let before = seckill.promotion(id).await.unwrap();
    assert_eq!(before.summary.draw.as_ref().map(|d| d.entries), Some(8));
    clock.set(draw_closes() + Duration::seconds(1));
    let view = await_finished(&seckill, id).await;
    assert_eq!(view.summary.finish_reason, Some(FinishReason::Drawn));
    assert_eq!(view.summary.finished_at, Some(draw_closes()));
    assert_eq!(view.status, PromotionStatus::Drawn);
    assert_eq!(view.summary.remaining, 0);
    let shown = view.summary.draw.clone().expect("a draw's summary");
    assert_eq!(
        shown.seal.commitment,
        before.summary.draw.unwrap().seal.commitment
    );
    let secret = shown.secret.expect("the secret is revealed");

    // Anyone holding the events gets the same winners.
    let events = store.load_events(id, 0).await.unwrap();
    let verified = draw::verify(&events).expect("the stored draw verifies");
    assert_eq!(verified.secret, secret);
    assert_eq!(verified.entries.len(), 8);
    assert_eq!(verified.winners.len(), 5);
    let coupons = assert_consistent(&store, id).await;
    let holders: Vec<_> = coupons.iter().map(|c| c.customer_id.clone()).collect();
    assert_eq!(
        holders, verified.winners,
        "coupon n went to the n-th winner"
    );
    for coupon in &coupons {
        assert_eq!(coupon.grabbed_at, draw_closes(), "the draw is the close's");
    }
    // After the draw: entries are closed; a winner's grab is their coupon.
    assert!(matches!(
        rejection(seckill.enter_draw(id, customer("late")).await),
        PromotionError::EntriesClosed { .. }
    ));
    assert!(matches!(
        rejection(seckill.grab(id, holders[0].clone()).await),
        PromotionError::AlreadyGrabbed(coupon) if coupon.number == 1
    ));
    // A draw recorded with another secret would not verify.
    let mut forged = events.clone();
    for event in &mut forged {
        if let PromotionEvent::PromotionDrawn { secret, .. } = event {
            *secret = draw::DrawSecret::from_bytes([0; 32]);
        }
    }
    assert!(matches!(
        draw::verify(&forged),
        Err(DrawCheckError::CommitmentMismatch { .. })
    ));
}

/// Two services on one store: the draw is made once, whichever timer gets
/// there first, and a draw with fewer entries than coupons gives everyone
/// a coupon.
pub async fn a_draw_is_made_once_by_two_services(fixture: impl Fixture) {
    let store = fixture.store().await;
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    let build = |store| service_on(store, clock.clone(), EngineConfig::default());
    let one = build(store.clone());
    let id = one.create_promotion(draw_terms(10)).await.unwrap().id();
    let two = build(fixture.reopen().await);
    for n in 0..3 {
        let service = if n % 2 == 0 { &one } else { &two };
        let entered = service.enter_draw(id, customer(format_args!("e{n}"))).await;
        // Two engines on one store without ownership: a conflict is a
        // retryable answer that recorded nothing.
        match entered {
            Ok(_) => {}
            Err(error) if error.is_retryable() => {
                service
                    .enter_draw(id, customer(format_args!("e{n}")))
                    .await
                    .unwrap();
            }
            Err(error) => panic!("entering: {error:?}"),
        }
    }
    clock.set(draw_closes());
    await_finished(&one, id).await;
    let events = store.load_events(id, 0).await.unwrap();
    let drawn = events
        .iter()
        .filter(|e| matches!(e, PromotionEvent::PromotionDrawn { .. }))
        .count();
    assert_eq!(drawn, 1, "{events:?}");
    let verified = draw::verify(&events).expect("verifies");
    assert_eq!(verified.winners.len(), 3, "everyone wins");
    assert_consistent(&store, id).await;
}
