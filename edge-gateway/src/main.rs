//! The `edge-gateway` binary: `baatcheet_runtime::cli::main`, shared by both binaries, reads the
//! config (a bad value exits 2, naming the variable), answers `edge-gateway healthcheck` for
//! container checks, or else builds the gateway ([`Application`]) and serves until SIGINT or
//! SIGTERM (one that cannot start exits 2). All wiring is in the library.

use std::process::ExitCode;

use edge_gateway::{config::Config, startup::Application};

#[tokio::main]
async fn main() -> ExitCode {
    baatcheet_runtime::cli::main::<Application>(Config::from_env()).await
}
