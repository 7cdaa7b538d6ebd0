//! me, sessions, DELETE sessions/{id}: what the caller sees of itself, and every 401.

use reqwest::{Method, StatusCode, header};

use crate::helpers::*;

#[tokio::test]
async fn me_needs_a_valid_access_token() {
    let app = spawn_app_with(Env::default().service("ACCESS_TOKEN_EXPIRY", "1s")).await;
    let (status, body) = read(
        app.request(Method::GET, "/api/auth/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    let (status, body) = read(
        app.request(Method::GET, "/api/auth/me")
            .header(header::COOKIE, "accessToken=not.a.jwt")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "ACCESS_TOKEN_INVALID",
    );

    let (_, _, session) = app.signed_up_user().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = app.get_me(&session).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "ACCESS_TOKEN_EXPIRED",
    );
    // The refresh cookie outlives it: refresh, and "me" works again.
    let response = app
        .with_session(Method::POST, "/api/auth/refresh", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get_me(&session_from(&response)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sessions_list_marks_this_one_and_records_the_client() {
    let app = spawn_app().await;
    let (username, _, _first) = app.signed_up_user().await;
    let second = app.login(&username, PASSWORD).await;
    let (status, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let sessions = body["data"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    for s in sessions {
        assert_eq!(s["userAgent"], USER_AGENT, "{s:#}");
        assert_eq!(s["clientIp"], "127.0.0.1", "{s:#}");
        assert!(s["createdAt"].is_string() && s["expiresAt"].is_string());
    }
}

#[tokio::test]
async fn revoking_a_session() {
    let app = spawn_app().await;
    let (username, _, first) = app.signed_up_user().await;
    let second = app.login(&username, PASSWORD).await;
    let (_, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other = body["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("the other session")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let path = format!("/api/auth/sessions/{other}");
    let (status, body) = read(
        app.with_session(Method::DELETE, &path, &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (status, _) = app.get_me(&first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Ended already: not found.
    let (status, body) = read(
        app.with_session(Method::DELETE, &path, &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND");

    let (status, body) = read(
        app.with_session(Method::DELETE, "/api/auth/sessions/not-a-session", &second)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
    assert_eq!(detail_fields(&body), ["id"], "the path parameter's name");

    let (status, body) = read(app.request(Method::DELETE, &path).send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
}
