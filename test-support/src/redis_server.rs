//! A real `redis-server` for tests, on a free port in a temp dir, that never outlives the test
//! process: it is spawned from one never-ending thread with `PR_SET_PDEATHSIG = SIGKILL`
//! (the signal fires when the spawning *thread* ends, hence the dedicated thread), so even a
//! test process that is killed takes its servers with it. nextest runs each test in its own
//! process, so each test gets its own server; under `cargo test` one server per binary is
//! shared and tests keep apart by key prefix.
//!
//! `TEST_REDIS_URL` replaces the shared servers with an existing Redis. Servers that a test
//! stops and restarts ([`RedisServer::start`]) are always local. Nothing here ever uses
//! 127.0.0.1:6379.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::process::{free_port, kill, spawn_from_keeper};

/// How long a server may take to answer PING after it is spawned.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// A redis-server process this test process owns.
pub struct RedisServer {
    port: u16,
    tls: Option<Tls>,
    cluster: bool,
    dir: PathBuf,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

/// The TLS side of a server started with [`RedisServer::start_tls`].
pub struct Tls {
    pub port: u16,
    /// The PEM of the private CA that signed the server certificate.
    pub ca_pem: Vec<u8>,
}

impl RedisServer {
    /// A plain standalone server.
    pub fn start() -> Self {
        Self::launch(Kind::Plain)
    }

    /// A one-node Redis Cluster that owns every slot: a script or command whose keys hash
    /// to different slots fails there with CROSSSLOT, as it would on a real cluster.
    pub fn start_cluster_node() -> Self {
        Self::launch(Kind::ClusterNode)
    }

    /// A server that also listens with TLS, with a certificate for `localhost` from a fresh
    /// private CA (made with the `openssl` command).
    pub fn start_tls() -> Self {
        Self::launch(Kind::Tls)
    }

