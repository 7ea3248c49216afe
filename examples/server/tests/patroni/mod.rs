//! [`Patroni`]: a PostgreSQL HA cluster of the failover test's own, from
//! Debian's packages: one etcd, three Patroni nodes on PostgreSQL in
//! synchronous mode, and HAProxy routing to the primary by Patroni's REST
//! checks, on free loopback ports under a temporary directory. It never
//! touches the PostgreSQL on 5432. Dropping it stops every process.

#![allow(dead_code)] // The failover test and the HA benchmark use different parts.

pub(crate) mod sale;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use seckill_testkit::postgres::cluster::{free_port, is_root, postgres_bin};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// What installs the processes on Debian (`.ci/run` does it).
const INSTALL: &str = "apt-get install --yes patroni etcd-server haproxy";

/// Generous: a node starting, a leader key lapsing, a disk stalling.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// One Patroni node: its PostgreSQL and REST ports and its data directory.
struct Node {
    name: String,
    pg_port: u16,
    api_port: u16,
    config: PathBuf,
    data: PathBuf,
    patroni: Option<Child>,
}

/// The cluster; see the module's documentation.
pub(crate) struct Patroni {
    dir: PathBuf,
    etcd: Child,
    haproxy: Child,
    nodes: Vec<Node>,
    primary_port: u16,
    replica_port: u16,
    http: reqwest::Client,
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("running id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .unwrap_or_else(|_| {
                panic!("no postgres user: the failover test needs Debian's PostgreSQL")
            })
    };
    (id("-u"), id("-g"))
}

fn which(program: &str) -> PathBuf {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("running sh");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{program} is missing: the failover test needs it; run `{INSTALL}`"
    );
    PathBuf::from(path)
}

/// `program`, as the postgres user when we are root (initdb refuses root),
/// writing to `log`.
fn as_postgres(program: &Path, log: &Path) -> Command {
    let mut command = Command::new(program);
    if is_root() {
        let (uid, gid) = postgres_ids();
        command.uid(uid).gid(gid);
    }
    let log = std::fs::File::create(log).expect("creating a log file");
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cloning a file handle"))
        .stderr(log)
        .kill_on_drop(true);
    command
}

impl Patroni {
    /// Starts the cluster and returns once it has a leader and a synchronous
    /// standby. With `shutdown_sessions`, HAProxy cuts the sessions to a node
    /// it marks down (`on-marked-down shutdown-sessions`).
    pub(crate) async fn start(shutdown_sessions: bool) -> Self {
        let (patroni, etcd, haproxy) = (which("patroni"), which("etcd"), which("haproxy"));
        let dir = std::env::temp_dir().join(format!("seckill-patroni-{}", Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("creating the cluster's directory");
        if is_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
        }

        let (client_port, peer_port) = (free_port(), free_port());
        let etcd = as_postgres(&etcd, &dir.join("etcd.log"))
            .args(["--name", "e1", "--data-dir"])
            .arg(dir.join("etcd"))
            .arg(format!(
                "--listen-client-urls=http://127.0.0.1:{client_port}"
            ))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{client_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!("--initial-cluster=e1=http://127.0.0.1:{peer_port}"))
            .arg("--enable-v2=true")
            .spawn()
            .expect("starting etcd");

        let bin = postgres_bin();
        let mut nodes = Vec::new();
        for i in 1..=3 {
            let name = format!("node{i}");
            let (pg_port, api_port) = (free_port(), free_port());
            let data = dir.join(&name);
            let config = dir.join(format!("{name}.yml"));
            std::fs::write(
                &config,
                node_config(&name, pg_port, api_port, client_port, &data, &bin, &dir),
            )
            .expect("writing a node's configuration");
            nodes.push(Node {
                name,
                pg_port,
                api_port,
                config,
                data,
                patroni: None,
            });
        }
        let (primary_port, replica_port) = (free_port(), free_port());
        let haproxy_config = dir.join("haproxy.cfg");
        std::fs::write(
            &haproxy_config,
            haproxy_config_text(primary_port, replica_port, &nodes, shutdown_sessions),
        )
        .expect("writing HAProxy's configuration");
        let haproxy = Command::new(haproxy)
            .arg("-f")
            .arg(&haproxy_config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting haproxy");
        let mut cluster = Self {
            dir,
            etcd,
            haproxy,
            nodes,
            primary_port,
            replica_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client"),
        };
        for i in 0..3 {
            cluster.start_node(i, &patroni);
        }
        cluster.wait_ready().await;
        cluster
    }

    fn start_node(&mut self, i: usize, patroni: &Path) {
        let node = &mut self.nodes[i];
        let child = as_postgres(patroni, &self.dir.join(format!("{}.log", node.name)))
            .arg(&node.config)
            .spawn()
            .expect("starting patroni");
        node.patroni = Some(child);
    }

    /// The URL of the primary, through HAProxy, as the postgres superuser.
    pub(crate) fn primary_url(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/postgres",
            self.primary_port
        )
    }

    /// The URL of the standbys, through HAProxy's replica port (round robin
    /// over the nodes whose `/replica` check passes).
    pub(crate) fn replica_url(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/postgres",
            self.replica_port
        )
    }

