//! CSRF: a request that carries the token cookies must come from this origin or an origin on
//! CORS_ORIGINS. Cookies are ambient (the browser attaches them to requests that any page
//! starts), so their presence alone proves nothing; `Origin` and `Sec-Fetch-Site` say who asked.
//! A request with no cookie (login, or a bearer header) is not checked: nothing ambient is used.
//!
//! Every method is checked, not only POST/DELETE, because GET /api/auth/logout changes state too.
//!
//! "This origin" is a whole origin, scheme, host and port, as browsers compare them: the host and
//! port come from the request (`Host`, or `:authority` over HTTP/2), the scheme from the
//! configuration ([`own_scheme`]). An origin that differs in any part is another site: a page at
//! `http://app.example` (no TLS, so anyone on the path can write it) must not act for
//! `https://app.example`.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header, uri::Authority},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{config::CookiePolicy, cookies, error::ApiError, state::AppState};

/// Middleware over /api/auth.
pub async fn check_origin(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS
        && cookies::has_auth_cookie(request.headers(), app.cookies())
        && !trusted(
            request.headers(),
            request_authority(&request),
            own_scheme(app.cookies()),
            |o| app.config().browser.allows_origin(o),
        )
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

/// The scheme browsers reach this gateway with: `https` when its cookies are Secure (a browser
/// sends Secure cookies only over HTTPS, so a cookie-carrying request came that way), else `http`.
/// A TLS-terminating proxy's `X-Forwarded-Proto` is not consulted: the deployment's scheme is a
/// fact of its configuration, not something a request should be able to say.
pub fn own_scheme(policy: &CookiePolicy) -> &'static str {
    if policy.secure { "https" } else { "http" }
}

/// The host (and port) the request was sent to: the URI's authority (HTTP/2 `:authority`, or an
/// absolute-form HTTP/1.1 target), else the `Host` header.
fn request_authority(request: &Request) -> Option<&str> {
    request
        .uri()
        .authority()
        .map(Authority::as_str)
        .or_else(|| request.headers().get(header::HOST)?.to_str().ok())
}

/// Whether a cookie-carrying request may act. `authority` is where the request was sent.
pub fn trusted(
    headers: &HeaderMap,
    authority: Option<&str>,
    own_scheme: &str,
    allowed: impl Fn(&[u8]) -> bool,
) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return allowed(origin.as_bytes())
            || origin.to_str().is_ok_and(|origin| {
                authority.is_some_and(|authority| same_origin(origin, own_scheme, authority))
            });
    }
    match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        // `none`: the person typed the URL or used a bookmark.
        Some(b"same-origin" | b"none") => true,
        Some(_) => false,
        // Neither header: not a browser made in the last decade, so not a CSRF victim.
        None => true,
    }
}

/// Whether `origin` (`scheme://host[:port]`) is `own_scheme://authority`: same scheme, same host
/// (case-insensitive), same port, where a missing port is the scheme's default (80 or 443).
pub fn same_origin(origin: &str, own_scheme: &str, authority: &str) -> bool {
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    let (Some(scheme), Some(origin_authority)) = (origin.scheme_str(), origin.authority()) else {
        return false;
    };
    let Ok(target) = authority.parse::<Authority>() else {
        return false;
    };
    // An Origin has no user info and no path; a value that does is not one.
    let bare = |a: &Authority| !a.as_str().contains('@');
    bare(origin_authority)
        && bare(&target)
        && origin.path_and_query().is_none_or(|p| p.as_str() == "/")
        && scheme.eq_ignore_ascii_case(own_scheme)
        && origin_authority.host().eq_ignore_ascii_case(target.host())
        && port_or_default(origin_authority, scheme) == port_or_default(&target, own_scheme)
}

fn port_or_default(authority: &Authority, scheme: &str) -> Option<u16> {
    authority
        .port_u16()
        .or(match scheme.to_ascii_lowercase().as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        })
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
        let host = Some("api.example.com");
        let check =
            |origin: &'static str| trusted(&headers(&[("origin", origin)]), host, "https", allowed);
        assert!(check("http://app.example.com"));
        assert!(check("https://api.example.com"));
        assert!(!check("http://evil.example"));
        assert!(!check("null"));
        // No authority to compare with: only a listed origin passes.
        let origin = headers(&[("origin", "https://api.example.com")]);
        assert!(!trusted(&origin, None, "https", allowed));
    }

    #[test]
    fn the_scheme_must_be_the_gateways() {
        assert!(same_origin("https://a.example", "https", "a.example"));
        assert!(!same_origin("http://a.example", "https", "a.example"));
        assert!(!same_origin("https://a.example", "http", "a.example"));
        assert!(same_origin("http://a.example", "http", "a.example"));
    }

    #[test]
    fn the_port_must_match() {
        assert!(!same_origin("https://a.example:8443", "https", "a.example"));
        assert!(!same_origin("https://a.example", "https", "a.example:8443"));
        assert!(!same_origin(
            "http://127.0.0.1:8081",
            "http",
            "127.0.0.1:8080"
        ));
        assert!(same_origin(
            "http://127.0.0.1:8080",
            "http",
            "127.0.0.1:8080"
        ));
        assert!(same_origin("http://[::1]:8080", "http", "[::1]:8080"));
        assert!(!same_origin("http://[::1]:8080", "http", "[::2]:8080"));
    }

    #[test]
    fn default_ports_are_the_same_port() {
        assert!(same_origin("https://a.example", "https", "a.example:443"));
        assert!(same_origin("https://a.example:443", "https", "a.example"));
        assert!(same_origin("http://a.example", "http", "a.example:80"));
        assert!(!same_origin("https://a.example", "https", "a.example:80"));
        assert!(same_origin("HTTPS://A.Example", "https", "a.EXAMPLE"));
    }

    #[test]
    fn what_is_not_an_origin_is_not_this_one() {
        for origin in [
            "null",
            "a.example",
            "https://user@a.example",
            "https://a.example/path",
            "ftp://a.example",
            "",
        ] {
            assert!(!same_origin(origin, "https", "a.example"), "{origin:?}");
        }
        assert!(!same_origin("https://a.example", "https", "evil@a.example"));
        assert!(!same_origin("https://a.example", "https", "not a host"));
    }

    #[test]
    fn fetch_metadata_when_there_is_no_origin() {
        let check = |pairs: &[(&'static str, &'static str)]| {
            trusted(&headers(pairs), Some("a.example"), "https", |_| false)
        };
        assert!(check(&[("sec-fetch-site", "same-origin")]));
        assert!(check(&[("sec-fetch-site", "none")]));
        assert!(!check(&[("sec-fetch-site", "cross-site")]));
        assert!(!check(&[("sec-fetch-site", "same-site")]));
        assert!(check(&[]));
    }

    #[test]
    fn own_scheme_follows_secure_cookies() {
        let policy = |secure| CookiePolicy {
            same_site: cookie::SameSite::Strict,
            secure,
            domain: None,
        };
        assert_eq!(own_scheme(&policy(true)), "https");
        assert_eq!(own_scheme(&policy(false)), "http");
    }
}
