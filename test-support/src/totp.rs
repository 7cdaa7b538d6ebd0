//! TOTP codes as an authenticator app makes them, computed by pyotp (PyPI): an implementation
//! nobody here wrote, so a test that signs in with its codes checks the service against the
//! standard, not against itself.

use std::process::Command;

use crate::process::venv_bin;

/// The 6-digit code of `secret` (base32, as StartTotpEnrollment returns it) for the 30-second
/// step that holds `unix_seconds`.
pub fn code_at(secret: &str, unix_seconds: i64) -> String {
    let out = Command::new(venv_bin("python"))
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &unix_seconds.to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "pyotp failed (run scripts/install-test-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert_eq!(code.len(), 6, "pyotp printed {code:?}");
    code
}

/// The code of `secret` now.
pub fn code_now(secret: &str) -> String {
    code_at(secret, now_seconds())
}

/// The code of the next 30-second step: one the service has not seen yet, whichever step the
/// last accepted code belonged to (the service accepts one step either side of its clock).
pub fn code_next(secret: &str) -> String {
    code_at(secret, now_seconds() + 30)
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}
