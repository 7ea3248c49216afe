//! The publisher against a real nats-server (`NATS_URL`): a sale's events
//! published through a durable subscription land once each, in order, on the
//! right subjects; copies are dropped; the stream's settings change in place.
//!
//! ```text
//! cargo test -p seckill-nats --test publish      # needs nats-server -js
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::time::{Duration, Instant};

use seckill_app::subscription::Start;
use seckill_app::{PositionedEvent, SecKill};
use seckill_domain::{CouponCount, CustomerId, Discount, PromotionEvent, PromotionTerms};
use seckill_memory::MemoryStore;
use seckill_nats::async_nats::header::{IntoHeaderName, NATS_MESSAGE_ID};
use seckill_nats::async_nats::jetstream::message::StreamMessage;
use seckill_nats::testing::NatsFixture;
use seckill_nats::{
    message_id, republish, NatsError, Publisher, Storage, StreamSettings, POSITION_HEADER,
    SEQUENCE_HEADER,
};

/// A sale of `coupons` coupons in memory, grabbed by `customers` customers
/// (more than the coupons, so it sells out), and every event it stored.
async fn sale(coupons: u64, customers: usize) -> (SecKill, Vec<PositionedEvent>) {
    let seckill = SecKill::new(MemoryStore::new());
    let now = chrono::Utc::now();
    let terms = PromotionTerms::new(
        CouponCount::new(coupons).expect("count"),
        Discount::new(0.5).expect("discount"),
        now - chrono::Duration::minutes(1),
        now + chrono::Duration::hours(1),
        None,
    )
    .expect("terms");
    for _ in 0..2 {
        let promotion = seckill
            .create_promotion(terms.clone())
            .await
            .expect("create")
            .id();
        for i in 0..customers {
            let customer = CustomerId::parse(format!("customer-{i}")).expect("customer");
            // Some are sold out: those record nothing more.
            let _ = seckill.grab(promotion, customer).await;
        }
    }
    let events = seckill.events_after(0, 10_000).await.expect("events");
    (seckill, events)
}

