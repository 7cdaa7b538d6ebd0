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
