//! The cookies: the two token cookies, and the ids of a pending sign-up and of a pending
//! password reset (the service binds a code to the request id it answered with, so only the
//! browser holding the id can use the code). Tokens and ids travel only here, never in a JSON
//! body. All are httpOnly, so page script cannot read them.
//!
//! Secure cookies without a COOKIE_DOMAIN take the `__Host-` prefix (`__Host-accessToken`,
//! `__Host-refreshToken`): a browser accepts such a cookie only from this very host, over HTTPS,
//! with `Path=/` and no `Domain`, so a sibling subdomain cannot plant ("toss") a cookie of that
//! name to fix a victim's session. The prefix requires `Path=/`, so the refresh cookie is then
//! sent on every path of the host too; paths are no security boundary anyway (RFC 6265 §8.5),
//! while the prefix is one. Without Secure (development over http), or with a COOKIE_DOMAIN
//! (the cookies must reach subdomains, which the prefix forbids), the names carry no prefix,
//! and the refresh cookie keeps `Path=/api/auth`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use baatcheet_auth_api::v1 as pb;
use cookie::{Cookie, time::Duration as CookieDuration};
use prost_types::Timestamp;

use crate::config::CookiePolicy;

/// Name and path of one token cookie under a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSpec {
    pub name: &'static str,
    pub path: &'static str,
}

/// Whether the policy allows the `__Host-` prefix: Secure and host-only.
pub fn host_prefixed(policy: &CookiePolicy) -> bool {
    policy.secure && policy.domain.is_none()
}

/// The access token cookie: sent with every request to the host.
pub fn access_cookie(policy: &CookiePolicy) -> CookieSpec {
    if host_prefixed(policy) {
        CookieSpec {
            name: "__Host-accessToken",
            path: "/",
        }
    } else {
        CookieSpec {
            name: "accessToken",
            path: "/",
        }
    }
}

/// The refresh token cookie: only for the auth API, unless the `__Host-` prefix needs `Path=/`.
pub fn refresh_cookie(policy: &CookiePolicy) -> CookieSpec {
    if host_prefixed(policy) {
        CookieSpec {
            name: "__Host-refreshToken",
            path: "/",
        }
    } else {
        CookieSpec {
            name: "refreshToken",
            path: crate::api::API_PREFIX,
        }
    }
}

/// The id of this browser's pending sign-up: only for the auth API.
pub fn registration_cookie(policy: &CookiePolicy) -> CookieSpec {
    pending_cookie(policy, "__Host-registrationId", "registrationId")
}

/// The id of this browser's pending password reset: only for the auth API.
pub fn reset_cookie(policy: &CookiePolicy) -> CookieSpec {
    pending_cookie(policy, "__Host-resetId", "resetId")
}

/// The id of this browser's pending sign-in by emailed code: only for the auth API.
pub fn login_code_cookie(policy: &CookiePolicy) -> CookieSpec {
    pending_cookie(policy, "__Host-loginId", "loginId")
}

/// The id of this browser's sign-in waiting for its second factor: only for the auth API.
pub fn mfa_cookie(policy: &CookiePolicy) -> CookieSpec {
    pending_cookie(policy, "__Host-mfaChallenge", "mfaChallenge")
}

/// The id of this browser's passwordless sign-in waiting for its passkey: only for the auth
/// API.
pub fn passkey_login_cookie(policy: &CookiePolicy) -> CookieSpec {
    pending_cookie(policy, "__Host-passkeyLogin", "passkeyLogin")
}

fn pending_cookie(
    policy: &CookiePolicy,
    prefixed: &'static str,
    plain: &'static str,
) -> CookieSpec {
    if host_prefixed(policy) {
        CookieSpec {
            name: prefixed,
            path: "/",
        }
    } else {
        CookieSpec {
            name: plain,
            path: crate::api::API_PREFIX,
        }
    }
}

/// `Set-Cookie` headers, ready for `AppendHeaders`.
pub type SetCookies = [(HeaderName, HeaderValue); 2];

/// One `Set-Cookie` header.
pub type SetCookie = [(HeaderName, HeaderValue); 1];

/// A cookie holding a pending request's id, for the browser's session (the service ends the
/// request anyway when its time is up).
pub fn hold(policy: &CookiePolicy, spec: CookieSpec, id: &str) -> SetCookie {
    [set_cookie(policy, spec, id, None)]
}

