//! What `main` of both binaries does, written once: read the configuration (a bad value exits 2
//! and names the variable), answer `NAME healthcheck` for container checks (exit 0 or 1, no
//! probe binary in the image), or else serve until SIGINT or SIGTERM. A service that cannot
//! start exits 2 like a bad variable; one whose server fails exits 1.

use std::{
    fmt::Display,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use crate::env::{ConfigError, LogFormat};

/// How long `NAME healthcheck` waits for the running process to answer.
pub const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A process `main` can run: built from its configuration, served until a signal.
pub trait Service: Sized {
    /// The binary's name, in messages.
    const NAME: &'static str;
    /// The default log filter (`RUST_LOG` overrides it).
    const LOG_FILTER: &'static str;
    type Config;
    type Error: Display;

    fn log_format(config: &Self::Config) -> LogFormat;
    /// Asks a running instance whether it serves (`NAME healthcheck`); `main` bounds the wait.
    fn healthcheck(config: &Self::Config) -> impl Future<Output = Result<(), String>>;
    fn build(config: Self::Config) -> impl Future<Output = Result<Self, Self::Error>>;
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Runs one binary from its configuration as read (`Config::from_env()`).
pub async fn main<S: Service>(config: Result<S::Config, ConfigError>) -> ExitCode {
    let name = S::NAME;
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let answer = tokio::time::timeout(HEALTHCHECK_TIMEOUT, S::healthcheck(&config))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {HEALTHCHECK_TIMEOUT:?}")));
        return match answer {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{name} healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    crate::telemetry::init(S::log_format(&config), S::LOG_FILTER);
    let service = match S::build(config).await {
        Ok(service) => service,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    match service.run_until_stopped(crate::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server stopped with an error");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The address a local probe reaches a listener on: a listener bound to 0.0.0.0 or [::] is
/// reached on loopback.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listeners_are_probed_on_loopback() {
        let probe = |s: &str| local_address(s.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(probe("[::]:50051"), "[::1]:50051");
        assert_eq!(probe("10.0.0.2:80"), "10.0.0.2:80");
    }
}
