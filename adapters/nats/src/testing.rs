//! NATS for the tests (feature `testing`): [`NatsFixture`] gives each test its own JetStream
//! stream name and subject prefix on the server at `NATS_URL` (default
//! `nats://127.0.0.1:4222`), and deletes the stream when the fixture goes.
//!
//! Both are unique because JetStream refuses two streams whose subjects
//! overlap. When nothing answers there and a `nats-server` binary is
//! installed, the test process starts a throwaway one of its own (JetStream
//! on, a free loopback port, a temporary store) and says so on stderr; a
//! watchdog stops it and removes its store when the process ends. Without
//! the binary, the fixture panics and says how to get one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;

use crate::{StreamSettings, Subjects};
use uuid::Uuid;

/// The server when `NATS_URL` is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Every test stream's name starts with this.
const PREFIX: &str = "SECKILL_TEST_";

/// Test streams older than this are left-overs of killed runs.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// One test's own stream name and subject prefix.
#[derive(Debug)]
pub struct NatsFixture {
    url: String,
    stream: String,
    prefix: String,
    client: async_nats::Client,
}

impl NatsFixture {
    /// A fresh stream name and subject prefix on the server at `NATS_URL`.
    /// The stream itself is created by whoever publishes first.
    ///
    /// # Panics
    /// If no NATS server with JetStream answers there.
    pub async fn new() -> Self {
        let configured = std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned());
        let url = match try_connect(&configured, Duration::from_secs(2)).await {
            Ok(_) => configured,
            Err(failure) => fallback_url(&configured, &failure),
        };
        let client = connect(&url).await;
        remove_stale_streams(&jetstream::new(client.clone())).await;
        // UUID v7: unique, and its timestamp tells the stale sweep the age.
        let id = Uuid::now_v7().simple().to_string();
        Self {
            url,
            stream: format!("{PREFIX}{id}"),
            prefix: format!("seckilltest.{id}"),
            client,
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This test's stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// This test's subject prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This test's subjects.
    pub fn subjects(&self) -> Subjects {
        Subjects::new(self.prefix.clone()).expect("the fixture's prefix is valid")
    }

    /// The default stream settings, on this test's name and prefix.
    pub fn settings(&self) -> StreamSettings {
        StreamSettings::new(self.stream.clone(), self.subjects())
    }

    /// A client connected to the server.
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// A JetStream context on that client.
    pub fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client.clone())
    }

    /// Every message of the stream, in stream order (read by sequence, so
    /// nothing is consumed).
    pub async fn messages(&self) -> Vec<jetstream::message::StreamMessage> {
        let jetstream = self.jetstream();
        let mut stream = jetstream
            .get_stream(&self.stream)
            .await
            .unwrap_or_else(|e| panic!("opening stream {}: {e}", self.stream));
        let state = stream.info().await.expect("stream info").state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            match stream.get_raw_message(sequence).await {
                Ok(message) => messages.push(message),
                // A gap: a message deleted by a limit.
                Err(error) => eprintln!("stream sequence {sequence}: {error}"),
            }
        }
        messages
    }
}

impl Drop for NatsFixture {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        let what = format!("deleting test stream {stream}");
        // As PgFixture's: done before the test process exits.
        seckill_testkit::teardown::clean_up(&what, move || async move {
            let client = async_nats::connect(&url).await.map_err(|e| e.to_string())?;
            let deleted = jetstream::new(client.clone()).delete_stream(&stream).await;
            let _ = client.flush().await;
            match deleted {
                Ok(_) => Ok(()),
                // Never created: a test that published nothing.
                Err(e) if e.to_string().contains("not found") => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        });
    }
}

async fn try_connect(url: &str, within: Duration) -> Result<async_nats::Client, String> {
    let connected = tokio::time::timeout(
        within,
        async_nats::ConnectOptions::new()
            .name("seckill-tests")
            .connect(url),
    )
    .await;
    match connected {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {within:?}")),
    }
}

/// The URL of this process's throwaway server, started on first use.
fn fallback_url(configured: &str, failure: &str) -> String {
    // OnceLock: every test of the binary shares one server; it is a process,
    // so it outlives each test's own runtime.
    static FALLBACK: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let started = FALLBACK.get_or_init(start_fallback);
    match started {
        Some(url) => {
            eprintln!("no NATS answers at {configured} ({failure}); using the throwaway nats-server at {url}");
            url.clone()
        }
        None => configured.to_owned(),
    }
}

/// Starts `nats-server -js` on a free loopback port with a temporary store,
/// under a watchdog that stops it when this process exits. `None` when no
/// binary is installed (the connect that follows then explains).
fn start_fallback() -> Option<String> {
    let binary = [
        "nats-server",
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
    ]
    .into_iter()
    .find(|candidate| {
        std::process::Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    })?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .ok()?;
    let store =
        std::env::temp_dir().join(format!("seckill-tests-nats-{}-{port}", std::process::id()));
    // The watchdog shell outlives nothing: once this process is gone it
    // stops the server and removes the store.
    let script = format!(
        "{binary} -js -a 127.0.0.1 -p {port} -sd '{store}' >/dev/null 2>&1 & server=$!; \
         while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         kill $server; wait $server; rm -rf '{store}'",
        store = store.display(),
        pid = std::process::id(),
    );
    std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(format!("nats://127.0.0.1:{port}"))
}

async fn connect(url: &str) -> async_nats::Client {
    let failure = match try_connect(url, Duration::from_secs(10)).await {
        Ok(client) => return client,
        Err(failure) => failure,
    };
    panic!(
        "\n\nThe NATS tests need a nats-server with JetStream at\n    {url}\nand it \
         failed: {failure}\n\nNo nats-server binary was found to start one here either. \
         Install it (`apt-get install --yes nats-server`), start one (`nats-server -js`, \
         as .ci/run does), or set NATS_URL.\n"
    )
}

/// Deletes test streams left by killed runs, by the age in their UUID v7.
async fn remove_stale_streams(jetstream: &jetstream::Context) {
    use futures::TryStreamExt;
    let Ok(names) = jetstream.stream_names().try_collect::<Vec<String>>().await else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    for name in names {
        let Some(id) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((seconds, _)) = Uuid::try_parse(id)
            .ok()
            .and_then(|id| id.get_timestamp())
            .map(|t| t.to_unix())
        else {
            continue;
        };
        if now.saturating_sub(Duration::from_secs(seconds)) > STALE_AFTER {
            let _ = jetstream.delete_stream(&name).await;
        }
    }
}