/// Deletes one cookie (a pending request that is done).
pub fn forget(policy: &CookiePolicy, spec: CookieSpec) -> SetCookie {
    [set_cookie(policy, spec, "", Some(0))]
}

/// Both cookies of a new token pair; each lives as long as its token.
pub fn issue(policy: &CookiePolicy, tokens: &pb::TokenPair) -> SetCookies {
    [
        set_cookie(
            policy,
            access_cookie(policy),
            &tokens.access_token,
            max_age(tokens.access_token_expire_time.as_ref()),
        ),
        set_cookie(
            policy,
            refresh_cookie(policy),
            &tokens.refresh_token,
            max_age(tokens.refresh_token_expire_time.as_ref()),
        ),
    ]
}

/// Headers that delete both cookies (same name, path and domain; Max-Age=0).
pub fn clear(policy: &CookiePolicy) -> SetCookies {
    [
        set_cookie(policy, access_cookie(policy), "", Some(0)),
        set_cookie(policy, refresh_cookie(policy), "", Some(0)),
    ]
}

/// The cookies of the request, as sent.
fn sent(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'_>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
}

/// The value of cookie `name` in the request, if any and not empty (the request's handlers
/// read theirs together, with [`read_all`]).
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    let [value] = read_all(headers, [name]);
    value
}

/// The values of cookies `names` in the request (each the first one sent that is not empty),
/// read in one pass over its `Cookie` headers.
pub fn read_all<const N: usize>(headers: &HeaderMap, names: [&str; N]) -> [Option<String>; N] {
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    for cookie in sent(headers).filter(|c| !c.value().is_empty()) {
        if let Some(i) = names.iter().position(|name| *name == cookie.name()) {
            found[i].get_or_insert_with(|| cookie.value().to_owned());
        }
    }
    found
}

/// The cookies that act for the browser under the policy's names: the two tokens, then the
/// ids of pending requests (sign-up, reset, second factor, sign-in by code, passkey sign-in).
pub fn acting(policy: &CookiePolicy) -> [CookieSpec; 7] {
    [
        access_cookie(policy),
        refresh_cookie(policy),
        registration_cookie(policy),
        reset_cookie(policy),
        mfa_cookie(policy),
        login_code_cookie(policy),
        passkey_login_cookie(policy),
    ]
}

/// Whether the request carries any cookie that acts for the browser under the policy's names:
/// a token, or a pending request's id (the CSRF check cares).
pub fn has_auth_cookie(headers: &HeaderMap, policy: &CookiePolicy) -> bool {
    let names = acting(policy).map(|spec| spec.name);
    sent(headers).any(|c| !c.value().is_empty() && names.contains(&c.name()))
}

