//! Security headers on every response: the set helmet sets for the seed, and `no-store` on the
//! API so that no cache keeps an answer about a session.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::Response,
};
use tower_http::set_header::SetResponseHeaderLayer;

/// Content-Security-Policy: the page loads only its own script and style and talks only to its
/// own origin.
const CSP: &str = "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; \
form-action 'self'; frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; \
script-src 'self'; script-src-attr 'none'; style-src 'self'";

/// The helmet set as (name, value). HSTS only when cookies are Secure, i.e. served over HTTPS.
pub fn headers(https: bool) -> Vec<(HeaderName, HeaderValue)> {
    let mut set = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-site"),
        ),
        (
            HeaderName::from_static("origin-agent-cluster"),
            HeaderValue::from_static("?1"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::X_DNS_PREFETCH_CONTROL,
            HeaderValue::from_static("off"),
        ),
        (
            HeaderName::from_static("x-download-options"),
            HeaderValue::from_static("noopen"),
        ),
        (
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        ),
        (
            HeaderName::from_static("x-permitted-cross-domain-policies"),
            HeaderValue::from_static("none"),
        ),
        (header::X_XSS_PROTECTION, HeaderValue::from_static("0")),
    ];
    if https {
        set.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    set
}

/// Middleware: adds each header of the set that the response does not have yet (a handler's own
/// value wins).
pub async fn add_headers(
    State(set): State<Arc<[(HeaderName, HeaderValue)]>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in set.iter() {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    response
}

/// `Cache-Control: no-store` for API answers.
pub fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}
