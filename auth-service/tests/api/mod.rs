//! Integration tests: the real service on a random port, real gRPC over TCP, real SQLite,
//! codes read from the mail the service wrote. A module per feature, in the one test binary.

mod account;
mod concurrency;
mod email_change;
mod key_rotation;
mod login;
mod login_code;
pub mod mfa;
pub mod passkeys;
mod password;
mod password_policy;
mod process;
mod registration;
mod security_log;
mod sessions;
mod surface;
mod tokens;
