//! The live feed: `GET /query/promotions/{id}/events`, Server-Sent Events
//! of one promotion's state.

use std::time::Duration as StdDuration;

use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use seckill_examples::server::PromotionDto;
use serde_json::{json, Value};

use super::server::TestServer;
use crate::fixture::Fixture;
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
pub async fn the_event_stream_delivers_an_update_after_a_grab(fixture: impl Fixture) {
    let server = TestServer::start(&fixture).await;
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
