//! Anyone can recompute a draw (docs/draws.md): against a real server that
//! drew a promotion on its own, `seckill-server verify-draw` and an
//! independent Python script (`fixtures/verify_draw.py`, the standard
//! library only) both read the public event feed, and both name exactly
//! the customers who hold the coupons, in coupon order. The server seals
//! the draw's secret with a key given by `--draw-key`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use common::{create_open, ServerProcess, SERVER};
use seckill_client::api::{PromotionRequest, StatusDto};
use seckill_client::Enter;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/verify_draw.py");

/// Runs `program` with `args`; its exit status and standard output.
async fn run(program: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|error| panic!("running {program}: {error} (is it installed?)"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("{program} {args:?}: {stderr}");
    }
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_a_python_script_recompute_a_real_draw() {
    assert!(Path::new(SCRIPT).exists(), "{SCRIPT}");
    // With a draw key of the operator's, not the store's.
    let server = ServerProcess::builder()
        .flags(&[
            "--draw-key",
            "the operator's draw key, kept out of the store",
        ])
        .start()
        .await;
    let client = server.client.clone();
    let base = client.base_url().to_owned();
    let now = Utc::now();
    let closes_at = (now + chrono::Duration::seconds(3))
        .duration_trunc(chrono::Duration::milliseconds(1))
        .unwrap();
    let request = PromotionRequest {
        number_of_coupons: 4,
        discount: 0.5,
        publish_time: now - chrono::Duration::minutes(1),
        finish_time: Some(now + chrono::Duration::hours(1)),
        name: Some("a draw to verify".into()),
        draw_closes_at: Some(closes_at),
    };
    let id = client
        .create_promotion(&request)
        .await
        .unwrap()
        .promotion_id;
    for n in 0..12 {
        let customer = format!("customer-{n}");
        let entered = client.enter(id, &customer).await.unwrap();
        assert!(
            matches!(entered, Enter::Entered(_)),
            "{customer}: {entered:?}"
        );
    }

    // Drawn by the server at the close, with no request.
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.promotion(id).await.unwrap().status != StatusDto::Drawn {
        assert!(Instant::now() < deadline, "not drawn");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut holders: Vec<(u32, String)> = Vec::new();
    for n in 0..12 {
        let customer = format!("customer-{n}");
        for coupon in client.coupons_of(&customer).await.unwrap() {
            holders.push((coupon.number, coupon.customer_id));
        }
    }
    holders.sort();
    let holders: Vec<String> = holders.into_iter().map(|(_, customer)| customer).collect();
    assert_eq!(holders.len(), 4);

    let promotion = id.to_string();
    let (ok, out) = run(SERVER, &["verify-draw", &promotion, "--url", &base]).await;
    assert!(ok, "verify-draw failed:\n{out}");
    assert!(out.contains("verified"), "{out}");
    for (number, holder) in (1..).zip(&holders) {
        assert!(
            out.lines().any(|line| line
                .split_whitespace()
                .eq([number.to_string().as_str(), holder])),
            "verify-draw lists coupon {number} for {holder}:\n{out}"
        );
    }

    let (ok, out) = run("python3", &[SCRIPT, &base, &promotion]).await;
    assert!(ok, "the Python script failed:\n{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("verified"), "{out}");
    assert_eq!(lines.collect::<Vec<_>>(), holders, "the script's winners");

    // And a promotion that is not a draw does not check out, in either.
    let first_come = create_open(&client, 3).await.promotion_id.to_string();
    let (ok, _) = run(SERVER, &["verify-draw", &first_come, "--url", &base]).await;
    assert!(!ok, "verify-draw of a first-come promotion");
    // The script reads to the promotion's finish; cancel it so it has one.
    let cancelled = client
        .as_admin(
            client
                .http()
                .post(client.url(&format!("/admin/promotions/{first_come}/cancel"))),
        )
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success());
    let (ok, _) = run("python3", &[SCRIPT, &base, &first_come]).await;
    assert!(!ok, "the script on a first-come promotion");
    server.kill().await;
}
