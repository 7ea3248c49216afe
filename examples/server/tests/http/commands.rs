//! Commands over HTTP: create, update, grab, query and cancel, every way a
//! grab can lose, the typed client's reading of each answer, and the load
//! generator's race.

use std::sync::Arc;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use seckill_client::api::{CouponDto, ProblemType, PromotionDto, StatusDto};
use seckill_client::{ClientError, Grab};
use serde_json::json;

use crate::server::{assert_problem, promotion_request, rfc3339, TestServer};
use seckill_testkit::faults::{FaultPlan, FaultyStore};
use seckill_testkit::Fixture;
/// Create, list, update (finish time defaults to a day), grab, query, cancel.
pub(crate) async fn creates_updates_grabs_and_queries_over_http(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let publish = Utc::now() + Duration::hours(1);

    // Created upcoming, without a finish time: it runs for a day.
    let upcoming = server.create(&promotion_request(5, publish, None)).await;
    assert_eq!(upcoming.status, StatusDto::Upcoming);
    assert_eq!(upcoming.id, upcoming.promotion_id);
    assert_eq!(
        upcoming.finish_time - upcoming.publish_time,
        Duration::days(1)
    );
    assert_eq!(upcoming.remaining, 5);

    // The path without the trailing slash works too, and answers Location.
    let response = server
        .client
        .http()
        .post(server.url("/admin/promotions"))
        .json(&promotion_request(
            3,
            Utc::now() - Duration::minutes(1),
            None,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let open: PromotionDto = response.json().await.unwrap();
    assert_eq!(location, format!("/query/promotions/{}", open.promotion_id));
    assert_eq!(open.status, StatusDto::Active);

    // Both are listed, soonest first, with either spelling of the path.
    for path in ["/query/promotions", "/query/promotions/"] {
        let listed: Vec<PromotionDto> = server.get(path).await.json().await.unwrap();
        let ids: Vec<_> = listed.iter().map(|p| p.promotion_id).collect();
        assert_eq!(
            ids,
            vec![open.promotion_id, upcoming.promotion_id],
            "{path}"
        );
    }

    // The upcoming one can still change.
    let updated: PromotionDto = server
        .client
        .http()
        .put(server.url(&format!("/admin/promotions/{}", upcoming.promotion_id)))
        .json(&json!({
            "numberOfCoupons": 7,
            "discount": 0.5,
            "publishTime": rfc3339(publish),
            "finishTime": rfc3339(publish + Duration::hours(2)),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated.number_of_coupons, 7);
    assert_eq!(updated.discount, 0.5);
    assert_eq!(
        updated.finish_time - updated.publish_time,
        Duration::hours(2)
    );
    assert_eq!(updated.name, None, "an update replaces the whole terms");

    // Grab: 201 with the durable coupon, visible in both query endpoints.
    let response = server.grab(&open, "alice").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let coupon: CouponDto = response.json().await.unwrap();
    assert_eq!((coupon.number, coupon.customer_id.as_str()), (1, "alice"));
    assert_eq!(coupon.promotion_id, open.promotion_id);
    let held = server.client.coupons_of("alice").await.unwrap();
    assert_eq!(held, vec![coupon]);
    let strangers = server.client.coupons_of("nobody").await.unwrap();
    assert!(strangers.is_empty());
    let now = server.client.promotion(open.promotion_id).await.unwrap();
    assert_eq!((now.remaining, now.granted), (2, 1));

    // Cancel: the promotion ends, and grabs say so.
    // (The typed call answers only a 200 with the promotion.)
    let cancelled = server
        .client
        .cancel_promotion(open.promotion_id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, StatusDto::Cancelled);
    assert_problem(
        server.grab(&open, "bob").await,
        StatusCode::FORBIDDEN,
        "ended",
    )
    .await;
    let listed = server.client.active_promotions().await.unwrap();
    assert_eq!(listed.len(), 1, "a cancelled promotion is no longer active");
}

/// Not started 425, ended 403, sold out 410, already grabbed 409 with the
/// coupon, unknown promotion 404: distinct codes and types.
pub(crate) async fn each_losing_grab_has_its_own_status_and_problem_type(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;

    let later = Utc::now() + Duration::hours(3);
    let upcoming = server.create(&promotion_request(1, later, None)).await;
    let response = server.grab(&upcoming, "alice").await;
    assert!(
        response.headers().contains_key("retry-after"),
        "not-started says when to come back"
    );
    let body = assert_problem(response, StatusCode::TOO_EARLY, "not-started").await;
    assert_eq!(body["publishTime"], json!(upcoming.publish_time));
    assert_eq!(body["promotionId"], json!(upcoming.promotion_id));

    // A promotion can no longer be created already over, so this one runs
    // for a moment and the test waits it out (the server's real clock). Two
    // seconds, so that a stalled machine still creates it before it ends.
    let finish = Utc::now() + Duration::seconds(2);
    let past = server
        .create(&promotion_request(
            1,
            Utc::now() - Duration::hours(1),
            Some(finish),
        ))
        .await;
    while Utc::now() <= finish {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let body = assert_problem(
        server.grab(&past, "alice").await,
        StatusCode::FORBIDDEN,
        "ended",
    )
    .await;
    // The finish time, whether or not the expiry timer has recorded the end
    // yet (docs/events.md).
    assert_eq!(body["finishedAt"], json!(past.finish_time));

    let open = server.create_open(1).await;
    server.won(&open, "alice").await;
    let body = assert_problem(
        server.grab(&open, "alice").await,
        StatusCode::CONFLICT,
        "already-grabbed",
    )
    .await;
    let coupon: CouponDto = serde_json::from_value(body["coupon"].clone()).expect("coupon member");
    assert_eq!((coupon.number, coupon.customer_id.as_str()), (1, "alice"));
    assert_problem(
        server.grab(&open, "bob").await,
        StatusCode::GONE,
        "sold-out",
    )
    .await;

    let unknown = PromotionDto {
        promotion_id: uuid::Uuid::new_v4(),
        ..open.clone()
    };
    assert_problem(
        server.grab(&unknown, "bob").await,
        StatusCode::NOT_FOUND,
        "unknown-promotion",
    )
    .await;
    assert_problem(
        server
            .get(&format!("/query/promotions/{}", unknown.promotion_id))
            .await,
        StatusCode::NOT_FOUND,
        "unknown-promotion",
    )
    .await;
    assert_problem(
        server
            .get(&format!(
                "/query/promotions/{}/events",
                unknown.promotion_id
            ))
            .await,
        StatusCode::NOT_FOUND,
        "unknown-promotion",
    )
    .await;
}

/// The load generator races 300 customers for 40 coupons and finds every
/// promise kept; a second run on the same, now sold-out, promotion finds
/// zero winners expected and zero won.
pub(crate) async fn the_load_generator_verifies_a_small_flash_sale(fixture: impl Fixture) {
    use seckill_client::loadgen::{self, LoadConfig};

    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let mut config = LoadConfig::new(server.client.base_url().to_owned(), 300, 40);
    config.admin_token = Some(crate::server::ADMIN_TOKEN.to_owned());
    config.concurrency = 16;
    let report = loadgen::run(&config).await.expect("load generator runs");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!((report.won, report.sold_out), (40, 260), "{report}");
    assert_eq!(report.latency.len(), 300);

    let mut again = LoadConfig::new(server.client.base_url().to_owned(), 20, 0);
    again.promotion = Some(report.promotion_id);
    let report = loadgen::run(&again).await.expect("second run");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!((report.won, report.sold_out), (0, 20), "{report}");
}

/// The typed client reads each grab answer as its [`Grab`], and answers
/// that are no grab outcome as a [`ClientError`] with the problem's type.
pub(crate) async fn the_client_reads_every_grab_answer_as_its_outcome(fixture: impl Fixture) {
    let store = fixture.store().await;
    let server = TestServer::builder().store(store.clone()).start().await;
    let client = &server.client;

    let upcoming = server
        .create(&promotion_request(1, Utc::now() + Duration::hours(3), None))
        .await;
    assert_eq!(
        client.grab(upcoming.promotion_id, "alice").await.unwrap(),
        Grab::NotStarted {
            publish_time: upcoming.publish_time
        }
    );

    let open = server.create_open(1).await;
    let Grab::Won(coupon) = client.grab(open.promotion_id, "alice").await.unwrap() else {
        panic!("alice should win the only coupon");
    };
    assert_eq!((coupon.number, coupon.customer_id.as_str()), (1, "alice"));
    let again = client.grab(open.promotion_id, "alice").await.unwrap();
    assert_eq!(again, Grab::AlreadyGrabbed(coupon.clone()));
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let sold_out = client.grab(open.promotion_id, "bob").await.unwrap();
    assert_eq!(sold_out, Grab::SoldOut);
    assert_eq!(sold_out.status(), StatusCode::GONE);

    let cancelled = server.create_open(1).await;
    let finished_at = client
        .cancel_promotion(cancelled.promotion_id)
        .await
        .unwrap()
        .finished_at
        .expect("a cancelled promotion says when it finished");
    assert_eq!(
        client.grab(cancelled.promotion_id, "alice").await.unwrap(),
        Grab::Ended { finished_at }
    );

    // No grab outcome at all: errors that name the problem.
    let unknown = uuid::Uuid::new_v4();
    for refused in [
        client.grab(unknown, "alice").await.map(drop),
        client.promotion(unknown).await.map(drop),
    ] {
        let error = refused.expect_err("an unknown promotion is refused");
        assert!(matches!(error, ClientError::Status { .. }), "{error}");
        assert_eq!(error.status(), Some(StatusCode::NOT_FOUND), "{error}");
        assert_eq!(error.problem_type(), Some(ProblemType::UnknownPromotion));
    }
    let invalid = client.grab(open.promotion_id, " padded").await.unwrap_err();
    assert_eq!(invalid.problem_type(), Some(ProblemType::InvalidValue));

    // A store that fails every append: undecided, with when to come back.
    let fresh = server.create_open(1).await;
    let failing = Arc::new(FaultyStore::new(
        store,
        FaultPlan {
            fail_every: 1,
            ..FaultPlan::default()
        },
    ));
    let failing = TestServer::builder().store(failing).start().await;
    let grab = failing
        .client
        .grab(fresh.promotion_id, "carol")
        .await
        .unwrap();
    assert_eq!(
        grab,
        Grab::StorageUnavailable {
            retry_after: Some(std::time::Duration::from_secs(1))
        }
    );
    assert!(grab.is_unavailable());
}

/// A promotion that runs two seconds is recorded expired at its finish time
/// by the server's expiry timer, with no grab to notice it: its `finishedAt`
/// is set and it leaves the list of active promotions.
pub(crate) async fn a_short_promotion_expires_without_a_grab(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let short = server
        .create(&promotion_request(
            5,
            Utc::now() - Duration::minutes(1),
            Some(Utc::now() + Duration::seconds(2)),
        ))
        .await;
    assert_eq!(short.status, StatusDto::Active);
    assert_eq!(short.finished_at, None);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let expired = loop {
        let now = server.client.promotion(short.promotion_id).await.unwrap();
        if now.finished_at.is_some() {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not recorded expired: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(expired.status, StatusDto::Expired);
    // Recorded at its finish time, whenever the timer's tick came.
    assert_eq!(
        expired.finished_at,
        Some(expired.finish_time),
        "{expired:?}"
    );
    assert_eq!(expired.remaining, 5);
    let active = server.client.active_promotions().await.unwrap();
    assert!(active.iter().all(|p| p.promotion_id != short.promotion_id));
    // Counted once the expiry's command has returned, a moment after the
    // promotion reads finished.
    while server.seckill.stats().expired_promotions < 1 {
        assert!(std::time::Instant::now() < deadline, "expiry not counted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(server.seckill.stats().expired_promotions, 1);
}
