//! Projections are derived data: `seckill-server rebuild` restores them from
//! the events after they are damaged, and a server started on a store whose
//! projections are missing (e.g. a projection added later) fills them itself.

mod common;

use common::{create_open, ServerProcess, SERVER};
use seckill_client::api::PromotionDto;
use seckill_client::Grab;
use seckill_postgres::testing::PgFixture;
use sqlx::PgPool;

/// Every projection row, as text, in a stable order.
async fn projection_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT row_to_json(c)::text FROM (SELECT * FROM coupons ORDER BY promotion_id, number) c \
         UNION ALL \
         SELECT row_to_json(s)::text FROM (SELECT * FROM promotion_summaries ORDER BY promotion_id) s",
    )
    .fetch_all(pool)
    .await
    .expect("reading the projections")
}

/// Two promotions, one sold out, sold over HTTP by a server that is then stopped.
async fn sell(fixture: &PgFixture) -> (PromotionDto, PromotionDto) {
    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let client = &server.client;
    let open = create_open(client, 10).await;
    let sold_out = create_open(client, 5).await;
    for i in 0..8 {
        let won = client.grab(open.promotion_id, &format!("open-{i}")).await;
        assert!(matches!(won, Ok(Grab::Won(_))), "{won:?}");
    }
    for i in 0..6 {
        // The sixth is refused (sold out); only the stored result matters here.
        let _ = client
            .grab(sold_out.promotion_id, &format!("sold-{i}"))
            .await;
    }
    server.kill().await;
    (open, sold_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_restores_deleted_and_corrupted_projection_rows() {
    let fixture = PgFixture::new().await;
    let (open, sold_out) = sell(&fixture).await;
    let pool = fixture.pg_store().pool();
    let before = projection_rows(pool).await;
    assert_eq!(before.len(), 8 + 5 + 2, "{before:#?}");

    // Damage: lost coupons, a stranger's coupon, a wrong count and position,
    // and a summary gone entirely.
    for statement in [
        format!("DELETE FROM coupons WHERE promotion_id = '{}' AND number IN (2, 3)", open.promotion_id),
        format!(
            "INSERT INTO coupons VALUES ('{}', 99, 'ghost', 0.5, now())",
            open.promotion_id
        ),
        format!(
            "UPDATE promotion_summaries SET remaining = 10, last_sequence = 1 WHERE promotion_id = '{}'",
            open.promotion_id
        ),
        format!("DELETE FROM promotion_summaries WHERE promotion_id = '{}'", sold_out.promotion_id),
    ] {
        sqlx::query(&statement).execute(pool).await.expect(&statement);
    }
    assert_ne!(projection_rows(pool).await, before);

    let output = tokio::process::Command::new(SERVER)
        .args(["rebuild", "--database-url", fixture.url()])
        .output()
        .await
        .expect("running seckill-server rebuild");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rebuild failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "rebuilt the projections of 2 promotions");
    assert_eq!(projection_rows(pool).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_without_projections_fills_them_from_the_events() {
    let fixture = PgFixture::new().await;
    let (open, sold_out) = sell(&fixture).await;
    let pool = fixture.pg_store().pool();
    let before = projection_rows(pool).await;
    // As if both projections were added to a store that only had events.
    sqlx::query("TRUNCATE coupons, promotion_summaries")
        .execute(pool)
        .await
        .expect("emptying the projections");

    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    assert_eq!(projection_rows(pool).await, before);
    let view = server.client.promotion(open.promotion_id).await.unwrap();
    assert_eq!(view.remaining, 2);
    let view = server
        .client
        .promotion(sold_out.promotion_id)
        .await
        .unwrap();
    assert_eq!(view.remaining, 0);
    let coupons = server.client.coupons_of("open-7").await.unwrap();
    assert_eq!(coupons.len(), 1);
    server.kill().await;
}
