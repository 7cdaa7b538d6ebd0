//! CSRF: a request that carries the token cookies must come from this origin or an origin on
//! CORS_ORIGINS. Cookies are ambient (the browser attaches them to requests that any page
//! starts), so their presence alone proves nothing; `Origin` and `Sec-Fetch-Site` say who asked.
//! A request with no cookie (login, or a bearer header) is not checked: nothing ambient is used.
//!
//! Every method is checked, not only POST/DELETE, because GET /api/auth/logout changes state too.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{cookies, error::ApiError, state::AppState};

/// Middleware over /api/auth.
pub async fn check_origin(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS
        && cookies::has_auth_cookie(request.headers(), app.cookies())
        && !trusted(request.headers(), |o| app.config().allows_origin(o))
    {
        crate::metrics::refused("csrf");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "CSRF_REJECTED",
            "this request carries session cookies but does not come from an allowed origin",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether a cookie-carrying request may act.
pub fn trusted(headers: &HeaderMap, allowed: impl Fn(&[u8]) -> bool) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return allowed(origin.as_bytes())
            || origin
                .to_str()
                .is_ok_and(|origin| same_origin(origin, headers));
    }
    match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        // `none`: the person typed the URL or used a bookmark.
        Some(b"same-origin" | b"none") => true,
        Some(_) => false,
        // Neither header: not a browser made in the last decade, so not a CSRF victim.
        None => true,
    }
}

/// `Origin` names the host this request was sent to (`Host`), whatever the scheme a TLS proxy saw.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_be_listed_or_same() {
        let allowed = |o: &[u8]| o == b"http://app.example.com";
        let host = ("host", "api.example.com");
        assert!(trusted(
            &headers(&[host, ("origin", "http://app.example.com")]),
            allowed
        ));
        assert!(trusted(
            &headers(&[host, ("origin", "https://api.example.com")]),
            allowed
        ));
        assert!(!trusted(
            &headers(&[host, ("origin", "http://evil.example")]),
            allowed
        ));
        assert!(!trusted(&headers(&[host, ("origin", "null")]), allowed));
    }

    #[test]
    fn fetch_metadata_when_there_is_no_origin() {
        assert!(trusted(
            &headers(&[("sec-fetch-site", "same-origin")]),
            |_| false
        ));
        assert!(trusted(&headers(&[("sec-fetch-site", "none")]), |_| false));
        assert!(!trusted(
            &headers(&[("sec-fetch-site", "cross-site")]),
            |_| false
        ));
        assert!(!trusted(
            &headers(&[("sec-fetch-site", "same-site")]),
            |_| false
        ));
        assert!(trusted(&headers(&[]), |_| false));
    }
}
