//! The `edge-gateway` binary: reads config (a bad value exits with 2, naming the variable),
//! answers `edge-gateway healthcheck` for container checks, or else builds the gateway with
//! [`startup::Application::build`] and serves until SIGINT or SIGTERM. All wiring is in the
//! library.

use std::{process::ExitCode, time::Duration};

use edge_gateway::{config::Config, healthcheck, startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("edge-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return match healthcheck::check(config.host, config.port, Duration::from_secs(3)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edge-gateway healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    telemetry::init(config.log_format);
    let result = match startup::Application::build(config).await {
        Ok(app) => app.run_until_stopped(startup::shutdown_signal()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