fn set_cookie(
    policy: &CookiePolicy,
    CookieSpec { name, path }: CookieSpec,
    value: &str,
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

    fn tokens() -> pb::TokenPair {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        pb::TokenPair {
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
        }
    }

    fn parsed(set_cookies: SetCookies) -> [Cookie<'static>; 2] {
        set_cookies.map(|(_, v)| Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
    }

    #[test]
    fn pending_request_cookies_follow_the_policy() {
        let plain = policy(SameSite::Strict, false, None);
        let secure = policy(SameSite::Lax, true, None);
        let [(_, set)] = hold(&plain, registration_cookie(&plain), "abc");
        let set = set.to_str().unwrap();
        for part in [
            "registrationId=abc",
            "HttpOnly",
            "Path=/api/auth",
            "SameSite=Strict",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Max-Age"), "a session cookie: {set}");
        let [(_, set)] = hold(&secure, reset_cookie(&secure), "xyz");
        let set = set.to_str().unwrap();
        for part in ["__Host-resetId=xyz", "Secure", "Path=/", "HttpOnly"] {
            assert!(set.contains(part), "{set}");
        }
        let [(_, gone)] = forget(&plain, reset_cookie(&plain));
        assert!(gone.to_str().unwrap().contains("Max-Age=0"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "registrationId=abc".parse().unwrap());
        assert!(
            has_auth_cookie(&h, &plain),
            "an id acts for the browser too"
        );
    }

    #[test]
    fn issued_cookies_carry_the_policy() {
        let [access, refresh] = issue(
            &policy(SameSite::Strict, true, Some("example.com")),
            &tokens(),
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
        assert!(refresh.starts_with("refreshToken=r_1"), "{refresh}");
        assert!(refresh.contains("Path=/api/auth"), "{refresh}");
    }

    #[test]
    fn secure_host_only_cookies_take_the_host_prefix() {
        let secure = policy(SameSite::Lax, true, None);
        let [access, refresh] = parsed(issue(&secure, &tokens()));
        assert_eq!(
            (access.name(), access.value()),
            ("__Host-accessToken", "a.b.c")
        );
        assert_eq!(
            (refresh.name(), refresh.value()),
            ("__Host-refreshToken", "r_1")
        );
        // What a browser demands of a `__Host-` cookie: Secure, Path=/, no Domain.
        for c in [&access, &refresh] {
            assert_eq!(c.secure(), Some(true), "{c}");
            assert_eq!(c.path(), Some("/"), "{c}");
            assert_eq!(c.domain(), None, "{c}");
            assert_eq!(c.http_only(), Some(true), "{c}");
        }
        let [access, refresh] = parsed(clear(&secure));
        assert_eq!(access.name(), "__Host-accessToken");
        assert_eq!(refresh.name(), "__Host-refreshToken");
        assert_eq!(refresh.path(), Some("/"));
        assert_eq!(refresh.max_age(), Some(CookieDuration::seconds(0)));
    }

    #[test]
    fn without_secure_or_with_a_domain_names_and_paths_stay_plain() {
        for plain in [
            policy(SameSite::Strict, false, None),
            policy(SameSite::Strict, true, Some("example.com")),
        ] {
            let [access, refresh] = parsed(issue(&plain, &tokens()));
            assert_eq!((access.name(), access.path()), ("accessToken", Some("/")));
            assert_eq!(
                (refresh.name(), refresh.path()),
                ("refreshToken", Some("/api/auth"))
            );
        }
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
        let plain = policy(SameSite::Strict, false, None);
        assert_eq!(read(&h, access_cookie(&plain).name).as_deref(), Some("abc"));
        assert_eq!(read(&h, refresh_cookie(&plain).name), None);
        assert!(has_auth_cookie(&h, &plain));
    }

    #[test]
    fn many_cookies_are_read_in_one_pass_each_the_first_sent_that_is_not_empty() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "refreshToken=; accessToken=first; registrationId=r"
                .parse()
                .unwrap(),
        );
        h.append(
            header::COOKIE,
            "accessToken=second; refreshToken=later".parse().unwrap(),
        );
        let plain = policy(SameSite::Strict, false, None);
        let names = acting(&plain).map(|spec| spec.name);
        let [access, refresh, registration, reset, ..] = read_all(&h, names);
        assert_eq!(access.as_deref(), Some("first"));
        assert_eq!(refresh.as_deref(), Some("later"), "an empty one is skipped");
        assert_eq!(registration.as_deref(), Some("r"));
        assert_eq!(reset, None);
        // The pending requests' ids act for the browser too.
        let mut only_pending = HeaderMap::new();
        only_pending.insert(header::COOKIE, "theme=x; registrationId=r".parse().unwrap());
        assert!(has_auth_cookie(&only_pending, &plain));
        only_pending.insert(header::COOKIE, "theme=x; registrationId=".parse().unwrap());
        assert!(!has_auth_cookie(&only_pending, &plain));
    }

    #[test]
    fn only_the_configured_names_count() {
        // A plain `accessToken` (tossed by a sibling subdomain, say) is not the prefixed cookie.
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "accessToken=abc".parse().unwrap());
        let secure = policy(SameSite::Strict, true, None);
        assert_eq!(read(&h, access_cookie(&secure).name), None);
        assert!(!has_auth_cookie(&h, &secure));
        h.insert(header::COOKIE, "__Host-accessToken=abc".parse().unwrap());
        assert_eq!(
            read(&h, access_cookie(&secure).name).as_deref(),
            Some("abc")
        );
        assert!(has_auth_cookie(&h, &secure));
        assert!(!has_auth_cookie(&h, &policy(SameSite::Strict, false, None)));
    }
}
