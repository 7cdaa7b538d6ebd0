//! The `auth-service` binary: reads config (a bad value exits with 2, naming the variable),
//! answers `auth-service healthcheck` for container checks, or else builds the service with
//! [`startup::Application::build`] and serves until SIGINT or SIGTERM. All wiring is in the
//! library.

use std::{process::ExitCode, time::Duration};

use auth_service::{config::Config, healthcheck, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("auth-service: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return match healthcheck::check(config.server.grpc_addr, Duration::from_secs(3)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("auth-service healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    telemetry::init(config.server.log_format);
    let app = match startup::Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("auth-service: {e}");
            return ExitCode::from(2);
        }
    };
    match app.run_until_stopped(startup::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server stopped with an error");
            ExitCode::FAILURE
        }
    }
}
