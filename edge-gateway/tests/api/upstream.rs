//! What the gateway sends the auth service: bounded tokens and metadata, over a pool of HTTP/2
//! connections that one refused request cannot take down, and that heals at the next call.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};

use crate::helpers::*;

/// Environment where the per-IP limit is far out of reach: it is not what these tests measure.
fn unlimited() -> Env {
    Env::default()
        .gateway("RATE_LIMIT_PER_SECOND", "1000000")
        .gateway("RATE_LIMIT_BURST", "1000000")
}

#[tokio::test]
async fn oversized_access_tokens_are_refused_at_the_edge() {
    let app = spawn_app_with(unlimited()).await;
    for (name, value) in [
        (
            header::COOKIE,
            format!("accessToken={}", "a".repeat(20 * 1024)),
        ),
        (
            header::COOKIE,
            format!("accessToken={}", "a".repeat(100 * 1024)),
        ),
        (
            header::AUTHORIZATION,
            format!("Bearer {}", "a".repeat(100 * 1024)),
        ),
    ] {
        let size = value.len();
        for path in ["/api/auth/me", "/api/auth/sessions"] {
            let response = app
                .request(Method::GET, path)
                .header(name.clone(), value.clone())
                .send()
                .await
                .unwrap();
            let (status, body) = read(response).await;
            assert_error(
                status,
                &body,
                StatusCode::UNAUTHORIZED,
                "ACCESS_TOKEN_INVALID",
            );
            assert!(body.to_string().len() < 1024, "{name} of {size} bytes");
        }
    }
    // No call reached the service, and it is as well as before.
    let (status, body) = read(app.request(Method::GET, "/readyz").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
}

#[tokio::test]
async fn an_oversized_refresh_cookie_is_refused_and_cleared() {
    let app = spawn_app_with(unlimited()).await;
    let cookie = format!("refreshToken={}", "r".repeat(100 * 1024));
    let response = app
        .request(Method::POST, "/api/auth/refresh")
        .header(header::COOKIE, cookie.clone())
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(&response);
    let (status, body) = read(response).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "REFRESH_TOKEN_INVALID",
    );
    assert_eq!(cleared["refreshToken"].cookie.value(), "");

    // Logout never forwards it; with nothing else to name a session it is a 401, and the
    // cookies are cleared anyway.
    let response = app
        .request(Method::POST, "/api/auth/logout")
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookies(&response).len(), 2);
    let (status, body) = read(response).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    // With a live access cookie beside it, that session ends: clearing the cookies never
    // leaves it alive.
    let (_, _, session) = app.signed_up_user().await;
    let response = app
        .request(Method::POST, "/api/auth/logout")
        .header(
            header::COOKIE,
            format!(
                "accessToken={}; refreshToken={}",
                session.access,
                "r".repeat(100 * 1024)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session ended");
}

#[tokio::test]
async fn a_stale_oversized_cookie_does_not_stop_a_sign_in() {
    let app = spawn_app_with(unlimited()).await;
    let (username, _, _) = app.signed_up_user().await;
    let response = app
        .request(Method::POST, "/api/auth/login")
        .header(
            header::COOKIE,
            format!("accessToken={}", "a".repeat(100 * 1024)),
        )
        .json(&serde_json::json!({ "identifier": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session = session_from(&response);
    let (status, _) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_unusable_request_id_is_replaced_not_forwarded() {
    let app = spawn_app_with(unlimited()).await;
    for id in ["x".repeat(100 * 1024), "two words".to_owned()] {
        let response = app
            .request(Method::GET, "/.well-known/jwks.json")
            .header("x-request-id", id.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(
            echoed.len(),
            36,
            "a fresh UUID instead of {} bytes",
            id.len()
        );
    }
}

#[tokio::test]
async fn oversized_cookies_of_one_client_do_not_fail_anyone_else() {
    let app = spawn_app_with(unlimited()).await;
    let (_, _, session) = app.signed_up_user().await;
    let attacker_cookie = format!("accessToken={}", "a".repeat(100 * 1024));

    let attack = (0..4).map(|_| {
        let client = app.client.clone();
        let url = app.url("/api/auth/me");
        let cookie = attacker_cookie.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..50 {
                let response = client
                    .get(&url)
                    .header(header::COOKIE, cookie.clone())
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status());
            }
            statuses
        })
    });
    let victim = (0..4).map(|_| {
        let client = app.client.clone();
        let url = app.url("/api/auth/me");
        let cookie = session.cookie_header();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..50 {
                let response = client
                    .get(&url)
                    .header(header::COOKIE, cookie.clone())
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status());
            }
            statuses
        })
    });
    let (attack, victim): (Vec<_>, Vec<_>) = (attack.collect(), victim.collect());
    for task in victim {
        let statuses = task.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "the signed-in user got {statuses:?}"
        );
    }
    for task in attack {
        let statuses = task.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
    }
    // Still serving afterwards.
    let (status, _) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::OK);
    let response = app.request(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Established TCP connections (IPv4) of this machine whose remote end is `port`: the client
/// side of every connection to the auth service listening there.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields
                .get(2)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            remote_port == Some(port) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// Waits (up to 10 s) until `connections_to(port)` is `expected`, and returns what it was last.
async fn settle_connections(port: u16, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = connections_to(port);
        if n == expected || std::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn calls_are_spread_over_a_pool_that_heals_at_the_next_call() {
    let data = tempfile::tempdir().unwrap();
    let service = start_service(data.path(), "127.0.0.1:0", vec![]).await;
    let port = service.addr.port();
    let gateway = spawn_gateway(
        &format!("http://{}", service.addr),
        unlimited().gateway("AUTH_SERVICE_CONNECTIONS", "4").gateway,
    )
    .await;
    let jwks = || async {
        gateway
            .request(Method::GET, "/.well-known/jwks.json")
            .send()
            .await
            .unwrap()
            .status()
    };
    for _ in 0..8 {
        assert_eq!(jwks().await, StatusCode::OK);
    }
    // Four connections, not one: a balance over identical endpoints keyed by URI would be one.
    assert_eq!(settle_connections(port, 4).await, 4);

    // The service goes away (closing every connection) and comes back on the same port.
    service.stop.send(()).unwrap();
    service.stopped.await.unwrap();
    assert_eq!(settle_connections(port, 0).await, 0, "all four were closed");
    let service = start_service(data.path(), &service.addr.to_string(), vec![]).await;

    // Each lost connection is replaced by the next call that picks it: no call fails.
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(jwks().await);
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(settle_connections(port, 4).await, 4);
    drop(service);
}

#[tokio::test]
async fn no_call_fails_after_an_outage_for_an_error_of_the_outage() {
    let data = tempfile::tempdir().unwrap();
    let service = start_service(data.path(), "127.0.0.1:0", vec![]).await;
    let gateway = spawn_gateway(
        &format!("http://{}", service.addr),
        unlimited().gateway("AUTH_SERVICE_CONNECTIONS", "4").gateway,
    )
    .await;
    let jwks = || async {
        read(
            gateway
                .request(Method::GET, "/.well-known/jwks.json")
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    for _ in 0..8 {
        assert_eq!(jwks().await.0, StatusCode::OK);
    }
    service.stop.send(()).unwrap();
    service.stopped.await.unwrap();

    // While the service is down, calls fail, and each connection tries (and fails) to connect.
    for _ in 0..8 {
        let (status, body) = jwks().await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
        );
    }
    let service = start_service(data.path(), &service.addr.to_string(), vec![]).await;
    // Back: a balancer that polled its connections in the background would now hand each of
    // them a connect error from the outage to fail one call with.
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(jwks().await.0);
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    drop(service);
}
