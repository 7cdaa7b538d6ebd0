//! login, refresh, logout (POST and GET), logout-all, and the bearer header for non-browsers.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn login_takes_identifier_email_or_username() {
    let app = spawn_app().await;
    let (username, email, _) = app.signed_up_user().await;
    for body in [
        json!({ "identifier": username, "password": PASSWORD }),
        json!({ "identifier": email, "password": PASSWORD }),
        json!({ "email": email, "password": PASSWORD }),
        json!({ "username": username, "password": PASSWORD }),
    ] {
        let response = app.post_json("/api/auth/login", body.clone()).await;
        let session = session_from(&response);
        let (status, reply) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{body} -> {reply:#}");
        assert_eq!(reply["data"]["user"]["username"], username);
        assert!(reply["data"]["session"]["accessTokenExpiresAt"].is_string());
        assert!(!reply.to_string().contains(&session.access));
    }
}

#[tokio::test]
async fn login_failures() {
    let app = spawn_app().await;
    let (username, _, _) = app.signed_up_user().await;
    let (status, body) = read(
        app.post_json(
            "/api/auth/login",
            json!({ "identifier": username, "password": "wrong password" }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    );

    // The field is named as the client named it.
    let (status, body) = read(
        app.post_json("/api/auth/login", json!({ "email": "", "password": "" }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
    assert!(
        detail_fields(&body).contains(&"email".to_owned()),
        "{body:#}"
    );
}

#[tokio::test]
async fn too_many_failed_logins_are_429_with_retry_after() {
    let app = spawn_app_with(Env::default().service("LOGIN_MAX_ATTEMPTS", "2")).await;
    let (username, _, _) = app.signed_up_user().await;
    let mut last = None;
    for _ in 0..4 {
        let response = app
            .post_json(
                "/api/auth/login",
                json!({ "identifier": username, "password": "wrong password" }),
            )
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            last = Some(response);
            break;
        }
    }
    let response = last.expect("no 429 after 4 failed logins");
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let (status, body) = read(response).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "LOGIN_RATE_LIMITED",
    );
}

#[tokio::test]
async fn refresh_rotates_both_cookies() {
    let app = spawn_app_with(Env::default().service("REFRESH_REUSE_GRACE", "0s")).await;
    let (_, _, session) = app.signed_up_user().await;
    let response = app
        .with_session(Method::POST, "/api/auth/refresh", &session)
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&response);
    let fresh = session_from(&response);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(body["data"]["sessionId"].is_string());
    assert!(body["data"]["refreshTokenExpiresAt"].is_string());
    assert_ne!(fresh.refresh, session.refresh);
    assert_eq!(cookies["refreshToken"].cookie.path(), Some("/api/auth"));
    assert_eq!(cookies["accessToken"].cookie.http_only(), Some(true));
    let (status, _) = app.get_me(&fresh).await;
    assert_eq!(status, StatusCode::OK);

    // The used refresh token, replayed: the session ends and the cookies are cleared.
    let response = app
        .with_session(Method::POST, "/api/auth/refresh", &session)
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(&response);
    let (status, body) = read(response).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "REFRESH_TOKEN_REUSED",
    );
    for name in ["accessToken", "refreshToken"] {
        assert_eq!(cleared[name].cookie.value(), "");
        assert_eq!(
            cleared[name].cookie.max_age().map(|d| d.whole_seconds()),
            Some(0)
        );
    }
    let (status, body) = app.get_me(&fresh).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "SESSION_REVOKED");
}

#[tokio::test]
async fn refresh_without_a_cookie_or_with_garbage_is_401() {
    let app = spawn_app().await;
    let (status, body) = read(
        app.request(Method::POST, "/api/auth/refresh")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    let (status, body) = read(
        app.request(Method::POST, "/api/auth/refresh")
            .header(header::COOKIE, "refreshToken=garbage")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "REFRESH_TOKEN_INVALID",
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_both_cookies() {
    let app = spawn_app().await;
    for method in [Method::POST, Method::GET] {
        let (_, _, session) = app.signed_up_user().await;
        let response = app
            .with_session(method.clone(), "/api/auth/logout", &session)
            .send()
            .await
            .unwrap();
        let cleared = set_cookies(&response);
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{method}: {body:#}");
        assert_eq!(body["success"], true);
        assert_eq!(cleared["accessToken"].cookie.path(), Some("/"));
        assert_eq!(cleared["refreshToken"].cookie.path(), Some("/api/auth"));
        for name in ["accessToken", "refreshToken"] {
            assert_eq!(cleared[name].cookie.value(), "", "{}", cleared[name].raw);
            assert_eq!(
                cleared[name].cookie.max_age().map(|d| d.whole_seconds()),
                Some(0)
            );
        }
        let (status, body) = app.get_me(&session).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "SESSION_REVOKED");
    }
}

#[tokio::test]
async fn logout_with_only_an_access_token_or_nothing() {
    let app = spawn_app().await;
    let (_, _, session) = app.signed_up_user().await;
    let response = app
        .request(Method::POST, "/api/auth/logout")
        .bearer_auth(&session.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let response = app
        .request(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookies(&response).len(), 2, "cookies cleared anyway");
    let (status, body) = read(response).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let app = spawn_app().await;
    let (username, _, first) = app.signed_up_user().await;
    let second = app.login(&username, PASSWORD).await;
    let response = app
        .with_session(Method::POST, "/api/auth/logout-all", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookies(&response).len(), 2);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["revokedSessionCount"], 2);
    for session in [&first, &second] {
        let (status, _) = app.get_me(session).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = read(
        app.request(Method::POST, "/api/auth/logout-all")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
}

#[tokio::test]
async fn non_browser_clients_may_send_a_bearer_token() {
    let app = spawn_app().await;
    let (username, _, session) = app.signed_up_user().await;
    let (status, body) = read(
        app.request(Method::GET, "/api/auth/me")
            .bearer_auth(&session.access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["username"], username);
}
