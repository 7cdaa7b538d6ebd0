//! The token cookies. Tokens travel only here, never in a JSON body: `accessToken` for every
//! path, `refreshToken` only for /api/auth (so it is not sent with every other request).
//! Both are httpOnly, so page script cannot read them.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use baatcheet_auth_api::v1 as pb;
use cookie::{Cookie, time::Duration as CookieDuration};
use prost_types::Timestamp;

use crate::config::CookiePolicy;

pub const ACCESS_COOKIE: &str = "accessToken";
pub const REFRESH_COOKIE: &str = "refreshToken";
const ACCESS_PATH: &str = "/";
const REFRESH_PATH: &str = "/api/auth";

/// `Set-Cookie` headers, ready for `AppendHeaders`.
pub type SetCookies = [(HeaderName, HeaderValue); 2];

/// Both cookies of a new token pair; each lives as long as its token.
pub fn issue(policy: &CookiePolicy, tokens: &pb::TokenPair) -> SetCookies {
    [
        set_cookie(
            policy,
            ACCESS_COOKIE,
            &tokens.access_token,
            ACCESS_PATH,
            max_age(tokens.access_token_expire_time.as_ref()),
        ),
        set_cookie(
            policy,
            REFRESH_COOKIE,
            &tokens.refresh_token,
            REFRESH_PATH,
            max_age(tokens.refresh_token_expire_time.as_ref()),
        ),
    ]
}

/// Headers that delete both cookies (same name, path and domain; Max-Age=0).
pub fn clear(policy: &CookiePolicy) -> SetCookies {
    [
        set_cookie(policy, ACCESS_COOKIE, "", ACCESS_PATH, Some(0)),
        set_cookie(policy, REFRESH_COOKIE, "", REFRESH_PATH, Some(0)),
    ]
}

/// The value of cookie `name` in the request, if any and not empty.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// Whether the request carries either token cookie (the CSRF check cares).
pub fn has_auth_cookie(headers: &HeaderMap) -> bool {
    read(headers, ACCESS_COOKIE).is_some() || read(headers, REFRESH_COOKIE).is_some()
}

fn set_cookie(
    policy: &CookiePolicy,
    name: &'static str,
    value: &str,
    path: &'static str,
    max_age_secs: Option<i64>,
) -> (HeaderName, HeaderValue) {
    let mut cookie = Cookie::build((name, value.to_owned()))
        .http_only(true)
        .path(path)
        .same_site(policy.same_site)
        .secure(policy.secure)
        .build();
    if let Some(secs) = max_age_secs {
        cookie.set_max_age(CookieDuration::seconds(secs));
    }
    if let Some(domain) = &policy.domain {
        cookie.set_domain(domain.clone());
    }
    // Token values are base64url and dots; anything else would be a service bug, and an empty
    // cookie (which the service then refuses) is the safe answer to it.
    let value = HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| {
        HeaderValue::from_str(&format!("{name}=; Path={path}; HttpOnly"))
            .unwrap_or(HeaderValue::from_static(""))
    });
    (header::SET_COOKIE, value)
}

/// Seconds from now until `expires`, at least 0; `None` makes a session cookie.
fn max_age(expires: Option<&Timestamp>) -> Option<i64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    expires.map(|t| (t.seconds - now).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::SameSite;

    fn policy(same_site: SameSite, secure: bool, domain: Option<&str>) -> CookiePolicy {
        CookiePolicy {
            same_site,
            secure,
            domain: domain.map(str::to_owned),
        }
    }

    #[test]
    fn issued_cookies_carry_the_policy() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let tokens = pb::TokenPair {
            access_token: "a.b.c".into(),
            access_token_expire_time: Some(Timestamp {
                seconds: now + 900,
                nanos: 0,
            }),
            refresh_token: "r_1".into(),
            refresh_token_expire_time: Some(Timestamp {
                seconds: now + 3600,
                nanos: 0,
            }),
            ..Default::default()
        };
        let [access, refresh] = issue(
            &policy(SameSite::Strict, true, Some("example.com")),
            &tokens,
        );
        let access = access.1.to_str().unwrap();
        assert!(access.starts_with("accessToken=a.b.c"));
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Domain=example.com",
        ] {
            assert!(access.contains(part), "{access}");
        }
        assert!(access.contains("Max-Age=900") || access.contains("Max-Age=899"));
        let refresh = refresh.1.to_str().unwrap();
        assert!(refresh.contains("Path=/api/auth"), "{refresh}");
    }

    #[test]
    fn cleared_cookies_expire_now() {
        for (_, v) in clear(&policy(SameSite::Lax, false, None)) {
            let v = v.to_str().unwrap();
            assert!(v.contains("Max-Age=0") && !v.contains("Secure"), "{v}");
        }
    }

    #[test]
    fn reads_cookies_from_any_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "theme=dark; accessToken=abc".parse().unwrap(),
        );
        h.append(header::COOKIE, "refreshToken=".parse().unwrap());
        assert_eq!(read(&h, ACCESS_COOKIE).as_deref(), Some("abc"));
        assert_eq!(read(&h, REFRESH_COOKIE), None);
        assert!(has_auth_cookie(&h));
    }
}
