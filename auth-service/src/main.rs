//! The `auth-service` binary: `baatcheet_runtime::cli::main`, shared by both binaries, reads the
//! config (a bad value exits 2, naming the variable), answers `auth-service healthcheck` for
//! container checks, or else builds the service ([`Application`]) and serves until SIGINT or
//! SIGTERM (one that cannot start exits 2). All wiring is in the library.
//!
//! `auth-service token new NAME` needs no config: it mints a service credential, prints the
//! token once on stdout and, on stderr, the `NAME:sha256` line to add to SERVICE_TOKENS.

use std::process::ExitCode;

use auth_service::{config::Config, crypto::mint_service_token, startup::Application};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("token") {
        return token_command(&args[1..]);
    }
    baatcheet_runtime::cli::main::<Application>(Config::from_env()).await
}

fn token_command(args: &[String]) -> ExitCode {
    let [verb, name] = args else {
        eprintln!("usage: auth-service token new NAME");
        return ExitCode::from(2);
    };
    if verb != "new" {
        eprintln!("usage: auth-service token new NAME");
        return ExitCode::from(2);
    }
    match mint_service_token(name) {
        Ok((token, line)) => {
            println!("{token}");
            eprintln!(
                "The token above is shown once; give it to {name} (e.g. AUTH_SERVICE_TOKEN of \
                 the gateway). Add this line to SERVICE_TOKENS or SERVICE_TOKENS_FILE of every \
                 auth-service instance:\n{line}"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("auth-service token: {e}");
            ExitCode::from(2)
        }
    }
}
