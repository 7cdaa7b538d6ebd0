//! Prometheus metrics: HTTP requests by route and status, gRPC calls by method and code, and the
//! edge's own refusals. Served as text at GET /metrics.
//!
//! The `metrics` facade has one global recorder per process, so every gateway in a process
//! (tests start several) shares it.

use std::{sync::OnceLock, time::Duration, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from a cached answer to an argon2 hash under load.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the recorder (once per process) and returns the handle that renders it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        };
        builder().install_recorder().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            builder().build_recorder().handle()
        })
    })
}

/// The text exposition format.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

/// Middleware: counts and times every request by method, matched route and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("gateway_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("gateway_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Records one call to the auth service.
pub fn grpc_call(rpc: &'static str, code: tonic::Code, elapsed: Duration) {
    metrics::counter!("gateway_grpc_calls_total", "rpc" => rpc, "code" => format!("{code:?}"))
        .increment(1);
    metrics::histogram!("gateway_grpc_call_duration_seconds", "rpc" => rpc)
        .record(elapsed.as_secs_f64());
}

/// Records a request the edge refused by itself (`rate_limited`, `csrf`).
pub fn refused(reason: &'static str) {
    metrics::counter!("gateway_refused_requests_total", "reason" => reason).increment(1);
}
