//! Gives the error responses that layers and the router make without a body the error shape.

use axum::{
    extract::Request,
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::ApiError;

/// Middleware: gives every error response that a layer or the router made without a JSON body
/// (413 from the body limit, 405, 504 from the timeout, ...) the error shape. Headers such as
/// `Allow` are kept.
pub async fn shape_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let shaped = ApiError::from_bare_status(status).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.extend(shaped.headers().clone());
    Response::from_parts(parts, shaped.into_body())
}
