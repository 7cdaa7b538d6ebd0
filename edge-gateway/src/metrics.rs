//! Prometheus metrics: HTTP requests by route and status, gRPC calls by method and code, and the
//! edge's own refusals. Served as text at GET /metrics.
//!
//! Every label value comes from a fixed set, because each distinct label set is a time series
//! that lives as long as the process: a label copied from the request (a method such as `FOO123`,
//! a path) would let anyone grow the exporter's memory and the scrape without bound. Methods are
//! [`KNOWN_METHODS`] or `other`; routes are the router's templates (`/api/auth/sessions/{id}`) or
//! `unmatched`; statuses are three-digit codes.
//!
//! The `metrics` facade has one global recorder per process, so every gateway in a process
//! (tests start several) shares it.

use std::{sync::OnceLock, time::Duration, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    http::Method,
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

/// The methods that get a label of their own (names are case-sensitive); any other is `other`.
pub const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The `method` label: the method's name when it is one of [`KNOWN_METHODS`], else `other`.
pub fn method_label(method: &Method) -> &'static str {
    KNOWN_METHODS
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

/// Middleware: counts and times every request by method, route template and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    // The template the router matched, never the path itself.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("gateway_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_known_set_share_one_label() {
        for name in KNOWN_METHODS {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), name);
        }
        for name in ["FOO123", "get", "PROPFIND", "TRACE", "CONNECT"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{name}");
        }
    }
}
