use auth_service::{config::Config, startup::Application, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("auth-service: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match Application::build(config).await {
        Ok(app) => match app
            .run_until_stopped(auth_service::startup::shutdown_signal())
            .await
        {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "server stopped with an error");
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("auth-service: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
