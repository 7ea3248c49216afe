//! The live feeds: `GET /query/promotions/{id}/events`, Server-Sent Events
//! of one promotion's state; `GET /sync/{latestId}`; and `GET /events`,
//! every stored event as Server-Sent Events resumed with `Last-Event-ID`.

use std::time::Duration as StdDuration;

use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use seckill_client::api::{FeedEventDto, PromotionDto};
use serde_json::{json, Value};

use crate::server::{assert_problem, TestServer};
use seckill_testkit::Fixture;
/// One Server-Sent Event: its `event:` name and its `data:` parsed as JSON.
async fn next_event<S, B>(stream: &mut S, buffer: &mut String) -> (String, Value)
where
    S: futures::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim());
                }
            }
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            return (
                name,
                serde_json::from_str(&data).expect("event data is JSON"),
            );
        }
        let chunk = tokio::time::timeout(StdDuration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open")
            .expect("the stream reads");
        buffer.push_str(std::str::from_utf8(chunk.as_ref()).expect("UTF-8 events"));
    }
}

/// The feed sends the state at once, then the state after a grab.
pub(crate) async fn the_event_stream_delivers_an_update_after_a_grab(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let open = server.create_open(3).await;
    let other = server.create_open(3).await;
    let response = server
        .get(&format!("/query/promotions/{}/events", open.promotion_id))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();

    let (name, first) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(name, "promotion");
    assert_eq!(first["remaining"], 3);
    // Each event's data is a whole promotion, as /openapi.json says.
    let promotion: PromotionDto =
        serde_json::from_value(first.clone()).expect("event data is a PromotionDto");
    assert_eq!(promotion.promotion_id, open.promotion_id);

    // Another promotion's grab is not this feed's business.
    server.won(&other, "carol").await;
    server.won(&open, "alice").await;
    let (_, update) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(update["promotionId"], json!(open.promotion_id));
    assert_eq!(update["remaining"], 2);

    // Two grabs in quick succession may arrive as one coalesced frame; the
    // feed must end at the sold-out state either way.
    server.won(&open, "bob").await;
    server.won(&open, "dave").await;
    let mut last = update;
    while last["remaining"] != 0 {
        last = next_event(&mut stream, &mut buffer).await.1;
    }
    assert_eq!(last["status"], "sold_out");
}

