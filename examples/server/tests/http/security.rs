//! Who may call what, and how often, over real sockets: the admin token on
//! every admin route, customer tokens (JWT), the rate limits with their 429
//! and `Retry-After`, client addresses behind trusted proxies, and the live
//! page's security headers.

use std::net::IpAddr;

use chrono::{Duration, Utc};
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Client as Http, RequestBuilder, StatusCode};
use seckill_app::SecKill;
use seckill_server::{
    AdminAccess, CustomerAuth, JwtVerifier, Metrics, RateLimits, Security, TrustedProxies,
};
use serde_json::{json, Value};

use crate::server::{assert_problem, promotion_request, test_security, TestServer, ADMIN_TOKEN};
use seckill_testkit::Fixture;

/// A server over the fixture's store with these rules.
async fn start(fixture: &impl Fixture, security: Security) -> TestServer {
    let seckill = SecKill::builder(fixture.store().await)
        .build()
        .expect("default engine settings");
    TestServer::builder()
        .seckill(seckill)
        .metrics(Metrics::isolated())
        .security(security)
        .start()
        .await
}

/// A client that presents nothing, bound to `from` (any 127/8 address is
/// this host on Linux), so a test can speak as several clients.
fn client_from(from: &str) -> Http {
    Http::builder()
        .local_address(from.parse::<IpAddr>().expect("an address"))
        .build()
        .expect("build client")
}

/// How to build one admin request, from a client of the test's choosing.
type Request<'a> = dyn Fn(&Http) -> RequestBuilder + 'a;

