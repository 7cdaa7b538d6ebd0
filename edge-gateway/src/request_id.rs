//! Request ids. An incoming `X-Request-Id` is kept only when it looks like an id: at most
//! [`MAX_LEN`] characters of letters, digits and `-_.:/+=`. Anything else is replaced by a fresh
//! UUID, because the id is echoed in the response, written on every access-log line and passed
//! to the auth service as metadata: an unbounded one would let a client write what it likes into
//! the logs, or make the gateway send the service a header block it refuses.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// Longest request id kept (a UUID is 36; trace ids are at most a few dozen).
pub const MAX_LEN: usize = 128;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether `value` is kept as the request's id.
pub fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// Middleware in front of tower-http's `SetRequestIdLayer`: keeps the first `X-Request-Id` when it
/// is [`acceptable`] and drops every other copy, so that the layer makes a fresh id instead.
pub async fn drop_unacceptable(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    let kept = headers
        .get(&X_REQUEST_ID)
        .filter(|v| acceptable(v))
        .cloned();
    headers.remove(&X_REQUEST_ID);
    if let Some(id) = kept {
        headers.insert(X_REQUEST_ID, id);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        for id in [
            "trace-me-123",
            "0af7651916cd43dd8448eb211c80319c",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "abc:def/ghi+j=",
        ] {
            assert!(acceptable(&HeaderValue::from_static(id)), "{id}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        for id in ["", "has space", "quote\"", "semi;colon", &long] {
            let value = HeaderValue::from_str(id).unwrap();
            assert!(!acceptable(&value), "{id:?}");
        }
        assert!(acceptable(
            &HeaderValue::from_str(&"a".repeat(MAX_LEN)).unwrap()
        ));
    }
}
