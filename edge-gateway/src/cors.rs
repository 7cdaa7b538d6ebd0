//! CORS for the origins on CORS_ORIGINS, with credentials (the cookies). tower-http answers
//! preflights and sets the headers; [`hide_policy_from_unlisted`] makes sure that an origin not
//! on the list gets no CORS header at all (tower-http still sends the constant ones, such as
//! `Access-Control-Allow-Credentials`), so a browser refuses its requests and it learns nothing.

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::state::AppState;

/// Preflight answers are cached this long by browsers.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

pub fn layer(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Middleware outside [`layer`]: drops every `Access-Control-*` header from the answer to a
/// request whose `Origin` is not on the list.
pub async fn hide_policy_from_unlisted(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let listed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| app.config().browser.allows_origin(o.as_bytes()));
    let mut response = next.run(request).await;
    if !listed {
        let names: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            response.headers_mut().remove(name);
        }
    }
    response
}
