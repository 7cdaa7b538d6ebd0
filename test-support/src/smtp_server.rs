//! A real SMTP server for tests: aiosmtpd (PyPI) with its stock Maildir handler, on a free
//! loopback port. Messages land in a Maildir the test reads like a mail client would.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::mail::{Mail, Mailbox, in_arrival_order, parse_mail};
use crate::process::{free_port, kill, spawn_from_keeper, venv_bin};

pub struct SmtpServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    /// How long it takes to accept each message (a slow relay), if at all.
    delay: Option<Duration>,
}

impl SmtpServer {
    /// Starts aiosmtpd and waits until it greets.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A relay that takes `delay` to accept each message (`test-support/src/slow_smtp.py`).
    pub async fn start_slow(delay: Duration) -> Self {
        Self::start_with(Some(delay)).await
    }

    async fn start_with(delay: Option<Duration>) -> Self {
        let server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: Mutex::new(None),
            delay,
        };
        server.spawn().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Maildir aiosmtpd writes into (it creates it on start).
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    async fn spawn(&self) {
        let log = std::fs::File::create(self.dir.path().join("smtp.log")).expect("log file");
        let mut command = Command::new(venv_bin("python"));
        command
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        match self.delay {
            None => command
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(self.maildir()),
            Some(delay) => command
                .env(
                    "PYTHONPATH",
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
                )
                .args(["-c", "slow_smtp.SlowMailbox"])
                .arg(self.maildir())
                .arg(delay.as_secs_f64().to_string()),
        };
        let child = spawn_from_keeper(command).expect("aiosmtpd starts");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut greeting = [0u8; 3];
                stream.readable().await.ok();
                if stream.try_read(&mut greeting).is_ok_and(|n| n == 3) && &greeting == b"220" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not greet on port {} within 20 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server (the relay is "down"); the port stays reserved for [`Self::restart`].
    pub fn stop(&self) {
        kill(&self.child);
    }

    /// Starts it again on the same port with the same Maildir.
    pub async fn restart(&self) {
        self.stop();
        self.spawn().await;
    }

    /// Every received message (raw bytes), oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        read_maildir(&self.maildir())
    }
}

/// What the relay accepted, as a mail client reads it.
impl Mailbox for SmtpServer {
    fn mails(&self) -> Vec<Mail> {
        self.messages()
            .iter()
            .filter_map(|raw| parse_mail(raw))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_maildir(dir: &Path) -> Vec<Vec<u8>> {
    let files = ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flat_map(|entries| entries.flatten())
        .map(|e| e.path())
        .collect();
    in_arrival_order(files)
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}
