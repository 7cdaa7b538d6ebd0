//! AUTH_SERVICE_TOKEN: a service with SERVICE_TOKENS believes the client address and user agent
//! the gateway forwards only when the gateway's calls carry one of its tokens.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const BROWSER_IP: &str = "203.0.113.7";

/// Logs in through `gateway` from behind one proxy that says the browser is [`BROWSER_IP`];
/// returns the session the service recorded for it.
async fn recorded_session(gateway: &TestApp, identifier: &str) -> Value {
    let response = gateway
        .request(Method::POST, "/api/auth/login")
        .header("x-forwarded-for", BROWSER_IP)
        .json(&json!({ "identifier": identifier, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session = session_from(&response);
    let (status, body) = read(
        gateway
            .with_session(Method::GET, "/api/auth/sessions", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    body["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .cloned()
        .expect("the current session")
}

/// A gateway in front of `app`'s service, behind one proxy, with `token` as AUTH_SERVICE_TOKEN.
async fn gateway(app: &TestApp, token: Option<&str>) -> TestApp {
    let mut env = Env::default().gateway("TRUST_PROXY", "1");
    if let Some(token) = token {
        env = env.gateway("AUTH_SERVICE_TOKEN", token);
    }
    spawn_gateway(&format!("http://{}", app.grpc_addr), env.gateway).await
}

#[tokio::test]
async fn the_service_believes_the_forwarded_client_only_with_the_token() {
    let (token, line) = auth_service::crypto::mint_service_token("gateway").unwrap();
    let (stranger, _) = auth_service::crypto::mint_service_token("gateway").unwrap();
    // The service trusts loopback peers (TRUSTED_PROXIES), but with a token configured only a
    // caller presenting it is believed.
    let app = spawn_app_with(Env::default().service("SERVICE_TOKENS", &line)).await;
    let (username, _, _) = app.signed_up_user().await;

    for (token, believed) in [
        (None, false),
        (Some(stranger.as_str()), false),
        (Some(token.as_str()), true),
    ] {
        let gateway = gateway(&app, token).await;
        let (status, _) = read(
            gateway
                .request(Method::GET, "/readyz")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let session = recorded_session(&gateway, &username).await;
        let what = match token {
            None => "no token",
            Some(t) if t == stranger => "a token the service does not know",
            Some(_) => "the service's token",
        };
        if believed {
            assert_eq!(session["clientIp"], BROWSER_IP, "{what}: {session:#}");
            assert_eq!(session["userAgent"], USER_AGENT, "{what}: {session:#}");
        } else {
            // The gateway's own address and gRPC client, as the service sees the connection.
            assert_eq!(session["clientIp"], "127.0.0.1", "{what}: {session:#}");
            assert_ne!(session["userAgent"], USER_AGENT, "{what}: {session:#}");
        }
    }
}

#[tokio::test]
async fn without_service_tokens_the_service_believes_its_trusted_proxies() {
    // No SERVICE_TOKENS: loopback is a trusted proxy by default, with or without a token.
    let app = spawn_app().await;
    let (username, _, _) = app.signed_up_user().await;
    let (token, _) = auth_service::crypto::mint_service_token("gateway").unwrap();
    for token in [None, Some(token.as_str())] {
        let gateway = gateway(&app, token).await;
        let session = recorded_session(&gateway, &username).await;
        assert_eq!(
            session["clientIp"],
            BROWSER_IP,
            "token: {}: {session:#}",
            token.is_some()
        );
    }
}