/// `GET /sync/{latestId}` paged through from 0 while a sale runs returns every
/// coupon exactly once, in increasing ids; bad cursors and limits are 4xx.
pub(crate) async fn the_sync_feed_pages_every_coupon_exactly_once(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let sale = server.create_open(300).await;
    let other = server.create_open(5).await;
    let grabs = futures::stream::iter(0..300)
        .map(|i| {
            let (client, id, other) =
                (server.client.clone(), sale.promotion_id, other.promotion_id);
            async move {
                client.grab(id, &format!("sync-{i}")).await.expect("a grab");
                if i % 60 == 0 {
                    // Events of another promotion interleave in the feed.
                    client
                        .grab(other, &format!("sync-{i}"))
                        .await
                        .expect("a grab");
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    let reader = async {
        let mut seen = Vec::new();
        let mut cursor = 0;
        let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
        while seen.len() < 305 && std::time::Instant::now() < deadline {
            let page = server.client.sync(cursor, 50).await.expect("a sync page");
            assert!(page.len() <= 50);
            match page.last() {
                Some(last) => cursor = last.id,
                None => tokio::time::sleep(StdDuration::from_millis(10)).await,
            }
            seen.extend(page);
        }
        seen
    };
    let ((), seen) = futures::join!(
        async {
            grabs.await;
        },
        reader
    );
    let ids: Vec<u64> = seen.iter().map(|c| c.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let mut held: Vec<(uuid::Uuid, String)> = seen
        .iter()
        .map(|c| (c.promotion_id, c.customer_id.clone()))
        .collect();
    held.sort();
    held.dedup();
    assert_eq!(held.len(), 305, "every coupon once");
    for coupon in &seen {
        assert!(coupon.number >= 1 && coupon.discount > 0.0);
    }

    for (path, status) in [
        ("/sync/abc", StatusCode::BAD_REQUEST),
        ("/sync/-1", StatusCode::BAD_REQUEST),
        ("/sync/9223372036854775808", StatusCode::BAD_REQUEST),
        ("/sync/0?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("/sync/0?limit=1001", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    }
}

/// `GET /events` followed during a sale, dropped, and resumed with
/// `Last-Event-ID` = the last id seen: every stored event arrives exactly
/// once, in position order, as `events_after` lists it; `?after=` starts
/// where it says; a bad cursor is a 400 problem.
pub(crate) async fn the_global_event_feed_resumes_after_the_last_event_id(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let sale = server.create_open(150).await;
    let other = server.create_open(5).await;
    let mut first = server.client.events(None).await.expect("the feed opens");
    let grabs = futures::stream::iter(0..200)
        .map(|i| {
            let client = server.client.clone();
            let (sale, other) = (sale.promotion_id, other.promotion_id);
            async move {
                client
                    .grab(sale, &format!("feed-{i}"))
                    .await
                    .expect("a grab");
                if i % 30 == 0 {
                    // Another promotion's events interleave in the feed.
                    client
                        .grab(other, &format!("feed-{i}"))
                        .await
                        .expect("a grab");
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    // Read part of the sale live, then disconnect mid-sale.
    let reader = async {
        let mut seen = Vec::new();
        while seen.len() < 60 {
            let frame = tokio::time::timeout(StdDuration::from_secs(10), first.next())
                .await
                .expect("an event within 10 s")
                .expect("the feed reads")
                .expect("the feed stays open");
            seen.push(frame);
        }
        seen
    };
    let (_, mut seen) = futures::join!(grabs, reader);
    drop(first);

    let mut stored = Vec::new();
    loop {
        let after = stored
            .last()
            .map_or(0, |e: &seckill_app::PositionedEvent| e.position);
        let page = server.seckill.events_after(after, 500).await.unwrap();
        if page.is_empty() {
            break;
        }
        stored.extend(page);
    }
    let last = seen.last().expect("frames seen").id;
    let mut resumed = server
        .client
        .events(Some(last))
        .await
        .expect("the feed reopens");
    while seen.len() < stored.len() {
        let frame = tokio::time::timeout(StdDuration::from_secs(10), resumed.next())
            .await
            .unwrap_or_else(|_| panic!("event {} of {} within 10 s", seen.len() + 1, stored.len()))
            .expect("the feed reads")
            .expect("the feed stays open");
        seen.push(frame);
    }
    let ids: Vec<u64> = seen.iter().map(|frame| frame.id).collect();
    let positions: Vec<u64> = stored.iter().map(|event| event.position).collect();
    assert_eq!(ids, positions, "every event once, in position order");
    for (frame, event) in seen.iter().zip(&stored) {
        let expected = FeedEventDto::try_from_event(event).unwrap();
        assert_eq!(frame.data, expected);
        assert_eq!(frame.event, expected.event_type);
        assert_eq!(frame.data.position, frame.id);
    }
    let kinds: std::collections::BTreeSet<&str> =
        seen.iter().map(|frame| frame.event.as_str()).collect();
    assert_eq!(
        kinds,
        ["CouponGrabbed", "PromotionCreated", "PromotionFinished"].into(),
        "both sales sold out"
    );

    // `?after=` for clients that cannot set the header.
    let middle = &stored[stored.len() / 2];
    let response = server
        .get(&format!("/events?after={}", middle.position))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let (name, data) = next_event(&mut stream, &mut String::new()).await;
    let next = &stored[stored.len() / 2 + 1];
    assert_eq!(data["position"], json!(next.position));
    assert_eq!(name, data["eventType"].as_str().unwrap());

    for (header, query) in [(Some("abc"), ""), (Some("-1"), ""), (None, "?after=x")] {
        let mut request = server
            .client
            .http()
            .get(server.url(&format!("/events{query}")));
        if let Some(header) = header {
            request = request.header("Last-Event-ID", header);
        }
        let response = request.send().await.expect("a request");
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed-request").await;
    }
}
