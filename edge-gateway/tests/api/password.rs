//! password/forgot, password/reset, password/change.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn forgot_then_reset_ends_every_session_and_clears_cookies() {
    let app = spawn_app().await;
    let (username, email, session) = app.signed_up_user().await;
    let (status, body) = read(
        app.post_json("/api/auth/password/forgot", json!({ "email": email }))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(body["data"]["codeTtlSeconds"].as_i64().unwrap() > 0);
    let code = app.next_code(&email).await;

    let response = app
        .post_json(
            "/api/auth/password/reset",
            json!({ "email": email, "otp": code, "newPassword": NEW_PASSWORD }),
        )
        .await;
    let cleared = set_cookies(&response);
    assert_eq!(
        cleared.len(),
        3,
        "both tokens and the reset's id: {cleared:?}"
    );
    assert!(
        cleared
            .values()
            .all(|c| c.cookie.max_age() == Some(cookie::time::Duration::ZERO))
    );
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["revokedSessionCount"], 1);
    let (status, _) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    app.login(&username, NEW_PASSWORD).await;
    let (status, body) = read(
        app.post_json(
            "/api/auth/login",
            json!({ "identifier": username, "password": PASSWORD }),
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
}

#[tokio::test]
async fn forgot_answers_the_same_for_an_unknown_email() {
    let app = spawn_app().await;
    let (_, email) = new_identity();
    let (status, body) = read(
        app.post_json("/api/auth/password/forgot", json!({ "email": email }))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (status, body) = read(
        app.post_json("/api/auth/password/forgot", json!({ "email": "x" }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
}

#[tokio::test]
async fn reset_failures() {
    let app = spawn_app().await;
    let (_, email, _) = app.signed_up_user().await;
    // A browser that never asked for a reset has no reset cookie.
    let (status, body) = read(
        app.post_json(
            "/api/auth/password/reset",
            json!({ "email": email, "code": "123456", "newPassword": NEW_PASSWORD }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "RESET_ID_REQUIRED",
    );

    app.post_json("/api/auth/password/forgot", json!({ "email": email }))
        .await;
    let code = app.next_code(&email).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = read(
        app.post_json(
            "/api/auth/password/reset",
            json!({ "email": email, "otp": wrong, "newPassword": NEW_PASSWORD }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CODE_INVALID",
    );
    assert_eq!(detail_fields(&body), ["otp"]);

    let (status, body) = read(
        app.post_json(
            "/api/auth/password/reset",
            json!({ "email": email, "otp": code, "newPassword": "short" }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
    assert_eq!(detail_fields(&body), ["newPassword"]);
}

#[tokio::test]
async fn change_password_keeps_this_session_and_ends_the_others() {
    let app = spawn_app().await;
    let (username, _, session) = app.signed_up_user().await;
    let other = app.login(&username, PASSWORD).await;

    let (status, body) = read(
        app.with_session(Method::POST, "/api/auth/password/change", &session)
            .json(&json!({ "currentPassword": "not it at all", "newPassword": NEW_PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "WRONG_PASSWORD",
    );
    assert_eq!(detail_fields(&body), ["currentPassword"]);

    let (status, body) = read(
        app.with_session(Method::POST, "/api/auth/password/change", &session)
            .json(&json!({ "currentPassword": PASSWORD, "newPassword": NEW_PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["revokedSessionCount"], 1);
    let (status, _) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get_me(&other).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.login(&username, NEW_PASSWORD).await;

    let (status, body) = read(
        app.request(Method::POST, "/api/auth/password/change")
            .json(&json!({ "currentPassword": PASSWORD, "newPassword": NEW_PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
}