/// Waits until the publisher's subscription has handled `events`.
async fn published(
    subscription: &seckill_app::subscription::Subscription,
    events: &[PositionedEvent],
) {
    let last = events.last().expect("some events").position;
    let deadline = Instant::now() + Duration::from_secs(20);
    while subscription.status().position < last {
        assert!(
            Instant::now() < deadline,
            "the subscription never reached position {last}: {:?}",
            subscription.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A header's value. Nats-Msg-Id is looked up by async-nats's constant:
/// its `HeaderMap` keys known names apart from the same text as a string.
fn header(message: &StreamMessage, name: impl IntoHeaderName + Clone + Display) -> &str {
    message
        .headers
        .get(name.clone())
        .unwrap_or_else(|| {
            panic!(
                "message {} has no {name}: {:?}",
                message.sequence, message.headers
            )
        })
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sales_events_land_once_each_in_sequence_order_on_their_subjects() {
    let nats = NatsFixture::new().await;
    let (seckill, events) = sale(30, 40).await;
    let publisher = Publisher::new(nats.client(), nats.settings()).expect("publisher");
    // Small batches, so the sale spans many of them.
    let subscription = seckill
        .subscription(format!("nats-publisher.{}", nats.stream()))
        .start(Start::Beginning)
        .batch_size(7)
        .run(publisher)
        .expect("subscription");
    published(&subscription, &events).await;
    subscription.stop().await;

    let messages = nats.messages().await;
    assert_eq!(messages.len(), events.len(), "one message per event");
    let subjects = nats.subjects();
    let mut last_sequence: HashMap<String, u64> = HashMap::new();
    for (message, event) in messages.iter().zip(&events) {
        assert_eq!(message.subject.as_str(), subjects.of(event));
        assert_eq!(
            message.subject.as_str(),
            format!(
                "{}.promotion.{}.{}",
                nats.prefix(),
                event.promotion_id,
                cqrs_es::DomainEvent::event_type(&event.event)
            )
        );
        assert_eq!(header(message, NATS_MESSAGE_ID), message_id(event));
        assert_eq!(
            header(message, NATS_MESSAGE_ID),
            format!("{}:{}", event.promotion_id, event.sequence)
        );
        assert_eq!(header(message, POSITION_HEADER), event.position.to_string());
        assert_eq!(header(message, SEQUENCE_HEADER), event.sequence.to_string());
        let payload: PromotionEvent =
            serde_json::from_slice(&message.payload).expect("payload is the event's JSON");
        assert_eq!(payload, event.event);
        // In sequence order per promotion, with no gap.
        let previous = last_sequence
            .insert(event.promotion_id.to_string(), event.sequence)
            .unwrap_or(0);
        assert_eq!(event.sequence, previous + 1);
    }
    let grabbed = messages
        .iter()
        .filter(|m| m.subject.ends_with(".CouponGrabbed"))
        .count();
    assert_eq!(grabbed, 60, "30 coupons of each of the two promotions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_range_is_dropped_as_duplicates_within_the_window() {
    let nats = NatsFixture::new().await;
    let (seckill, events) = sale(10, 12).await;
    let publisher = Publisher::new(nats.client(), nats.settings()).expect("publisher");
    let first = republish(&seckill, &publisher, 1, 5, |_| {})
        .await
        .expect("first publish");
    assert_eq!(first.events, events.len());
    assert_eq!(first.published.stored, events.len());
    assert_eq!(first.last_position, events.last().expect("events").position);

    // An operator replays from the middle: every copy is dropped.
    let middle = events[events.len() / 2].position;
    let mut pages = 0;
    let again = republish(&seckill, &publisher, middle, 4, |_| pages += 1)
        .await
        .expect("republish");
    let expected = events.iter().filter(|e| e.position >= middle).count();
    assert_eq!(again.events, expected);
    assert_eq!(again.published.duplicates, expected);
    assert_eq!(again.published.stored, 0);
    assert_eq!(pages, expected.div_ceil(4));
    assert_eq!(nats.messages().await.len(), events.len(), "no copy stored");

    // The same through the handler, as a subscription's redelivery would.
    let redelivered = Publisher::new(nats.client(), nats.settings())
        .expect("publisher")
        .publish(&events[..3])
        .await
        .expect("redelivery");
    assert_eq!((redelivered.stored, redelivered.duplicates), (0, 3));
    assert_eq!(nats.messages().await.len(), events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_settings_are_updated_in_place_keeping_the_messages() {
    let nats = NatsFixture::new().await;
    let (seckill, events) = sale(3, 3).await;
    let publisher = Publisher::new(nats.client(), nats.settings()).expect("publisher");
    let info = publisher.ensure_stream().await.expect("created");
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert_eq!(
        info.config.subjects,
        vec![format!("{}.promotion.>", nats.prefix())]
    );
    republish(&seckill, &publisher, 1, 100, |_| {})
        .await
        .expect("publish");

    let changed = StreamSettings {
        max_age: Some(Duration::from_secs(3600)),
        max_messages: Some(10_000),
        max_bytes: Some(64 * 1024 * 1024),
        duplicate_window: Duration::from_secs(30),
        ..nats.settings()
    };
    let info = seckill_nats::ensure_stream(&nats.jetstream(), &changed)
        .await
        .expect("updated");
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert_eq!(info.config.max_messages, 10_000);
    assert_eq!(info.config.max_bytes, 64 * 1024 * 1024);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(30));
    assert_eq!(info.state.messages, events.len() as u64, "messages kept");

    // JetStream cannot move a stream from disk to memory: a typed error.
    let moved = StreamSettings {
        storage: Storage::Memory,
        ..changed
    };
    let refused = seckill_nats::ensure_stream(&nats.jetstream(), &moved).await;
    assert!(
        matches!(refused, Err(NatsError::Stream { ref stream, .. }) if stream == nats.stream()),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_behind_the_publishers_back_is_created_again() {
    let nats = NatsFixture::new().await;
    let (_seckill, events) = sale(2, 2).await;
    // Ten seconds: the first publish's ack must come even from a stalled
    // disk; with the stream gone the next fails at once (no responders),
    // not by this timeout.
    let publisher = Publisher::new(nats.client(), nats.settings())
        .expect("publisher")
        .ack_timeout(Duration::from_secs(10));
    publisher.publish(&events[..1]).await.expect("first");
    nats.jetstream()
        .delete_stream(nats.stream())
        .await
        .expect("deleted");

    // The next batch fails with nothing acknowledged, and the retry creates
    // the stream again.
    let failure = publisher
        .publish(&events[1..])
        .await
        .expect_err("no stream takes the subject");
    assert_eq!(failure.acked.acked(), 0);
    assert!(
        matches!(failure.error, NatsError::Publish { .. }),
        "{:?}",
        failure.error
    );
    // nats-server 2.9 can fail to create a stream while another test's
    // stream is deleted (error 10049, "could not create storage
    // directory"); the subscription runner retries a failed batch, and so
    // does this, a few times.
    let mut attempts = 0;
    let retried = loop {
        attempts += 1;
        match publisher.publish(&events[1..]).await {
            Ok(published) => break published,
            Err(failure) if attempts < 5 && failure.acked.acked() == 0 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(failure) => panic!("retry {attempts}: {failure:?}"),
        }
    };
    assert_eq!(retried.stored, events.len() - 1);
    assert_eq!(nats.messages().await.len(), events.len() - 1);
}