/// Every admin route refuses a request without the token and one with a
/// wrong token (401 with `WWW-Authenticate`), and takes the right one.
pub(crate) async fn every_admin_route_needs_the_admin_token(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let bare = Http::new();
    let now = Utc::now();
    let upcoming = promotion_request(5, now + Duration::hours(1), None);
    let open = server.create_open(5).await;
    let target = server.create(&upcoming).await;
    let routes: Vec<(&str, Box<Request<'_>>, StatusCode)> = vec![
        (
            "create",
            Box::new(|http: &Http| http.post(server.url("/admin/promotions/")).json(&upcoming)),
            StatusCode::CREATED,
        ),
        (
            "create, no trailing slash",
            Box::new(|http: &Http| http.post(server.url("/admin/promotions")).json(&upcoming)),
            StatusCode::CREATED,
        ),
        (
            "update",
            Box::new(|http: &Http| {
                let path = format!("/admin/promotions/{}", target.promotion_id);
                http.put(server.url(&path)).json(&upcoming)
            }),
            StatusCode::OK,
        ),
        (
            "cancel",
            Box::new(|http: &Http| {
                let path = format!("/admin/promotions/{}/cancel", open.promotion_id);
                http.post(server.url(&path))
            }),
            StatusCode::OK,
        ),
        (
            "an admin path that does not exist",
            Box::new(|http: &Http| http.get(server.url("/admin/nothing-here"))),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (name, request, granted) in &routes {
        let missing = request(&bare).send().await.unwrap();
        assert!(missing.headers().contains_key(WWW_AUTHENTICATE), "{name}");
        let body = assert_problem(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(
            body["detail"].as_str().unwrap().contains("Bearer"),
            "{name}: {body}"
        );
        for wrong in [
            "Bearer not-the-token-at-all",
            "Basic dGVzdDp0ZXN0",
            ADMIN_TOKEN,
        ] {
            let answer = request(&bare)
                .header(AUTHORIZATION, wrong)
                .send()
                .await
                .unwrap();
            assert_problem(answer, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
        let right = request(&bare)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), *granted, "{name} with the admin token");
    }
    // Nothing the refused requests asked for happened.
    let still = server.client.promotion(open.promotion_id).await.unwrap();
    assert_eq!(still.promotion_id, open.promotion_id);
    let listed = server.client.active_promotions().await.unwrap();
    assert_eq!(listed.len(), 3, "two creates with the token, none without");
}

/// Without an admin token configured the admin routes are closed (403, saying
/// how to open them), and the rest of the API works.
pub(crate) async fn admin_routes_are_closed_without_a_token(fixture: impl Fixture) {
    let server = start(&fixture, Security::default()).await;
    let request = promotion_request(5, Utc::now(), None);
    let answer = server
        .client
        .http()
        .post(server.url("/admin/promotions/"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let body = assert_problem(answer, StatusCode::FORBIDDEN, "admin-disabled").await;
    assert!(
        body["detail"].as_str().unwrap().contains("--admin-token"),
        "{body}"
    );
    assert_eq!(server.client.active_promotions().await.unwrap(), vec![]);
}

/// The HS256 secret of the JWT tests.
const JWT_SECRET: &str = "customer-tokens-test-secret-of-32-bytes+";

fn customer_token(sub: &str, expires_in: Duration, secret: &str) -> String {
    let claims = json!({"sub": sub, "exp": (Utc::now() + expires_in).timestamp()});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode a token")
}

/// With customer tokens on, a grab acts only for the token's `sub`: a
/// forged, an expired or a missing token is 401, another customer's id is
/// 403; a customer reads only their own coupons.
pub(crate) async fn customer_tokens_decide_who_grabs_and_whose_coupons_are_read(
    fixture: impl Fixture,
) {
    let verifier = JwtVerifier::hs256(JWT_SECRET.as_bytes()).expect("a long secret");
    let security = test_security().customers(CustomerAuth::Jwt(verifier.into()));
    let server = start(&fixture, security).await;
    let promotion = server.create_open(10).await;
    let http = Http::new();
    let grab = |customer: &str| {
        http.post(server.url("/command/coupons/"))
            .json(&json!({"promotionId": promotion.promotion_id, "customerId": customer}))
    };
    let alice = customer_token("alice", Duration::hours(1), JWT_SECRET);

    let refused = [
        ("no token", grab("alice")),
        (
            "forged",
            grab("alice").bearer_auth(customer_token(
                "alice",
                Duration::hours(1),
                "another-secret-that-is-also-32-bytes",
            )),
        ),
        (
            "expired",
            grab("alice").bearer_auth(customer_token("alice", -Duration::hours(1), JWT_SECRET)),
        ),
        ("not a JWT", grab("alice").bearer_auth("alice")),
        ("the admin token", grab("alice").bearer_auth(ADMIN_TOKEN)),
    ];
    for (name, request) in refused {
        let answer = request.send().await.unwrap();
        assert!(answer.headers().contains_key(WWW_AUTHENTICATE), "{name}");
        assert_problem(answer, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let for_bob = grab("bob").bearer_auth(&alice).send().await.unwrap();
    let body = assert_problem(for_bob, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(body["detail"].as_str().unwrap().contains("alice"), "{body}");

    let won = grab("alice").bearer_auth(&alice).send().await.unwrap();
    assert_eq!(won.status(), StatusCode::CREATED);
    let bob = customer_token("bob", Duration::hours(1), JWT_SECRET);
    let won = grab("bob").bearer_auth(&bob).send().await.unwrap();
    assert_eq!(won.status(), StatusCode::CREATED);
    let after = server
        .client
        .promotion(promotion.promotion_id)
        .await
        .unwrap();
    assert_eq!(after.granted, 2, "only the two genuine grabs were recorded");

    let coupons = |customer: &str| http.get(server.url(&format!("/query/coupons/{customer}")));
    let own = coupons("alice").bearer_auth(&alice).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let own: Value = own.json().await.unwrap();
    assert_eq!(own.as_array().map(Vec::len), Some(1), "{own}");
    assert_eq!(own[0]["customerId"], "alice");
    let others = coupons("bob").bearer_auth(&alice).send().await.unwrap();
    assert_problem(others, StatusCode::FORBIDDEN, "forbidden").await;
    let anonymous = coupons("bob").send().await.unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Entries into a draw take the same tokens.
    let now = Utc::now();
    let mut request = promotion_request(
        10,
        now - Duration::minutes(1),
        Some(now + Duration::hours(1)),
    );
    request.draw_closes_at = Some(now + Duration::minutes(30));
    let draw = server.create(&request).await;
    let enter = |customer: &str| {
        http.post(server.url("/command/entries/"))
            .json(&json!({"promotionId": draw.promotion_id, "customerId": customer}))
    };
    let anonymous = enter("alice").send().await.unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let for_bob = enter("bob").bearer_auth(&alice).send().await.unwrap();
    assert_problem(for_bob, StatusCode::FORBIDDEN, "forbidden").await;
    let entered = enter("alice").bearer_auth(&alice).send().await.unwrap();
    assert_eq!(entered.status(), StatusCode::CREATED);
    let after = server.client.promotion(draw.promotion_id).await.unwrap();
    assert_eq!(
        after.draw.map(|d| d.entries),
        Some(1),
        "only the genuine entry"
    );
}

/// Over a limit the answer is 429 with `Retry-After`, nothing is done, and
/// `/metrics` counts it by scope; one client's limit holds no other back.
/// The limits refill once a minute, so the test does not depend on timing.
pub(crate) async fn requests_over_a_rate_limit_are_429_with_retry_after(fixture: impl Fixture) {
    let limits = RateLimits {
        grab_per_address: "1/min burst 2".parse().unwrap(),
        grab_per_customer: "1/min burst 3".parse().unwrap(),
        api_per_address: "1/min burst 3".parse().unwrap(),
    };
    let server = start(&fixture, test_security().rate_limits(limits)).await;
    // Created from 127.0.0.1, which spends one request of its API limit.
    let promotion = server.create_open(10).await;
    let grab = |http: &Http, customer: &str| {
        http.post(server.url("/command/coupons/"))
            .json(&json!({"promotionId": promotion.promotion_id, "customerId": customer}))
            .send()
    };

    // Per address: a bot at 127.0.0.2 with fresh customers gets its burst.
    let bot = client_from("127.0.0.2");
    for customer in ["bot-1", "bot-2"] {
        assert_eq!(
            grab(&bot, customer).await.unwrap().status(),
            StatusCode::CREATED
        );
    }
    let limited = grab(&bot, "bot-3").await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    // A person at another address is not held back by the bot.
    let person = client_from("127.0.1.1");
    assert_eq!(
        grab(&person, "person-1").await.unwrap().status(),
        StatusCode::CREATED
    );

    // Per customer, across addresses: "carol" from three addresses.
    for (from, status) in [
        ("127.0.2.1", StatusCode::CREATED),
        ("127.0.2.2", StatusCode::CONFLICT),
        ("127.0.2.3", StatusCode::CONFLICT),
    ] {
        assert_eq!(
            grab(&client_from(from), "carol").await.unwrap().status(),
            status
        );
    }
    let limited = grab(&client_from("127.0.2.4"), "carol").await.unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;

    // The rest of the API, per address: the looser limit, apart from grabs.
    let reader = client_from("127.0.3.1");
    let read = || reader.get(server.url("/query/promotions")).send();
    for _ in 0..3 {
        assert_eq!(read().await.unwrap().status(), StatusCode::OK);
    }
    assert_problem(
        read().await.unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
    )
    .await;
    // Probes and metrics are never limited.
    for _ in 0..5 {
        let probe = reader.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(probe.status(), StatusCode::OK);
    }

    let after = server
        .client
        .promotion(promotion.promotion_id)
        .await
        .unwrap();
    assert_eq!(
        after.granted, 4,
        "bot-1, bot-2, person-1, carol; no refused grab counted"
    );
    let metrics = server.client.metrics().await.unwrap();
    for (scope, count) in [
        ("grab_address", 1),
        ("grab_customer", 1),
        ("api_address", 1),
    ] {
        let series = format!("seckill_rate_limited_total{{scope=\"{scope}\"}} {count}\n");
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    assert!(metrics.contains("seckill_grabs_total{outcome=\"rate_limited\"} 1\n"));
}

/// `X-Forwarded-For` and `Forwarded` name the client only when the peer is
/// a trusted proxy; from anyone else they are ignored.
pub(crate) async fn forwarded_client_addresses_count_only_from_trusted_proxies(
    fixture: impl Fixture,
) {
    let limits = RateLimits {
        grab_per_address: "1/min burst 1".parse().unwrap(),
        ..RateLimits::default()
    };
    // The proxy is 127.0.0.9; 127.0.0.1 (the test's own client) is not one.
    let proxies = TrustedProxies::new(vec!["127.0.0.9/32".parse().unwrap()]);
    let security = test_security().rate_limits(limits).trusted_proxies(proxies);
    let server = start(&fixture, security).await;
    let promotion = server.create_open(100).await;
    let grab = |http: &Http, customer: &str, forwarded: Option<(&str, &str)>| {
        let request = http
            .post(server.url("/command/coupons/"))
            .json(&json!({"promotionId": promotion.promotion_id, "customerId": customer}));
        match forwarded {
            Some((name, value)) => request.header(name, value),
            None => request,
        }
        .send()
    };
    let proxy = client_from("127.0.0.9");
    let xff = |address| Some(("x-forwarded-for", address));
    // Through the proxy: each forwarded client has its own limit...
    let answer = grab(&proxy, "c1", xff("198.51.100.1")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let answer = grab(&proxy, "c2", Some(("forwarded", "for=198.51.100.2")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    // ...and a client cannot escape its own by prepending addresses.
    let answer = grab(&proxy, "c3", xff("203.0.113.7, 198.51.100.1"))
        .await
        .unwrap();
    assert_problem(answer, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;

    // Not through the proxy: the headers are not believed.
    let direct = client_from("127.0.0.1");
    let answer = grab(&direct, "d1", xff("198.51.100.3")).await.unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let answer = grab(&direct, "d2", xff("198.51.100.4")).await.unwrap();
    assert_problem(answer, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
}

/// The live page and its files carry a Content-Security-Policy that allows
/// its own origin only; every answer carries `nosniff` and a referrer policy.
pub(crate) async fn the_live_page_is_served_with_security_headers(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/live.js", "text/javascript"),
        ("/live.css", "text/css"),
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(
            !policy.contains("unsafe-inline") && !policy.contains("http"),
            "{policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    // The page has no inline script or style for the policy to block.
    let page = server.get("/").await.text().await.unwrap();
    assert!(page.contains("<script src=\"/live.js\"></script>"));
    assert!(!page.contains("<style") && !page.contains(" style=") && !page.contains("<script>"));
    let api = server.get("/query/promotions").await;
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    assert_eq!(api.headers()["referrer-policy"], "no-referrer");
}

/// Admin routes answer the admin token only: `AdminAccess::Open` admits
/// everyone (the `--admin-open` mode), for completeness of the three modes.
pub(crate) async fn open_admin_routes_take_requests_without_a_token(fixture: impl Fixture) {
    let server = start(&fixture, Security::new(AdminAccess::Open)).await;
    let answer = Http::new()
        .post(server.url("/admin/promotions/"))
        .json(&promotion_request(5, Utc::now(), None))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
}
