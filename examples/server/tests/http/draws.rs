//! Draws over HTTP (docs/draws.md): a promotion created with
//! `drawClosesAt`, entries through `POST /command/entries/` with their
//! problem types, and the draw made on time, whose result the promotion
//! shows and anyone can recompute.

use chrono::{Duration, DurationRound, Utc};
use reqwest::StatusCode;
use seckill_client::api::{PromotionRequest, StatusDto};
use seckill_client::{Enter, Grab};
use seckill_domain::draw::{self, Commitment, DrawSecret};

use crate::server::{assert_problem, promotion_request, TestServer};
use seckill_testkit::Fixture;

fn draw_request(coupons: u64, closes_in: Duration) -> PromotionRequest {
    let now = Utc::now();
    PromotionRequest {
        // Milliseconds, as the other test times: PostgreSQL keeps microseconds.
        draw_closes_at: Some(
            (now + closes_in)
                .duration_trunc(Duration::milliseconds(1))
                .unwrap(),
        ),
        ..promotion_request(
            coupons,
            now - Duration::minutes(1),
            Some(now + Duration::hours(1)),
        )
    }
}

/// Five customers enter a draw of three coupons; one enters twice and one
/// grabs; the server draws at the close; the promotion shows the secret
/// whose SHA-256 it showed before, and the winners recomputed from it hold
/// the coupons.
pub(crate) async fn a_draw_takes_entries_and_is_drawn_on_time(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let created = server.create(&draw_request(3, Duration::seconds(3))).await;
    let id = created.promotion_id;
    let shown = created.draw.clone().expect("the draw is shown");
    assert_eq!(shown.entries, 0);
    assert_eq!(shown.secret, None, "sealed until the close");
    let commitment: Commitment = shown.commitment.parse().expect("64 hex digits");

    let customers = ["ann", "ben", "cai", "dee", "eli"];
    for (n, customer) in customers.iter().enumerate() {
        match server.client.enter(id, customer).await.unwrap() {
            Enter::Entered(entry) => assert_eq!(entry.number as usize, n + 1),
            other => panic!("{customer}: {other:?}"),
        }
    }
    let again = server.client.enter(id, "ben").await.unwrap();
    assert!(
        matches!(&again, Enter::AlreadyEntered(entry) if entry.number == 2),
        "{again:?}"
    );
    let grab = server.grab(&created, "ann").await;
    let body = assert_problem(grab, StatusCode::CONFLICT, "is-a-draw").await;
    assert!(body["closesAt"].is_string(), "{body}");
    let during = server.client.promotion(id).await.unwrap();
    assert_eq!(during.draw.as_ref().map(|d| d.entries), Some(5));

    // Drawn at the close by the server's own timer, with no request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let drawn = loop {
        let now = server.client.promotion(id).await.unwrap();
        if now.finished_at.is_some() {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "not drawn: {now:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(drawn.status, StatusDto::Drawn);
    assert_eq!(drawn.remaining, 0);
    let shown = drawn.draw.clone().expect("the draw is shown");
    assert_eq!(Some(drawn.finished_at.unwrap()), Some(shown.closes_at));
    let secret: DrawSecret = shown.secret.expect("revealed").parse().unwrap();
    assert_eq!(secret.commitment(), commitment, "the secret committed to");

    // Recomputed from what the API showed: the winners hold the coupons.
    let order = draw::winners(&secret, customers, 3);
    for (n, &place) in order.iter().enumerate() {
        let winner = customers[place as usize];
        let coupons = server.client.coupons_of(winner).await.unwrap();
        assert_eq!(coupons.len(), 1, "{winner}");
        assert_eq!(coupons[0].number as usize, n + 1, "{winner}");
        assert!(matches!(
            server.client.grab(id, winner).await.unwrap(),
            Grab::AlreadyGrabbed(coupon) if coupon.number as usize == n + 1
        ));
    }
    let losers = customers
        .iter()
        .enumerate()
        .filter(|(place, _)| !order.contains(&(*place as u32)));
    for (_, loser) in losers {
        assert!(server.client.coupons_of(loser).await.unwrap().is_empty());
    }
    let late = server.client.enter(id, "fay").await.unwrap();
    assert!(matches!(late, Enter::Closed { closes_at } if closes_at == shown.closes_at));
}

/// The problems of entries: a first-come promotion is `not-a-draw`, a
/// close outside the sale is `invalid-value`, an unknown promotion 404.
pub(crate) async fn entries_outside_a_draw_are_refused_with_problems(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let first_come = server.create_open(3).await;
    let refused = server
        .client
        .http()
        .post(server.url("/command/entries/"))
        .json(&serde_json::json!({"promotionId": first_come.promotion_id, "customerId": "ann"}))
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::CONFLICT, "not-a-draw").await;
    let unknown = server
        .client
        .http()
        .post(server.url("/command/entries/"))
        .json(&serde_json::json!({"promotionId": uuid::Uuid::new_v4(), "customerId": "ann"}))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "unknown-promotion").await;
    let outside = draw_request(3, Duration::hours(2));
    let answer = server
        .client
        .http()
        .post(server.url("/admin/promotions/"))
        .bearer_auth(crate::server::ADMIN_TOKEN)
        .json(&outside)
        .send()
        .await
        .unwrap();
    let body = assert_problem(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid-value").await;
    assert!(body["detail"].as_str().unwrap().contains("close"), "{body}");
}
