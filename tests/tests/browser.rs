//! The live page in a real browser: headless Chromium, driven through
//! chromedriver with fantoccini, creates a promotion through the page's form,
//! grabs through the page, and watches the counter drop as the Server-Sent
//! Events arrive (also for a grab made elsewhere, over plain HTTP).
//!
//! Needs Debian's `chromium` and `chromium-driver`. When they are missing the
//! test installs them with apt-get (these machines run tests as root), so
//! `cargo test --workspace` stays the only set-up; if that fails too, the test
//! fails and says what to run (it never skips silently). Set `SECKILL_SCREENSHOT=path.png` to save
//! a screenshot of the page at the end (that is how `docs/live-page.png` is made).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use seckill_tests::http::TestServer;
use seckill_tests::MemoryFixture;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// Installs Debian's Chromium and its driver; panics with the command to run
/// by hand if apt-get cannot (not root, no network).
fn install_chromium() {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let installed =
        apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]);
    assert!(
        installed,
        "Chromium is missing and apt-get could not install it; run `{INSTALL}` as root"
    );
}

/// chromedriver, stopped when the test ends however it ends.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        if ![CHROMIUM, CHROMEDRIVER]
            .iter()
            .all(|b| Path::new(b).exists())
        {
            install_chromium();
        }
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
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver starts a headless Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The text of the first element matching `css`, once `done` holds for it.
async fn wait_for_text(browser: &Client, css: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
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
    let driver = Driver::start();
    let server = TestServer::start(&MemoryFixture::new()).await;
    let browser = driver.browser().await;
    browser
        .goto(&server.url("/"))
        .await
        .expect("open the live page");

    // Create a promotion of 5 coupons through the form.
    fill(&browser, "#create-name", "Browser sale").await;
    fill(&browser, "#create-coupons", "5").await;
    click(&browser, "#create-submit").await;
    let created = wait_for_text(&browser, "#create-result", |t| t.starts_with("Created")).await;
    let promotion_id = created.trim_start_matches("Created ").to_owned();
    let card = format!("article.promotion[data-id='{promotion_id}']");
    wait_for_text(&browser, &format!("{card} .remaining"), |t| t == "5").await;
    wait_for_text(&browser, &format!("{card} .badge"), |t| t == "active").await;

    // Grab through the page: the outcome shows, and the counter drops.
    fill(&browser, "#grab-customer", "browser-alice").await;
    click(&browser, "#grab-submit").await;
    wait_for_text(&browser, "#grab-result", |t| t.contains("Won coupon #1")).await;
    wait_for_text(&browser, &format!("{card} .remaining"), |t| t == "4").await;

    // A second grab by the same customer shows the problem, not a coupon.
    click(&browser, "#grab-submit").await;
    wait_for_text(&browser, "#grab-result", |t| t.starts_with("409")).await;

    // Grabs from elsewhere reach the page through its event feed.
    let promotion: seckill_examples::server::PromotionDto = server
        .get(&format!("/query/promotions/{promotion_id}"))
        .await
        .json()
        .await
        .unwrap();
    for customer in ["http-bob", "http-carol"] {
        server.won(&promotion, customer).await;
    }
    wait_for_text(&browser, &format!("{card} .remaining"), |t| t == "2").await;

    if let Ok(path) = std::env::var("SECKILL_SCREENSHOT") {
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("write screenshot");
    }
    browser.close().await.expect("close the browser");
}
