//! The security flags of the real `seckill-server` binary: `--admin-bind`
//! puts `/admin`, `/metrics` and `/docs` on a listener of their own, and the
//! binary's defaults turn the rate limits on.

mod common;

use common::{free_port, ServerProcess, ADMIN_TOKEN};
use reqwest::StatusCode;

/// With `--admin-bind`, the public listener answers 404 for the operators'
/// paths, and the operators' listener serves only those (and the probes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_bind_serves_admin_metrics_and_docs_on_their_own_listener() {
    let admin_port = free_port();
    let admin_bind = format!("127.0.0.1:{admin_port}");
    let server = ServerProcess::builder()
        .bare()
        .flags(&["--admin-token", ADMIN_TOKEN, "--admin-bind", &admin_bind])
        .start()
        .await;
    let public = &server.client;
    let http = public.http();
    let operators = format!("http://{admin_bind}");

    // Creating works on the operators' listener only.
    let admin = seckill_client::Client::with_http(operators.clone(), http.clone())
        .with_admin_token(ADMIN_TOKEN);
    let promotion = common::create_open(&admin, 5).await;
    let refused = common::create_open_answer(public).await;
    assert_eq!(
        refused,
        StatusCode::NOT_FOUND,
        "creating on the public listener"
    );

    for path in ["/metrics", "/docs/", "/admin/promotions/"] {
        let answer = http.get(public.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "public {path}");
    }
    for path in ["/metrics", "/docs/", "/openapi.json", "/healthz"] {
        let answer = http.get(format!("{operators}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "operators' {path}");
    }
    // The public API is on the public listener only.
    let won = public.grab(promotion.promotion_id, "alice").await.unwrap();
    assert!(matches!(won, seckill_client::Grab::Won(_)), "{won:?}");
    let query = format!("{operators}/query/promotions/{}", promotion.promotion_id);
    let answer = http.get(query).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    for path in ["/", "/openapi.json", "/healthz"] {
        let answer = http.get(public.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "public {path}");
    }
    server.terminate().await;
}

/// A server started with a token file takes that token; one started with
/// `--admin-open` takes admin requests without any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_comes_from_a_file_or_admin_routes_are_opened_on_purpose() {
    let file = std::env::temp_dir().join(format!("seckill-admin-token-{}", std::process::id()));
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let server = ServerProcess::builder()
        .bare()
        .flags(&["--admin-token-file", file.to_str().unwrap()])
        .start()
        .await;
    common::create_open(&server.client, 5).await;
    let anonymous =
        seckill_client::Client::with_http(server.client.base_url(), reqwest::Client::new());
    assert_eq!(
        common::create_open_answer(&anonymous).await,
        StatusCode::UNAUTHORIZED
    );
    server.terminate().await;
    std::fs::remove_file(&file).unwrap();

    let open = ServerProcess::builder()
        .bare()
        .flags(&["--admin-open"])
        .start()
        .await;
    let anonymous =
        seckill_client::Client::with_http(open.client.base_url(), reqwest::Client::new());
    assert_eq!(
        common::create_open_answer(&anonymous).await,
        StatusCode::CREATED
    );
    open.terminate().await;
}

/// Flags that cannot work stop the start with an error instead of serving
/// with less protection than asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_flags_that_cannot_work_stop_the_start() {
    for flags in [
        &["--customer-auth", "jwt"][..],
        &["--customer-auth", "jwt", "--jwt-secret", "short"],
        &["--jwt-secret", "a-secret-that-is-long-enough-32-bytes"],
        &["--admin-token", "short"],
        &["--admin-token", "long-enough-token-here", "--admin-open"],
        &["--limit-grab-per-address", "0/s"],
        &["--trusted-proxy", "not-a-network"],
    ] {
        let mut child = tokio::process::Command::new(common::SERVER)
            .args(["--bind", "127.0.0.1:0", "--log", "off"])
            .args(flags)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // A server that starts serves until killed: bounded, so that bug
        // fails here instead of hanging the test.
        let waited = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait()).await;
        let status = waited.unwrap_or_else(|_| panic!("{flags:?} started serving"));
        assert!(!status.unwrap().success(), "{flags:?} started");
    }
}
