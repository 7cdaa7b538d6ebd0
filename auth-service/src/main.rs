//! The `auth-service` binary: `baatcheet_runtime::cli::main`, shared by both binaries, reads the
//! config (a bad value exits 2, naming the variable), answers `auth-service healthcheck` for
//! container checks, or else builds the service ([`Application`]) and serves until SIGINT or
//! SIGTERM (one that cannot start exits 2). All wiring is in the library.

use std::process::ExitCode;

use auth_service::{config::Config, startup::Application};

#[tokio::main]
async fn main() -> ExitCode {
    baatcheet_runtime::cli::main::<Application>(Config::from_env()).await
}