    /// A node for a cluster of several (see [`RedisCluster`]): cluster mode, no slots yet.
    fn start_cluster_member() -> Self {
        Self::launch(Kind::ClusterMember)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `rediss://localhost:<tls port>/` for a server started with [`RedisServer::start_tls`].
    pub fn tls(&self) -> Option<(String, &Tls)> {
        self.tls
            .as_ref()
            .map(|t| (format!("rediss://localhost:{}/", t.port), t))
    }

    /// Kills the server (like a crash); it can come back with [`RedisServer::restart`].
    pub fn stop(&self) {
        kill(&self.child);
    }

    /// Starts the same server again: same port, same folder, same settings. The data is gone
    /// (nothing is persisted), which is what a Redis without persistence does after a crash.
    pub fn restart(&self) {
        self.stop();
        let child = spawn(&self.args, &self.dir).unwrap_or_else(|e| not_spawned(e));
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self.wait_ready()
            .unwrap_or_else(|e| panic!("redis-server did not come back: {e}\n{}", self.log()));
    }

    fn launch(kind: Kind) -> Self {
        let mut last_error = String::new();
        // A free port can be taken by someone else before the server binds it: try again.
        for _ in 0..5 {
            let dir = test_dir();
            let port = free_port();
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir.display().to_string(),
                "--logfile",
                "redis.log",
                "--daemonize",
                "no",
            ]
            .map(String::from)
            .to_vec();
            let tls = match kind {
                Kind::Tls => Some(make_tls(&dir, &mut args)),
                _ => None,
            };
            if let Kind::ClusterNode | Kind::ClusterMember = kind {
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ]
                    .map(String::from),
                );
            }
            if let Kind::ClusterMember = kind {
                // The bus port must be free too (port + 10000 may be taken or past 65535);
                // a short node timeout makes failovers take seconds; replicas sync at once.
                args.extend(
                    [
                        "--cluster-port",
                        &free_port().to_string(),
                        "--cluster-node-timeout",
                        "2000",
                        "--repl-diskless-sync-delay",
                        "0",
                    ]
                    .map(String::from),
                );
            }
            let child = spawn(&args, &dir).unwrap_or_else(|e| not_spawned(e));
            let server = Self {
                port,
                tls,
                cluster: matches!(kind, Kind::ClusterNode),
                dir,
                args,
                child: Mutex::new(Some(child)),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => last_error = format!("{e}\n{}", server.log()),
            }
        }
        panic!("redis-server did not start: {last_error}")
    }

    /// Waits (bounded) until the server answers PING, and for a cluster node until the
    /// cluster is up.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("redis-server exited with {status}"));
            }
            if command(self.port, &["PING"]).is_ok_and(|r| r == "PONG") && self.cluster_ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no PONG on port {} within {READY_WITHIN:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cluster_ready(&self) -> bool {
        if !self.cluster {
            return true;
        }
        let info = command(self.port, &["CLUSTER", "INFO"]).unwrap_or_default();
        if info.contains("cluster_state:ok") {
            return true;
        }
        if info.contains("cluster_slots_assigned:0") {
            // A fresh node: it takes every slot. After a restart nodes.conf remembers them.
            let _ = command(self.port, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Plain,
    ClusterNode,
    ClusterMember,
    Tls,
}

/// How long a new cluster may take to agree on its slots and sync its replicas.
const CLUSTER_READY_WITHIN: Duration = Duration::from_secs(30);

/// A real Redis Cluster of this test process: three masters and three replicas on loopback,
/// made with `redis-cli --cluster create`. It never outlives the process (each node is a
/// [`RedisServer`]).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| RedisServer::start_cluster_member())
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "redis-cli is needed to make a Redis Cluster (apt-get install redis-tools): {e}"
                )
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_healthy(CLUSTER_READY_WITHIN);
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}/", hosts.join(","))
    }

    /// The nodes that are masters now.
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| {
                command(n.port, &["INFO", "replication"]).is_ok_and(|i| i.contains("role:master"))
            })
            .collect()
    }

    /// The node that serves `key`'s slot now (a master).
    pub fn master_of(&self, key: &str) -> &RedisServer {
        let slot = command(self.nodes[0].port, &["CLUSTER", "KEYSLOT", key]).expect("KEYSLOT");
        for node in self.masters() {
            let nodes = command(node.port, &["CLUSTER", "NODES"]).unwrap_or_default();
            let owns = nodes
                .lines()
                .any(|line| line.contains("myself") && owns_slot(line, &slot));
            if owns {
                return node;
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// Waits (bounded) until every live node says the cluster is ok and every live replica's
    /// link to its master is up.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let live: Vec<&RedisServer> = self
                .nodes
                .iter()
                .filter(|n| command(n.port, &["PING"]).is_ok())
                .collect();
            let ok = live.iter().all(|n| {
                command(n.port, &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok"))
                    && command(n.port, &["INFO", "replication"]).is_ok_and(|i| {
                        i.contains("role:master") || i.contains("master_link_status:up")
                    })
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster was not healthy within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges (`a-b` or `a`).
fn owns_slot(line: &str, slot: &str) -> bool {
    let Ok(slot) = slot.parse::<u32>() else {
        return false;
    };
    line.split_whitespace().skip(8).any(|range| {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
    })
}

/// The URL of the three-master cluster the tests share: `TEST_REDIS_CLUSTER_URL` (the test
/// command starts one for the whole run), or one this test process starts on first use.
pub fn shared_real_cluster_url() -> String {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    std::env::var("TEST_REDIS_CLUSTER_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| CLUSTER.get_or_init(RedisCluster::start).url())
}

/// The URL of the server this test process shares: `TEST_REDIS_URL`, or a local one started
/// on first use.
pub fn shared_url() -> String {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    external_url().unwrap_or_else(|| SERVER.get_or_init(RedisServer::start).url())
}

/// Like [`shared_url`], but a one-node cluster (see [`RedisServer::start_cluster_node`]).
pub fn shared_cluster_url() -> String {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    external_url().unwrap_or_else(|| SERVER.get_or_init(RedisServer::start_cluster_node).url())
}

fn external_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// Sends one command in RESP and reads a simple, error, integer or bulk reply as text.
pub fn command(port: u16, args: &[&str]) -> io::Result<String> {
    let addr = ("127.0.0.1", port);
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    (&stream).write_all(request.as_bytes())?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end();
    let bad = |m: &str| io::Error::other(format!("{m}: {line}"));
    match line.as_bytes().first() {
        Some(b'+' | b':') => Ok(line[1..].to_owned()),
        Some(b'-') => Err(bad("error reply")),
        Some(b'$') => {
            let len: usize = line[1..].parse().map_err(|_| bad("bad bulk length"))?;
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            String::from_utf8(body).map_err(|_| bad("not UTF-8"))
        }
        _ => Err(bad("unexpected reply")),
    }
}

/// A fresh folder for one server, removed when the server is dropped or the process exits.
fn test_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("auth-redis-test-")
        .tempdir()
        .expect("a temp dir")
        .keep();
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    extern "C" fn remove_dirs() {
        if let Ok(dirs) = DIRS.lock() {
            for d in dirs.iter() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
    static AT_EXIT: OnceLock<()> = OnceLock::new();
    AT_EXIT.get_or_init(|| {
        // SAFETY: registers a plain function with no captured state.
        unsafe { libc::atexit(remove_dirs) };
    });
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.clone());
    dir
}

/// Writes a CA and a `localhost` server certificate into `dir` and adds the TLS arguments.
fn make_tls(dir: &Path, args: &mut Vec<String>) -> Tls {
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        dir,
        &format!("req -x509 {key} -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca"),
    );
    openssl(
        dir,
        &format!("req {key} -keyout server.key -out server.csr -subj /CN=localhost"),
    );
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
         -days 2 -extfile server.ext",
    );
    let port = free_port();
    args.extend(
        [
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--tls-auth-clients",
            "no",
        ]
        .map(String::from),
    );
    Tls {
        port,
        ca_pem: std::fs::read(dir.join("ca.crt")).expect("read ca.crt"),
    }
}

/// Runs `openssl` with space-separated `args` (none of them contains a space).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is needed for the TLS test (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn not_spawned(e: io::Error) -> ! {
    if e.kind() == io::ErrorKind::NotFound {
        panic!(
            "redis-server is not on PATH: install it (apt-get install redis-server) \
             or point TEST_REDIS_URL at a Redis the tests may use"
        );
    }
    panic!("cannot start redis-server: {e}")
}

/// Spawns redis-server through the keeper thread (see `support::process`).
fn spawn(args: &[String], dir: &Path) -> io::Result<Child> {
    let mut command = Command::new("redis-server");
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    spawn_from_keeper(command)
}
