//! Property tests of every parser of the edge that takes outside input: cookies, the
//! X-Forwarded-For chain, the CSRF origin check, request ids, the rate limiter's network key,
//! the configuration, and the bearer header (through a running gateway). None may panic;
//! each keeps its promise on well-formed input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderValue, header};
use edge_gateway::{
    client_ip, config::Config, cookies, csrf, ratelimit::ClientNetwork, request_id,
};
use proptest::prelude::*;
use reqwest::StatusCode;

use crate::helpers::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any string a header can carry (visible ASCII and spaces).
fn header_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~]{0,200}").unwrap()
}

fn headers_with(name: header::HeaderName, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
    h
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cookies_never_panic_and_find_what_was_set(
        noise in header_text(),
        value in "[A-Za-z0-9._-]{1,64}",
    ) {
        let _ = cookies::read(&headers_with(header::COOKIE, &noise), "accessToken");
        let line = format!("theme=dark; accessToken={value}; other=1");
        prop_assert_eq!(
            cookies::read(&headers_with(header::COOKIE, &line), "accessToken"),
            Some(value)
        );
    }

    #[test]
    fn forwarded_for_never_panics_and_takes_the_trusted_hop(
        noise in header_text(),
        hops in 0usize..6,
        chain in proptest::collection::vec(any::<[u8; 4]>(), 1..6),
    ) {
        let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let ip = client_ip::client_ip(peer, &headers_with(header::HeaderName::from_static("x-forwarded-for"), &noise), hops);
        if hops == 0 {
            prop_assert_eq!(ip, peer, "the header alone is never believed");
        }
        let entries: Vec<IpAddr> = chain.iter().map(|b| IpAddr::from(*b)).collect();
        let text = entries.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let xff = headers_with(header::HeaderName::from_static("x-forwarded-for"), &text);
        let got = client_ip::client_ip(peer, &xff, hops);
        let expected = match hops {
            0 => peer,
            h => entries[entries.len().saturating_sub(h)],
        };
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn the_csrf_origin_check_never_panics_and_wants_scheme_host_and_port(
        origin in header_text(),
        authority in proptest::option::of(header_text()),
        host in "[a-z]{1,12}\\.example",
        port in 1u16..,
    ) {
        let headers = headers_with(header::ORIGIN, &origin);
        let _ = csrf::trusted(&headers, authority.as_deref(), "https", |_| false);
        let authority = format!("{host}:{port}");
        let same = headers_with(header::ORIGIN, &format!("https://{host}:{port}"));
        prop_assert!(csrf::trusted(&same, Some(&authority), "https", |_| false));
        let other_scheme = headers_with(header::ORIGIN, &format!("http://{host}:{port}"));
        prop_assert!(!csrf::trusted(&other_scheme, Some(&authority), "https", |_| false));
        let other_port = headers_with(
            header::ORIGIN,
            &format!("https://{host}:{}", port.wrapping_add(1).max(1)),
        );
        prop_assume!(port.wrapping_add(1).max(1) != port);
        prop_assert!(!csrf::trusted(&other_port, Some(&authority), "https", |_| false));
    }

    #[test]
    fn request_ids_are_bounded(id in header_text()) {
        if let Ok(value) = HeaderValue::from_str(&id)
            && request_id::acceptable(&value)
        {
            prop_assert!(value.len() <= 128, "{}", id);
        }
    }

    #[test]
    fn one_ipv6_subscriber_is_one_network(prefix in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
        let ip = |host: u64| IpAddr::V6(Ipv6Addr::from_bits((u128::from(prefix) << 64) | u128::from(host)));
        prop_assert_eq!(ClientNetwork::of(ip(a)), ClientNetwork::of(ip(b)));
        let next = IpAddr::V6(Ipv6Addr::from_bits((u128::from(prefix.wrapping_add(1)) << 64) | u128::from(a)));
        prop_assert_ne!(ClientNetwork::of(ip(a)), ClientNetwork::of(next));
    }

    #[test]
    fn config_values_never_panic_and_errors_name_a_variable_that_was_set(
        picks in proptest::collection::vec((0usize..VARS.len(), header_text()), 1..6),
    ) {
        let set: std::collections::HashMap<&str, String> =
            picks.iter().map(|(i, v)| (VARS[*i], v.clone())).collect();
        if let Err(e) = Config::from_lookup(&|k| set.get(k).cloned()) {
            prop_assert!(set.contains_key(e.var), "{} names an unset variable", e.var);
        }
    }
}

/// Every variable the gateway reads (edge-gateway/README.md).
const VARS: &[&str] = &[
    "PORT",
    "HTTP_HOST",
    "AUTH_SERVICE_URL",
    "AUTH_SERVICE_CONNECTIONS",
    "APP_ENV",
    "NODE_ENV",
    "COOKIE_SAMESITE",
    "COOKIE_SECURE",
    "COOKIE_DOMAIN",
    "CORS_ORIGINS",
    "TRUST_PROXY",
    "RATE_LIMIT_PER_SECOND",
    "RATE_LIMIT_BURST",
    "REQUEST_TIMEOUT",
    "MAX_IN_FLIGHT",
    "GRPC_TIMEOUT",
    "SERVE_PAGE",
    "LOG_FORMAT",
    "SHUTDOWN_GRACE",
    "METRICS_ADDR",
    "AUTH_SERVICE_TOKEN",
    "AUTH_SERVICE_TOKEN_FILE",
];

/// Arbitrary `Authorization` values on /api/auth/me: always 401, never a server error.
#[tokio::test]
async fn any_bearer_header_is_a_401_never_a_server_error() {
    let app = spawn_app().await;
    // A fixed seed, so a failure names a case that comes back.
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let values = prop_oneof![
        header_text(),
        "[Bb][Ee][Aa][Rr][Ee][Rr] [ -~]{0,300}",
        "Bearer [A-Za-z0-9._-]{4000,4200}",
    ];
    let seen: Vec<String> = (0..48)
        .map(|_| proptest::strategy::ValueTree::current(&values.new_tree(&mut runner).unwrap()))
        .collect();
    for value in seen {
        let Ok(header_value) = HeaderValue::from_str(&value) else {
            continue;
        };
        let response = app
            .request(reqwest::Method::GET, "/api/auth/me")
            .header(header::AUTHORIZATION, header_value)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value:?}");
    }
}
