//! [`Cluster`]: a PostgreSQL cluster of the tests' own, run from the
//! installed binaries (`initdb`, `pg_ctl`) in a directory of its own.
//!
//! The one implementation behind both the outage test (a private cluster it
//! stops and starts) and the shared cluster the PostgreSQL fixture falls back
//! on when no server answers at `DATABASE_URL` (see `fallback`). As root it
//! runs the binaries as the `postgres` OS user, because `initdb` refuses root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use uuid::Uuid;

/// The command that installs the binaries on Debian and Ubuntu.
pub const INSTALL: &str = "apt-get install --yes postgresql";

/// A PostgreSQL cluster in a directory, on a loopback port.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// A throwaway cluster is stopped and removed when dropped; the shared
    /// one outlives the process that started it.
    throwaway: bool,
}

impl Cluster {
    /// A new cluster in a fresh temporary directory, on a free port, not
    /// started yet. Dropping it stops it and removes the directory.
    ///
    /// # Panics
    /// If the PostgreSQL binaries are missing (the message says how to
    /// install them), or `initdb` fails.
    pub fn throwaway() -> Self {
        let dir = std::env::temp_dir().join(format!("seckill-pg-{}", Uuid::new_v4().simple()));
        let mut cluster = Self::init(dir, free_port());
        cluster.throwaway = true;
        cluster
    }

    /// A streaming standby of this cluster (`pg_basebackup -R`), in a fresh
    /// temporary directory, on a free port, not started yet. This cluster
    /// must be running. Dropping it stops it and removes the directory.
    ///
    /// # Panics
    /// If `pg_basebackup` fails; the message holds its output.
    pub fn standby(&self) -> Self {
        let dir = std::env::temp_dir().join(format!("seckill-pg-{}", Uuid::new_v4().simple()));
        let mut standby = Self::existing(dir, free_port());
        standby.throwaway = true;
        run(standby
            .command("pg_basebackup")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&standby.dir)
            .args(["-R", "-X", "stream", "--no-sync"]));
        standby
    }

    /// Runs `initdb` into `dir`, which must not exist yet.
    pub(crate) fn init(dir: PathBuf, port: u16) -> Self {
        let cluster = Self::existing(dir, port);
        std::fs::create_dir(&cluster.dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", cluster.dir.display()));
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

    /// The cluster `initdb` made in `dir` earlier, to be served on `port`.
    pub(crate) fn existing(dir: PathBuf, port: u16) -> Self {
        Self {
            dir,
            bin: postgres_bin(),
            port,
            throwaway: false,
        }
    }

    /// Starts the server and waits until it accepts connections.
    ///
    /// # Panics
    /// If it does not start; the message holds `pg_ctl`'s output.
    pub fn start(&self) {
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
            .args(["-w", "-t", "60", "start"]));
    }

    /// Stops at once, as a crash would: no checkpoint, clients cut off.
    pub fn stop(&self) {
        run(&mut self.stop_command());
    }

    /// Whether a server runs on this cluster's directory.
    pub(crate) fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .arg("status")
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// The command that stops the server at once and waits until it is gone.
    pub(crate) fn stop_command(&self) -> Command {
        let mut command = self.command("pg_ctl");
        command
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "-w", "-t", "60", "stop"]);
        command
    }

    /// Turns every session of the running cluster read-only
    /// (`default_transaction_read_only`, reloaded), or back, and waits until
    /// a new session sees it; existing sessions take it at their next
    /// command. What a failover does to the connections a load balancer
    /// leaves on an old primary that came back as a standby.
    ///
    /// # Panics
    /// If the cluster does not answer, or the reload has not taken effect
    /// within 60 s (a stalled disk can hold a reload for seconds).
    pub async fn set_read_only(&self, on: bool) {
        use sqlx::Connection;
        let url = self.url();
        let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
        let statement = if on {
            "ALTER SYSTEM SET default_transaction_read_only = on"
        } else {
            "ALTER SYSTEM RESET default_transaction_read_only"
        };
        for statement in [statement, "SELECT pg_reload_conf()"] {
            sqlx::query(statement)
                .execute(&mut admin)
                .await
                .expect(statement);
        }
        let expected = if on { "on" } else { "off" };
        let start = std::time::Instant::now();
        loop {
            let mut fresh = sqlx::PgConnection::connect(&url).await.expect("connect");
            let seen: String = sqlx::query_scalar("SHOW default_transaction_read_only")
                .fetch_one(&mut fresh)
                .await
                .expect("SHOW default_transaction_read_only");
            if seen == expected {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "the reload never took effect"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The URL of its `postgres` database, as the `postgres` superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The directory the cluster lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the PostgreSQL binaries it runs.
    pub fn bin(&self) -> &Path {
        &self.bin
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.throwaway {
            let _ = self.stop_command().output();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A loopback port nothing listens on right now, below the ephemeral range
/// (32768–60999): a server bound in that range can meet a port the kernel
/// hands a client's connection, and then fail to start.
pub fn free_port() -> u16 {
    loop {
        // 20,000 to 32,767, at random so concurrent tests rarely try the same.
        let port = 20_000 + (Uuid::new_v4().as_u128() % 12_768) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// This process's user id, as `id -u` prints it.
pub(crate) fn uid() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Whether this process runs as root (then the PostgreSQL tools run as the
/// `postgres` user: `initdb` refuses root).
pub fn is_root() -> bool {
    uid() == "0"
}

/// `$PG_BIN` if set, else the newest `/usr/lib/postgresql/*/bin`; either
/// must hold `initdb`.
///
/// # Panics
/// If there is none; the message says how to install them.
pub fn postgres_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = match std::env::var_os("PG_BIN") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .collect(),
    };
    found.retain(|bin| bin.join("initdb").exists());
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "\n\nThe tests start a throwaway PostgreSQL cluster and need `initdb` and \
             `pg_ctl`, found in neither /usr/lib/postgresql/*/bin nor $PG_BIN.\n\
             Install them with\n    {INSTALL}\n\
             (as root), set PG_BIN to the directory that holds them, or point \
             DATABASE_URL at a running server.\n"
        )
    })
}

/// Runs `command` to its end.
///
/// # Panics
/// If it cannot start or fails; the message holds its output.
pub(crate) fn run(command: &mut Command) {
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
