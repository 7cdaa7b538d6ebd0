//! A MongoDB for tests: SecantusDB (`secantusd-py`, a MongoDB wire-protocol server) on a free
//! loopback port, or the server named by `MONGODB_URI` when that is set.
//!
//! No server may outlive the test process (nextest runs each test in a process of its own):
//! every server is spawned by [`spawn_from_keeper`] (`PR_SET_PDEATHSIG` = SIGKILL, from a
//! thread that never ends), so the kernel kills it when the process goes, however it goes.
//! Servers get `TMPDIR` in a scratch folder of this process, and folders of processes that
//! are gone are swept at the next start, so killed servers leave nothing behind for long.
//!
//! Isolation between tests comes from a fresh database name per test, so one server per
//! process is shared ([`test_database`]). Fault tests start a server of their own
//! ([`SecantusServer::start`]) and stop and restart it on the same port.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use mongodb::{Client, bson::doc, options::ClientOptions};

use crate::process::{free_port, kill, spawn_from_keeper, venv_bin};

/// How long a server may take to answer its first ping (it takes about a second).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// One fresh database for one test.
pub struct TestDatabase {
    pub uri: String,
    pub name: String,
}

impl TestDatabase {
    /// A plain driver client, for looking at the stored documents directly.
    pub async fn client(&self) -> Client {
        Client::with_uri_str(&self.uri)
            .await
            .expect("driver client")
    }

    pub async fn database(&self) -> mongodb::Database {
        self.client().await.database(&self.name)
    }
}

/// A database of its own on the server of this test process: `MONGODB_URI` when set, else a
/// SecantusDB started on first use and shared by the tests of the process.
pub async fn test_database() -> TestDatabase {
    static SHARED: tokio::sync::OnceCell<SecantusServer> = tokio::sync::OnceCell::const_new();
    let uri = match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.trim().is_empty() => uri,
        _ => SHARED
            .get_or_init(|| SecantusServer::start(Storage::Memory))
            .await
            .uri(),
    };
    TestDatabase {
        uri,
        name: fresh_database_name(),
    }
}

/// `authtest_<uuid>`: unique, so runs against a real server never collide, and easy to
/// recognise for clean-up there.
pub fn fresh_database_name() -> String {
    format!("authtest_{}", uuid::Uuid::new_v4().simple())
}

/// Where a server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// `:memory:`: fastest; everything is lost when the server stops.
    Memory,
    /// A folder of this process, every commit synced: data and indexes survive a stop (even
    /// a kill) and restart.
    Disk,
}

/// One SecantusDB process on a fixed loopback port, stoppable and restartable.
pub struct SecantusServer {
    port: u16,
    storage_path: String,
    sync_on_commit: bool,
    log_path: PathBuf,
    child: Mutex<Option<Child>>,
}

impl SecantusServer {
    /// Starts a server on a free port and waits until the driver's ping works.
    pub async fn start(storage: Storage) -> Self {
        let scratch = scratch_dir();
        let n = next_id();
        let storage_path = match storage {
            Storage::Memory => ":memory:".to_owned(),
            Storage::Disk => scratch.join(format!("data-{n}")).display().to_string(),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let server = Self {
                port: free_port(),
                storage_path: storage_path.clone(),
                sync_on_commit: storage == Storage::Disk,
                log_path: scratch.join(format!("secantusd-{n}-{tries}.log")),
                child: Mutex::new(None),
            };
            server.spawn();
            match server.wait_ready().await {
                Ok(()) => return server,
                // Another process took the free port between our look and the server's bind.
                Err(output) if tries < 3 && output.contains("in use") => continue,
                Err(output) => server.fail(&output),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (like a crash) and waits until it is gone; its port is then closed.
    pub fn stop(&self) {
        kill(&self.child);
    }

    /// Starts the server again on the same port and waits until it answers. With
    /// [`Storage::Memory`] it comes back empty (no indexes either); with [`Storage::Disk`]
    /// it comes back with its data.
    pub async fn restart(&self) {
        self.stop();
        self.spawn();
        if let Err(output) = self.wait_ready().await {
            self.fail(&output);
        }
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn spawn(&self) {
        let log = File::create(&self.log_path).expect("server log file");
        let mut command = Command::new(secantusd());
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--storage-path", &self.storage_path, "--standalone"])
            // Caps each server's cache (default 1G); tests need little.
            .args(["--cache-size", "128M", "--log-level", "WARNING"])
            .env("TMPDIR", scratch_dir())
            // Without it a killed server loses its last commits, as a crashed mongod would
            // without the journal.
            .args(self.sync_on_commit.then_some("--sync-on-commit"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("server log file"))
            .stderr(log);
        let child = spawn_from_keeper(command).unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (run scripts/install-test-deps.sh, or set SECANTUSD)",
                secantusd().display()
            );
        });
        *self.child.lock().unwrap() = Some(child);
    }

    /// Pings until the server answers; `Err(output)` when it exits or stays silent.
    async fn wait_ready(&self) -> Result<(), String> {
        let mut options = ClientOptions::parse(self.uri()).await.expect("uri");
        options.server_selection_timeout = Some(Duration::from_millis(250));
        options.connect_timeout = Some(Duration::from_millis(250));
        let client = Client::with_options(options).expect("driver client");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("exited with {status}\n{}", self.output()));
            }
            if client
                .database("admin")
                .run_command(doc! { "ping": 1 })
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer to ping within {READY_WITHIN:?}\n{}",
                    self.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap();
        let status = child.as_mut()?.try_wait().ok().flatten()?;
        child.take();
        Some(status)
    }

    fn fail(&self, output: &str) -> ! {
        self.stop();
        panic!(
            "SecantusDB ({}) did not start on port {}: {output}",
            secantusd().display(),
            self.port
        );
    }
}

impl Drop for SecantusServer {
    fn drop(&mut self) {
        self.stop();
        if self.storage_path != ":memory:" {
            let _ = std::fs::remove_dir_all(&self.storage_path);
        }
    }
}

/// The server binary: `$SECANTUSD`, else the one `scripts/install-test-deps.sh` installs.
fn secantusd() -> PathBuf {
    std::env::var_os("SECANTUSD")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| venv_bin("secantusd-py"))
}

/// This process's scratch folder; folders of finished processes are removed on first use.
fn scratch_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::temp_dir().join("baatcheet-secantus");
        if let Ok(entries) = std::fs::read_dir(&root) {
            for entry in entries.flatten() {
                let pid = entry.file_name();
                if !Path::new("/proc").join(&pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = root.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("scratch folder for SecantusDB");
        dir
    })
    .clone()
}

fn next_id() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
