//! The live page in a real browser: headless Chromium, driven through
//! chromedriver with fantoccini. It creates a promotion through the page's
//! form (which asks for the admin token), grabs through the page, and watches the counter drop as the
//! Server-Sent Events arrive (also for grabs made elsewhere, over plain
//! HTTP); it looks up a customer's coupons, watches the grabs/s chart fill,
//! and sees sold-out, cancelled and expired promotions leave the active list.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). When they are missing the test fails with the command that
//! installs them; it never skips silently, and never installs anything. Set
//! `SECKILL_SCREENSHOT=path.png` to save a screenshot of the first test's page
//! at its end. (`docs/live-page.png` is taken against a running server after
//! a minute of grabs instead: the chart needs that much history.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Duration as TimeDelta, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use seckill_client::api::PromotionDto;
mod common;

use common::server::{promotion_request, TestServer, ADMIN_TOKEN};
use seckill_memory::MemoryStore;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "apt-get install --yes chromium chromium-driver";

/// chromedriver, stopped when the test ends however it ends.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the browser test needs Debian's Chromium; run `{INSTALL}`"
            );
        }
        // A free port: bind, read it, release it for chromedriver.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}); run `{INSTALL}`"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile =
            std::env::temp_dir().join(format!("seckill-chromium-{}-{port}", std::process::id()));
        Self {
            child,
            port,
            profile,
        }
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,860",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            }),
        );
        // A chromedriver that listens may still reset the first session
        // request while it finishes starting (seen under load in CI): a
        // transport failure is tried again, a refusal is not.
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let session =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await;
            match session {
                Ok(client) => return client,
                Err(fantoccini::error::NewSessionError::FailedC(error)) if attempt < 5 => {
                    eprintln!("chromedriver session, attempt {attempt}: {error}; trying again");
                    tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
                }
                Err(error) => panic!("chromedriver starts a headless Chromium session: {error:?}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A fresh in-memory server and a headless Chromium to look at it with.
struct LivePage {
    browser: Client,
    server: TestServer,
    // Last, so chromedriver outlives the session the other fields use.
    _driver: Driver,
}

impl LivePage {
    async fn start() -> Self {
        let driver = Driver::start();
        let server = TestServer::builder()
            .store(std::sync::Arc::new(MemoryStore::new()))
            .start()
            .await;
        let browser = driver.browser().await;
        Self {
            browser,
            server,
            _driver: driver,
        }
    }

    /// Opens the live page; it lists the promotions that are active now.
    async fn open(&self) {
        self.browser
            .goto(&self.server.url("/"))
            .await
            .expect("open the live page");
    }

    /// An open promotion named `name`, created over HTTP.
    async fn promotion(&self, name: &str, coupons: u64) -> PromotionDto {
        self.promotion_closing(name, coupons, TimeDelta::hours(1))
            .await
    }

    /// An open promotion that closes `after` from now.
    async fn promotion_closing(&self, name: &str, coupons: u64, after: TimeDelta) -> PromotionDto {
        let mut request = promotion_request(
            coupons,
            Utc::now() - TimeDelta::minutes(1),
            Some(Utc::now() + after),
        );
        request.name = Some(name.into());
        self.server.create(&request).await
    }

    async fn cancel(&self, promotion: &PromotionDto) {
        self.server
            .client
            .cancel_promotion(promotion.promotion_id)
            .await
            .expect("cancel the promotion");
    }

    async fn close(self) {
        self.browser.close().await.expect("close the browser");
    }
}

/// The CSS selector of a promotion's card in the active list.
fn card(promotion: &PromotionDto) -> String {
    format!(
        "#promotions article.promotion[data-id='{}']",
        promotion.promotion_id
    )
}

/// The text of the first element matching `css`, once `done` holds for it.
async fn wait_for_text(browser: &Client, css: &str, done: impl Fn(&str) -> bool) -> String {
    wait_for_text_within(browser, css, done, Duration::from_secs(10)).await
}

/// [`wait_for_text`], giving up after `limit`.
async fn wait_for_text_within(
    browser: &Client,
    css: &str,
    done: impl Fn(&str) -> bool,
    limit: Duration,
) -> String {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if done(&text) {
                    return text;
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{css}` never matched; last text: {last:?}");
}

/// The texts of every element matching `css`, in document order.
async fn texts(browser: &Client, css: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for element in browser.find_all(Locator::Css(css)).await.expect(css) {
        texts.push(element.text().await.expect("element text"));
    }
    texts
}

/// The attribute `name` of the first element matching `css`.
async fn attribute(browser: &Client, css: &str, name: &str) -> String {
    let element = browser.find(Locator::Css(css)).await.expect(css);
    let value = element.attr(name).await.expect("read attribute");
    value.unwrap_or_else(|| panic!("`{css}` has no `{name}`"))
}

async fn is_shown(browser: &Client, css: &str) -> bool {
    !browser
        .find_all(Locator::Css(css))
        .await
        .expect(css)
        .is_empty()
}

async fn click(browser: &Client, css: &str) {
    let button = browser.find(Locator::Css(css)).await.expect(css);
    button.click().await.expect("click");
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let input = browser.find(Locator::Css(css)).await.expect(css);
    input.clear().await.expect("clear input");
    input.send_keys(value).await.expect("type into input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_creates_grabs_and_counts_down() {
    let page = LivePage::start().await;
    let (browser, server) = (&page.browser, &page.server);
    page.open().await;

    // Create a promotion of 5 coupons through the form: refused with a
    // wrong admin token, created with the server's.
    fill(browser, "#create-name", "Browser sale").await;
    fill(browser, "#create-coupons", "5").await;
    fill(browser, "#create-token", "not-the-admin-token").await;
    click(browser, "#create-submit").await;
    wait_for_text(browser, "#create-result", |t| t.starts_with("Unauthorized")).await;
    fill(browser, "#create-token", ADMIN_TOKEN).await;
    click(browser, "#create-submit").await;
    let created = wait_for_text(browser, "#create-result", |t| t.starts_with("Created")).await;
    let promotion_id = created.trim_start_matches("Created ").to_owned();
    let card = format!("article.promotion[data-id='{promotion_id}']");
    wait_for_text(browser, &format!("{card} .remaining"), |t| t == "5").await;
    wait_for_text(browser, &format!("{card} .badge"), |t| t == "active").await;

    // Grab through the page: the outcome shows, and the counter drops.
    fill(browser, "#grab-customer", "browser-alice").await;
    click(browser, "#grab-submit").await;
    wait_for_text(browser, "#grab-result", |t| t.contains("Won coupon #1")).await;
    wait_for_text(browser, &format!("{card} .remaining"), |t| t == "4").await;

    // A second grab by the same customer shows the problem, not a coupon.
    click(browser, "#grab-submit").await;
    wait_for_text(browser, "#grab-result", |t| t.starts_with("409")).await;

    // Grabs from elsewhere reach the page through its event feed.
    let promotion: PromotionDto = server
        .get(&format!("/query/promotions/{promotion_id}"))
        .await
        .json()
        .await
        .unwrap();
    for customer in ["http-bob", "http-carol"] {
        server.won(&promotion, customer).await;
    }
    wait_for_text(browser, &format!("{card} .remaining"), |t| t == "2").await;

    if let Ok(path) = std::env::var("SECKILL_SCREENSHOT") {
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
    }
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_enters_a_draw_counts_down_and_shows_the_result() {
    let page = LivePage::start().await;
    let (browser, server) = (&page.browser, &page.server);
    page.open().await;

    // A draw of 5 coupons, created through the form, closing in 6 s.
    fill(browser, "#create-name", "Browser draw").await;
    fill(browser, "#create-coupons", "5").await;
    fill(browser, "#create-draw", "6").await;
    fill(browser, "#create-token", ADMIN_TOKEN).await;
    click(browser, "#create-submit").await;
    let created = wait_for_text(browser, "#create-result", |t| t.starts_with("Created")).await;
    let promotion_id = created.trim_start_matches("Created ").to_owned();
    let card = format!("article.promotion[data-id='{promotion_id}']");
    wait_for_text(browser, &format!("{card} .draw"), |t| {
        t.starts_with("draw in 0:0")
    })
    .await;
    wait_for_text(browser, "#grab-submit", |t| t == "Enter the draw").await;

    // Entering through the page; the entry count follows, live, with an
    // entry from elsewhere too.
    fill(browser, "#grab-customer", "browser-erin").await;
    click(browser, "#grab-submit").await;
    wait_for_text(browser, "#grab-result", |t| t.starts_with("Entered as #1")).await;
    wait_for_text(browser, &format!("{card} .remaining"), |t| t == "1").await;
    let id: uuid::Uuid = promotion_id.parse().unwrap();
    server
        .client
        .enter(id, "http-finn")
        .await
        .expect("an entry");
    wait_for_text(browser, &format!("{card} .remaining"), |t| t == "2").await;

    // Drawn at the close: it moves to "Finished", and both entrants hold a
    // coupon in "My coupons".
    let finished = format!("#finished .finished-item[data-id='{promotion_id}']");
    let item = wait_for_text_within(
        browser,
        &finished,
        |t| t.contains("drawn"),
        Duration::from_secs(40),
    )
    .await;
    assert!(item.contains("2 of 5 granted"), "{item:?}");
    fill(browser, "#coupons-customer", "browser-erin").await;
    click(browser, "#coupons-submit").await;
    wait_for_text(browser, "#coupons-result", |t| {
        t == "browser-erin holds 1 coupon:"
    })
    .await;
    let coupons = texts(browser, "#coupons-list .coupon").await;
    assert!(coupons[0].contains("Browser draw"), "{coupons:?}");
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_lists_the_coupons_a_customer_holds() {
    let page = LivePage::start().await;
    let browser = &page.browser;
    let open = page.promotion("Coupon sale", 3).await;
    let closed = page.promotion("Closed sale", 3).await;
    page.server.won(&open, "browser-dana").await;
    page.server.won(&closed, "browser-dana").await;
    // Not on the page's active list: the lookup still names it.
    page.cancel(&closed).await;
    page.open().await;

    fill(browser, "#coupons-customer", "browser-dana").await;
    click(browser, "#coupons-submit").await;
    wait_for_text(browser, "#coupons-result", |t| {
        t == "browser-dana holds 2 coupons:"
    })
    .await;
    let coupons = texts(browser, "#coupons-list .coupon").await;
    assert_eq!(coupons.len(), 2, "{coupons:?}");
    for (coupon, name) in coupons.iter().zip(["Coupon sale", "Closed sale"]) {
        for part in ["#1", name, "pay 80 %", "grabbed "] {
            assert!(coupon.contains(part), "{coupon:?} lacks {part:?}");
        }
    }

    // A customer without coupons, and an id the server refuses.
    fill(browser, "#coupons-customer", "browser-nobody").await;
    click(browser, "#coupons-submit").await;
    wait_for_text(browser, "#coupons-result", |t| {
        t == "browser-nobody holds no coupon yet."
    })
    .await;
    assert!(texts(browser, "#coupons-list .coupon").await.is_empty());
    fill(browser, "#coupons-customer", "dana ").await;
    click(browser, "#coupons-submit").await;
    let refused = wait_for_text(browser, "#coupons-result", |t| t.starts_with("422 · ")).await;
    assert!(refused.contains("Invalid value: "), "{refused:?}");
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_charts_grabs_per_second() {
    let page = LivePage::start().await;
    let browser = &page.browser;
    let promotion = page.promotion("Chart sale", 10).await;
    page.open().await;
    let caption = format!("{} .chart-caption", card(&promotion));
    wait_for_text(browser, &caption, |t| t == "no grabs in the last minute").await;

    for customer in ["chart-a", "chart-b", "chart-c", "chart-d"] {
        page.server.won(&promotion, customer).await;
    }
    wait_for_text(browser, &caption, |t| {
        t.starts_with("4 grabs in the last minute · peak ")
    })
    .await;
    let chart = format!("{} figure.chart svg", card(&promotion));
    assert_eq!(attribute(browser, &chart, "data-grabs").await, "4");
    // The line rises off its baseline (y = 62 of 64) where the grabs were.
    let points = attribute(browser, &format!("{chart} .line"), "points").await;
    let heights: Vec<f64> = points
        .split_whitespace()
        .map(|point| point.split_once(',').expect("x,y").1.parse().expect("y"))
        .collect();
    assert_eq!(heights.len(), 60, "one point per second: {points}");
    assert!(heights.iter().any(|&y| y < 62.0), "a flat line: {points}");
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_cancelled_and_expired_promotions_leave_the_active_list() {
    let page = LivePage::start().await;
    let browser = &page.browser;
    let selling = page.promotion("Selling sale", 2).await;
    let cancelled = page.promotion("Cancelled sale", 5).await;
    // Closing by the clock commits nothing: the page sees it by itself.
    let expiring = page
        .promotion_closing("Expiring sale", 5, TimeDelta::seconds(10))
        .await;
    page.open().await;
    // The page lists only promotions still open when it loads, so the sale
    // must outlive a slow start of the browser (10 s); then it leaves by
    // the clock, within a second and the 1.5 s fade.
    let expiring_badge = format!("{} .badge", card(&expiring));
    wait_for_text(browser, &expiring_badge, |t| t == "active").await;
    let finished = format!("#finished li[data-id='{}']", expiring.promotion_id);
    wait_for_text_within(
        browser,
        &format!("{finished} .reason"),
        |t| t == "expired",
        Duration::from_secs(20),
    )
    .await;
    assert!(!is_shown(browser, &card(&expiring)).await, "still active");
    wait_for_text(browser, &format!("{} .badge", card(&selling)), |t| {
        t == "active"
    })
    .await;
    wait_for_text(browser, &format!("{} .badge", card(&cancelled)), |t| {
        t == "active"
    })
    .await;

    for customer in ["sold-a", "sold-b"] {
        page.server.won(&selling, customer).await;
    }
    // It says so where it stands first, then moves.
    wait_for_text(browser, &format!("{} .badge", card(&selling)), |t| {
        t == "sold out"
    })
    .await;
    let finished = format!("#finished li[data-id='{}']", selling.promotion_id);
    wait_for_text(browser, &format!("{finished} .reason"), |t| t == "sold out").await;
    let final_count = wait_for_text(browser, &format!("{finished} .final"), |_| true).await;
    assert_eq!(final_count, "2 of 2 granted");
    assert!(!is_shown(browser, &card(&selling)).await, "still active");
    let option = format!("#grab-promotion option[value='{}']", selling.promotion_id);
    assert!(!is_shown(browser, &option).await, "still offered to grab");
    assert!(
        is_shown(browser, &card(&cancelled)).await,
        "the other left too"
    );

    page.cancel(&cancelled).await;
    let finished = format!("#finished li[data-id='{}']", cancelled.promotion_id);
    wait_for_text(browser, &format!("{finished} .reason"), |t| {
        t == "cancelled"
    })
    .await;
    assert!(!is_shown(browser, &card(&cancelled)).await, "still active");
    wait_for_text(browser, "#promotions .empty", |t| {
        t == "No active promotion: create one."
    })
    .await;
    // Newest first.
    let names = texts(browser, "#finished .finished-item .name").await;
    assert_eq!(names, ["Cancelled sale", "Selling sale", "Expiring sale"]);
    page.close().await;
}
