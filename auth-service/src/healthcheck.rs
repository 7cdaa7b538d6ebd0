//! `auth-service healthcheck`: asks the running service's grpc.health.v1 and answers with the
//! exit code, for container health checks (no extra probe binary in the image).

use std::net::SocketAddr;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Ok when the service listening on `listen` reports SERVING (the caller bounds the wait).
pub async fn check(listen: SocketAddr) -> Result<(), String> {
    let host = baatcheet_runtime::cli::local_address(listen);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{host}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|e| format!("health check failed: {e}"))?
        .into_inner()
        .status;
    if status == ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(format!("not serving (status {status})"))
    }
}
