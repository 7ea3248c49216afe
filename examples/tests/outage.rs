//! Database outage: PostgreSQL stops in the middle of a sale. Grabs fail fast
//! with 503 and `/readyz` says not ready; when PostgreSQL is back the same
//! server process sells again, and no acknowledged grab is lost.
//!
//! The test starts its own throwaway cluster (`initdb` into a temporary
//! directory, `pg_ctl` on a free port), never the shared one. As root it runs
//! them as the `postgres` OS user, because `initdb` refuses root.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{create_open, free_port, violations, ServerProcess};
use reqwest::StatusCode;
use seckill_examples::client::{ClientError, Grab};
use uuid::Uuid;

/// The longest a grab or probe may take while the database is down: the
/// server's `--db-timeout` (2 s) for the append and again for the reload, plus slack.
const FAIL_FAST: Duration = Duration::from_secs(6);

/// A PostgreSQL cluster of our own in a temporary directory.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    fn init() -> Self {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(format!("seckill-outage-{}", Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("creating the cluster directory");
        let cluster = Self {
            dir,
            bin,
            port: free_port(),
        };
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(&cluster.dir));
        }
        run(cluster.command("initdb").arg("-D").arg(&cluster.dir).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        cluster
    }

    /// `bin/name`, as the `postgres` user when we are root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"]));
    }

    /// Stops at once, as a crash would: no checkpoint, clients cut off.
    fn stop(&self) {
        run(self.command("pg_ctl").arg("-D").arg(&self.dir).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb`, or `$PG_BIN`.
fn postgres_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "\n\nThe outage test starts a throwaway PostgreSQL cluster and needs `initdb` and \
             `pg_ctl`, found in neither /usr/lib/postgresql/*/bin nor $PG_BIN.\n\
             Install them with\n    apt-get install postgresql\n\
             or set PG_BIN to the directory that holds them.\n"
        )
    })
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grabs_fail_fast_while_postgres_is_down_and_recover_without_a_restart() {
    let started = Instant::now();
    let cluster = Cluster::init();
    cluster.start();
    let mut server =
        ServerProcess::start(&cluster.url(), &["--db-timeout", "2s", "--pool-size", "4"]).await;
    let client = server.client.clone();
    let promotion = create_open(&client, 1_000).await;
    let id = promotion.promotion_id;
    let mut acknowledged = HashMap::new();
    for i in 0..50 {
        let customer = format!("before-{i}");
        match client.grab(id, &customer).await {
            Ok(Grab::Won(coupon)) => {
                acknowledged.insert(customer, coupon);
            }
            other => panic!("{customer} before the outage: {other:?}"),
        }
    }

    cluster.stop();
    let mut slowest = Duration::ZERO;
    let grabs = (0..20).map(|i| {
        let client = &client;
        async move {
            let at = Instant::now();
            let outcome = client.grab(id, &format!("during-{i}")).await;
            (outcome, at.elapsed())
        }
    });
    for (outcome, took) in futures::future::join_all(grabs).await {
        slowest = slowest.max(took);
        assert!(
            matches!(&outcome, Ok(grab) if grab.is_unavailable()),
            "a grab while PostgreSQL is down: {outcome:?}"
        );
        assert!(took < FAIL_FAST, "a grab took {took:?} to fail");
    }
    let at = Instant::now();
    let not_ready = client
        .ready()
        .await
        .expect_err("readyz while PostgreSQL is down");
    assert_eq!(not_ready.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(not_ready.retry_after().is_some(), "{not_ready}");
    assert!(at.elapsed() < FAIL_FAST, "readyz took {:?}", at.elapsed());
    client.health().await.expect("the process itself is fine");

    cluster.start();
    let back = Instant::now();
    let first = loop {
        match client.grab(id, "after-0").await {
            Ok(Grab::Won(coupon)) => break coupon,
            Ok(grab) if grab.is_unavailable() => {}
            Err(ClientError::Transport { .. }) => {}
            other => panic!("the first grab after the outage: {other:?}"),
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no recovery in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let recovery = back.elapsed();
    assert!(server.is_running(), "recovered without a restart");
    acknowledged.insert("after-0".to_owned(), first);
    for i in 0..20 {
        let customer = format!("during-{i}");
        match client.grab(id, &customer).await {
            Ok(Grab::Won(coupon)) => {
                acknowledged.insert(customer, coupon);
            }
            // The append may have committed just as the database went away.
            Ok(Grab::AlreadyGrabbed(_)) => {}
            other => panic!("{customer} after the outage: {other:?}"),
        }
    }
    client.ready().await.expect("ready again");

    let pool = sqlx::PgPool::connect(&cluster.url()).await.expect("pool");
    let found = violations(&client, &pool, &promotion, &acknowledged).await;
    assert!(found.is_empty(), "{found:#?}");
    eprintln!(
        "outage: slowest 503 {:.2} s, recovered {:.2} s after PostgreSQL came back, \
         {} coupons checked, 0 violations, {:.1} s",
        slowest.as_secs_f64(),
        recovery.as_secs_f64(),
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    pool.close().await;
    server.kill().await;
}
