//! The per-IP limit by client network: an IPv6 client owns a /64, so every address in it shares
//! one bucket.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn the_addresses_of_one_ipv6_64_share_one_bucket() {
    let app = spawn_app_with(
        Env::default()
            .gateway("TRUST_PROXY", "1")
            .gateway("RATE_LIMIT_PER_SECOND", "1")
            .gateway("RATE_LIMIT_BURST", "3"),
    )
    .await;
    let jwks_from = |ip: String| {
        app.request(Method::GET, "/.well-known/jwks.json")
            .header("x-forwarded-for", ip)
            .send()
    };
    // Twenty fresh addresses of one /64. Keyed by address, each would have a full bucket of 3
    // and none would be refused.
    let mut passed = 0;
    let mut refused = None;
    for i in 1..=20 {
        let response = jwks_from(format!("2001:db8:aaaa:1:{i:x}::{i:x}"))
            .await
            .unwrap();
        match response.status() {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => refused = Some(response),
            other => panic!("{other}"),
        }
    }
    assert!(passed >= 3, "the burst of 3 is served: {passed}");
    let response = refused.expect("the /64 ran out of its one bucket");
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let (status, body) = read(response).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");

    // Another /64 (a neighbour in the same /48) has its own bucket.
    let response = jwks_from("2001:db8:aaaa:2::1".to_owned()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_service_still_hears_the_full_ipv6_address() {
    let app = spawn_app_with(Env::default().gateway("TRUST_PROXY", "1")).await;
    let (username, _, _) = app.signed_up_user().await;
    let response = app
        .request(Method::POST, "/api/auth/login")
        .header("x-forwarded-for", "2001:db8:aaaa:3:1:2:3:4")
        .json(&json!({ "identifier": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let session = session_from(&response);
    let (_, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let current = body["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .cloned()
        .unwrap();
    assert_eq!(current["clientIp"], "2001:db8:aaaa:3:1:2:3:4");
}

/// MAX_IN_FLIGHT: with its places taken by calls to an auth service that never answers, the
/// next call is refused at once (503 SERVER_BUSY, Retry-After) instead of queued; /healthz
/// still answers; and the places come back when those calls end.
#[tokio::test]
async fn past_max_in_flight_a_request_is_refused_at_once_not_queued() {
    // An "auth service" that accepts connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    let app = std::sync::Arc::new(
        spawn_gateway(
            &url,
            vec![
                ("MAX_IN_FLIGHT", "2".to_owned()),
                ("GRPC_TIMEOUT", "4s".to_owned()),
                ("REQUEST_TIMEOUT", "4s".to_owned()),
                ("RATE_LIMIT_PER_SECOND", "100000".to_owned()),
                ("RATE_LIMIT_BURST", "100000".to_owned()),
            ],
        )
        .await,
    );
    let login = |app: std::sync::Arc<TestApp>| async move {
        app.request(Method::POST, "/api/auth/login")
            .json(&json!({ "identifier": "someone", "password": PASSWORD }))
            .send()
            .await
            .unwrap()
    };
    let stuck: Vec<_> = (0..2).map(|_| tokio::spawn(login(app.clone()))).collect();

    // Once both are inside, the next one is refused, at once.
    let started = std::time::Instant::now();
    let refused = loop {
        let asked = std::time::Instant::now();
        let response = login(app.clone()).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            // The stuck calls wait 4 s (GRPC_TIMEOUT): a refusal queued behind them could not
            // come this soon.
            assert!(
                asked.elapsed() < std::time::Duration::from_secs(2),
                "refused after {:?}",
                asked.elapsed()
            );
            break response;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "never refused; last answer {}",
            response.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        stuck.iter().all(|s| !s.is_finished()),
        "refused while the two calls still wait: not queued behind them"
    );
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let (status, body) = read(refused).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_BUSY",
    );
    assert_eq!(body["error"]["retryAfterSeconds"], 1, "{body:#}");
    // Any route that calls the service is refused; /healthz answers.
    let jwks = || async {
        read(
            app.request(Method::GET, "/.well-known/jwks.json")
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (status, body) = jwks().await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_BUSY",
    );
    let healthz = app.request(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    // The health check goes through the pool but is never refused: /readyz reaches the
    // (silent) service and fails as unreachable, not as busy.
    let readyz = {
        let app = app.clone();
        tokio::spawn(async move {
            read(app.request(Method::GET, "/readyz").send().await.unwrap()).await
        })
    };

    let (status, body) = readyz.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:#}");
    assert_ne!(body["error"]["code"], "SERVER_BUSY", "{body:#}");

    // The two end (the auth service never answered them), and their places come back.
    for s in stuck {
        let (status, body) = read(s.await.unwrap()).await;
        assert_ne!(body["error"]["code"], "SERVER_BUSY", "{status} {body:#}");
    }
    let (status, body) = jwks().await;
    assert_ne!(body["error"]["code"], "SERVER_BUSY", "{status} {body:#}");
}