    /// Whether node `i`'s REST API answers 200 on `path`.
    async fn answers(&self, i: usize, path: &str) -> bool {
        let url = format!("http://127.0.0.1:{}{path}", self.nodes[i].api_port);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// The node that is primary now, once one is.
    pub(crate) async fn leader(&self) -> usize {
        let start = Instant::now();
        loop {
            for i in 0..self.nodes.len() {
                if self.nodes[i].patroni.is_some() && self.answers(i, "/primary").await {
                    return i;
                }
            }
            assert!(start.elapsed() < READY_WITHIN, "no leader: {}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The primary once it is another node than `old`.
    pub(crate) async fn new_leader(&self, old: usize) -> usize {
        let start = Instant::now();
        loop {
            let leader = self.leader().await;
            if leader != old {
                return leader;
            }
            assert!(
                start.elapsed() < READY_WITHIN,
                "node{} stayed the leader: {}",
                old + 1,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Until there is a leader and a synchronous standby.
    pub(crate) async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            let mut leader = false;
            let mut sync = false;
            for i in 0..self.nodes.len() {
                leader |= self.answers(i, "/primary").await;
                sync |= self.answers(i, "/sync").await;
            }
            if leader && sync {
                return;
            }
            assert!(
                start.elapsed() < READY_WITHIN,
                "the cluster never had a leader and a synchronous standby: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills node `i`'s postmaster, as a crash would; Patroni stays.
    pub(crate) fn kill_postmaster(&self, i: usize) {
        let pid = std::fs::read_to_string(self.nodes[i].data.join("postmaster.pid"))
            .expect("the postmaster's pid file");
        let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
        let status = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    /// Kills node `i` whole: its Patroni and its postmaster.
    pub(crate) async fn kill_node(&mut self, i: usize) {
        if let Some(mut patroni) = self.nodes[i].patroni.take() {
            let _ = patroni.kill().await;
        }
        self.kill_postmaster(i);
    }

    /// Starts node `i` again after `kill_node`, and waits until it serves.
    pub(crate) async fn restart_node(&mut self, i: usize) {
        let patroni = which("patroni");
        self.start_node(i, &patroni);
        let start = Instant::now();
        while !self.answers(i, "/health").await {
            assert!(
                start.elapsed() < READY_WITHIN,
                "node{} never came back: {}",
                i + 1,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A planned switchover to another node.
    pub(crate) async fn switchover(&self) {
        let config = &self.nodes[self.leader().await].config;
        let out = as_postgres(&which("patronictl"), &self.dir.join("switchover.log"))
            .arg("-c")
            .arg(config)
            .args(["switchover", "--force"])
            .status()
            .await
            .expect("running patronictl");
        assert!(
            out.success(),
            "patronictl switchover failed: {}",
            self.logs()
        );
    }

    /// The tail of every process's log, for a failure's message.
    fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["etcd", "node1", "node2", "node3", "switchover"] {
            let text =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            all.push_str(&format!("\n--- {name}.log\n"));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for Patroni {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(patroni) = node.patroni.as_mut() {
                let _ = patroni.start_kill();
            }
        }
        let _ = self.haproxy.start_kill();
        let _ = self.etcd.start_kill();
        // Patroni's PostgreSQL outlives a killed Patroni.
        for node in &self.nodes {
            if let Ok(pid) = std::fs::read_to_string(node.data.join("postmaster.pid")) {
                if let Some(pid) = pid.lines().next() {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", pid.trim()])
                        .status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node_config(
    name: &str,
    pg_port: u16,
    api_port: u16,
    etcd_port: u16,
    data: &Path,
    bin: &Path,
    dir: &Path,
) -> String {
    format!(
        r#"scope: seckill
name: {name}
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    primary_start_timeout: 0
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
  pg_hba:
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
    - local all all trust
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {dir}/pgpass-{name}
  authentication:
    replication:
      username: replicator
      password: replicator
    superuser:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: {dir}
"#,
        data = data.display(),
        bin = bin.display(),
        dir = dir.display(),
    )
}

fn haproxy_config_text(
    primary_port: u16,
    replica_port: u16,
    nodes: &[Node],
    shutdown_sessions: bool,
) -> String {
    let cut = if shutdown_sessions {
        " on-marked-down shutdown-sessions"
    } else {
        ""
    };
    let mut text = String::from(
        "global\n  maxconn 400\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30m\n  \
         timeout server 30m\n  timeout check 2s\n",
    );
    for (name, port, check, balance) in [
        ("primary", primary_port, "/primary", ""),
        (
            "replicas",
            replica_port,
            "/replica",
            "  balance roundrobin\n",
        ),
    ] {
        text.push_str(&format!(
            "listen {name}\n  bind 127.0.0.1:{port}\n{balance}  option httpchk GET {check}\n  \
             http-check expect status 200\n  default-server inter 1s fall 2 rise 1{cut}\n"
        ));
        for node in nodes {
            text.push_str(&format!(
                "  server {} 127.0.0.1:{} maxconn 100 check port {}\n",
                node.name, node.pg_port, node.api_port
            ));
        }
    }
    text
}
