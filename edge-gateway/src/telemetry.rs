//! Structured logs with `tracing`: one access-log line per request with its request id, method,
//! path (never the query), client IP, status and latency. No cookie, header or body is logged.

use axum::extract::Request;
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Span;

use crate::client_ip::ClientIp;

/// The layer [`access_log`] builds.
pub type AccessLog = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    DefaultOnResponse,
    (),
    (),
    (),
>;

/// The access log: a span per request (request id, method, path, client IP) and a line with
/// status and latency when the response starts.
pub fn access_log() -> AccessLog {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
        .on_body_chunk(())
        .on_eos(())
        // A 5xx is in the access line already; the mapping in `error` logs why.
        .on_failure(())
}

fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let client_ip = request
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    // The path only: no query string, no header but the request id.
    tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        client_ip = %client_ip,
    )
}
