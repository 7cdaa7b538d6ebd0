//! For operators and other services: liveness, readiness, metrics, the JWKS, the OpenAPI document.

use std::{sync::Arc, time::Duration};

use axum::{
    Extension,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use baatcheet_auth_api::v1 as pb;
use serde::Serialize;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::response::ApiResponse;
use crate::state::AppState;
use crate::upstream::call;

/// The gRPC service whose health decides readiness.
const AUTH_SERVICE: &str = pb::auth_service_server::SERVICE_NAME;
/// A readiness probe answers quickly or not at all.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `data` of /healthz and /readyz.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// grpc.health.v1 status of the auth service (readyz only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "SERVING")]
    pub auth_service: Option<&'static str>,
}

/// The OpenAPI document, rendered once at startup.
#[derive(Clone)]
pub struct OpenApiJson(pub Arc<str>);

/// The process is alive (says nothing of the auth service).
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = ApiResponse<Health>)))]
pub async fn healthz() -> ApiResponse<Health> {
    ApiResponse::ok(
        Health {
            status: "ok",
            auth_service: None,
        },
        "alive",
    )
}

/// The auth service is reachable over the shared channel and reports SERVING.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = ApiResponse<Health>),
        (status = 503, description = "The auth service is unreachable (UNAVAILABLE) or not serving (NOT_READY)", body = ErrorBody),
    ))]
pub async fn readyz(State(app): State<AppState>) -> Result<ApiResponse<Health>, ApiError> {
    let mut health = app.health();
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: AUTH_SERVICE.to_owned(),
    });
    request.set_timeout(READY_TIMEOUT);
    let check = call("grpc.health.v1.Health/Check", health.check(request));
    let reply = tokio::time::timeout(READY_TIMEOUT, check)
        .await
        .map_err(|_| ApiError::from_status(&tonic::Status::deadline_exceeded("")))??;
    match ServingStatus::try_from(reply.status) {
        Ok(ServingStatus::Serving) => Ok(ApiResponse::ok(
            Health {
                status: "ready",
                auth_service: Some("SERVING"),
            },
            "ready",
        )),
        other => {
            let name = other.map_or("UNKNOWN", |s| s.as_str_name());
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT_READY",
                format!("the auth service reports {name}"),
            ))
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

/// The public keys that sign access tokens (RFC 7517), for services that verify tokens themselves.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "ops",
    responses(
        (status = 200, description = "JWKS", body = Object, content_type = "application/json"),
        (status = 503, description = "The auth service is unavailable", body = ErrorBody),
    ))]
pub async fn jwks(State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let reply = call(
        "GetJwks",
        app.auth()
            .get_jwks(tonic::Request::new(pb::GetJwksRequest {})),
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CACHE_CONTROL, jwks_cache_control(reply.max_age)),
        ],
        reply.jwks_json,
    ))
}

/// Cache-Control of the JWKS: as long as the service says a copy may be kept (below the time
/// a new key is published before it signs), at most an hour; 5 minutes from a service that
/// does not say.
fn jwks_cache_control(max_age: Option<prost_types::Duration>) -> String {
    let seconds = max_age.map_or(300, |d| d.seconds.clamp(0, 3600));
    format!("public, max-age={seconds}")
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3 document", body = Object, content_type = "application/json")))]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.to_string(),
    )
}
