//! The PostgreSQL the tests use when none answers at `DATABASE_URL`: one
//! throwaway [`Cluster`] per machine user, shared by every test and by every
//! test binary running at the same time, so `cargo test --workspace` needs no
//! set-up on a fresh machine.
//!
//! It lives in `$TMPDIR/seckill-tests-postgres-<uid>/`: `data/` (the cluster),
//! `port` (written once it serves), and two lock files.
//!
//! * `setup.lock`, held exclusively while a process checks the cluster and
//!   creates or starts it, so two binaries never both run `initdb`.
//! * `users.lock`, held shared by every process using the cluster, through a
//!   small `sh` child (the *watcher*) reading a pipe from the test process.
//!   When the test process ends, however it ends, the pipe closes; the watcher
//!   lets go, waits [`GRACE`] for the next test binary, and, if it can then
//!   take the lock exclusively (nobody uses the cluster), stops the server and
//!   removes `data/` and `port`. A process that arrives meanwhile takes its
//!   shared lock first, so it either keeps the cluster alive or waits until
//!   it is gone and makes a new one.
//!
//! The locks are `flock(1)`'s (util-linux): they are released by the kernel
//! when their holder dies, and they need no `unsafe` and no crate.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::cluster::{free_port, uid, Cluster};

/// How long the cluster outlives the last test process that used it: long
/// enough for `cargo test` to start the next test binary.
const GRACE: &str = "20";

/// Waits for the test process to end, then stops the cluster if it was the
/// last user. `$1` users.lock, `$2` data dir, `$3` port file, `$4` grace in
/// seconds, the rest the command that stops the server.
const WATCHER: &str = r#"
lock=$1 data=$2 port=$3 grace=$4
shift 4
exec 9>>"$lock" || exit 1
flock -s 9 || exit 1
echo held
cat >/dev/null
flock -u 9
sleep "$grace"
flock -xn 9 || exit 0
"$@" >/dev/null 2>&1
rm -rf "$data" "$port"
"#;

/// Holds `$1` exclusively until its standard input closes.
const EXCLUSIVE: &str = r#"
exec 9>>"$1" || exit 1
flock -x 9 || exit 1
echo held
cat >/dev/null
"#;

/// The URL of the shared throwaway cluster's `postgres` database, creating
/// or starting the cluster on the first call of this process.
///
/// Blocking (it waits for locks, `initdb` and `pg_ctl`): call it from a
/// blocking thread.
///
/// # Panics
/// If the cluster cannot be made to serve: the message says why, with the
/// `apt-get` command when the binaries are missing.
pub(crate) fn server_url(unanswered: &str) -> String {
    // std OnceLock, not tokio's: callers are blocking threads, and each one
    // that comes while the first sets up should wait for it.
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| Shared::join(unanswered)).url.clone()
}

/// This process's use of the shared cluster.
#[derive(Debug)]
struct Shared {
    url: String,
    /// Never dropped: its pipe closes when the process ends, which is the
    /// watcher's signal.
    _watcher: Child,
}

impl Shared {
    fn join(unanswered: &str) -> Self {
        let root = root();
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        // As root, the postgres user must reach data/ inside it.
        let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755));
        let data = root.join("data");
        let port_file = root.join("port");

        // A stopped cluster's stop command is as good as a started one's:
        // only the directory and binaries matter.
        let stop = Cluster::existing(data.clone(), 0).stop_command();
        let watcher = hold(
            Command::new("sh")
                .args(["-c", WATCHER, "sh"])
                .arg(root.join("users.lock"))
                .arg(&data)
                .arg(&port_file)
                .arg(GRACE)
                .arg(stop.get_program())
                .args(stop.get_args()),
        );
        let setup = hold(
            Command::new("sh")
                .args(["-c", EXCLUSIVE, "sh"])
                .arg(root.join("setup.lock")),
        );
        let (cluster, started) = serving(&data, &port_file);
        release(setup);

        let url = cluster.url();
        let how = if started {
            format!("started it from {}", cluster.bin().display())
        } else {
            "another test process started it".to_owned()
        };
        // Straight to the process's stderr, not `eprintln!`, which the test
        // harness captures and shows only for failed tests.
        let _ = writeln!(
            std::io::stderr(),
            "\nNo PostgreSQL answered at {unanswered}: the tests use a throwaway cluster \
             at {url} in {} ({how}). It stops {GRACE} s after the last test process \
             using it ends.\n",
            root.display()
        );
        Self {
            url,
            _watcher: watcher,
        }
    }
}

/// The shared cluster, serving, and whether this call started it. Runs under
/// `setup.lock`.
fn serving(data: &Path, port_file: &Path) -> (Cluster, bool) {
    // The port file is written last, so without it `data` is a left-over of
    // a run killed half-way, or absent.
    let recorded = std::fs::read_to_string(port_file)
        .ok()
        .and_then(|port| port.trim().parse::<u16>().ok());
    if let Some(port) = recorded {
        let cluster = Cluster::existing(data.to_owned(), port);
        if cluster.is_running() {
            return (cluster, false);
        }
    }
    let _ = std::fs::remove_file(port_file);
    let port = free_port();
    let cluster = if recorded.is_some() {
        // Made earlier and stopped since (a reboot, a killed watcher).
        Cluster::existing(data.to_owned(), port)
    } else {
        remove_left_over(data);
        Cluster::init(data.to_owned(), port)
    };
    cluster.start();
    std::fs::write(port_file, port.to_string())
        .unwrap_or_else(|e| panic!("writing {}: {e}", port_file.display()));
    (cluster, true)
}

fn remove_left_over(data: &Path) {
    if data.exists() {
        let stale = Cluster::existing(data.to_owned(), 0);
        let _ = stale.stop_command().output();
        std::fs::remove_dir_all(data)
            .unwrap_or_else(|e| panic!("removing the left-over {}: {e}", data.display()));
    }
}

/// Starts a lock-holding `sh` child and waits until it says it holds the lock.
fn hold(command: &mut Command) -> Child {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C to the test run does not kill
        // it before it cleans up.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?} (it needs sh and flock): {e}"));
    let mut line = String::new();
    let stdout = child.stdout.take().map(BufReader::new);
    let said = stdout.map(|mut out| out.read_line(&mut line));
    assert!(
        matches!(said, Some(Ok(_))) && line.trim() == "held",
        "{command:?} did not take its lock (it needs flock, from util-linux)"
    );
    child
}

/// Lets a [`hold`] child go, and waits until it has.
fn release(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Where the shared cluster lives for this user.
fn root() -> PathBuf {
    std::env::temp_dir().join(format!("seckill-tests-postgres-{}", uid()))
}
