//! Child processes of tests (redis-server, SecantusDB, aiosmtpd) that never outlive the test
//! process: nextest runs each test in a process of its own, and a server left behind would
//! hold a port and memory until the machine restarts.

use std::{
    io,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command},
    sync::{Mutex, OnceLock, mpsc},
};

/// Spawns `command` from a keeper thread with `PR_SET_PDEATHSIG` = SIGKILL. The signal fires
/// when the thread that spawned the child ends, not the process, so that thread lives as long
/// as the process.
pub fn spawn_from_keeper(mut command: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static KEEPER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("test-server-keeper".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("keeper thread");
        tx
    });
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The test process may have gone before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("the test process is gone"));
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    keeper
        .send((command, reply))
        .map_err(|_| io::Error::other("keeper thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("keeper thread is gone"))?
}

/// A port nothing listens on right now (never 6379, where a developer's own Redis lives).
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if port != 6379 {
            return port;
        }
    }
}

/// The virtualenv `scripts/install-test-deps.sh` fills with the Python test servers.
pub fn venv_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let path = PathBuf::from(home)
        .join(".cache/baatcheet-auth/venv/bin")
        .join(name);
    if !path.is_file() {
        panic!(
            "{name} is not installed: run scripts/install-test-deps.sh (looked for {})",
            path.display()
        );
    }
    path
}

/// Kills the server process in `slot`, if any, and waits until it is gone (its port closed).
pub fn kill(slot: &Mutex<Option<Child>>) {
    // A test that panicked while holding the lock must not keep its server alive.
    let child = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}
