//! register, verify-otp, resend-otp: success, every failure, and the cookies a sign-up sets.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sign_up_sets_http_only_cookies_and_keeps_tokens_out_of_the_body() {
    let app = spawn_app().await;
    let (username, email) = new_identity();
    let (status, body) = app.register(&username, &email).await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    assert_eq!(body["statusCode"], 201);
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["email"], email);
    assert!(body["data"]["codeExpiresAt"].is_string());
    assert!(body["data"]["attemptsRemaining"].as_i64().unwrap() > 0);
    assert!(body["message"].is_string());

    let code = app.next_code(&email).await;
    let response = app
        .post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": code }),
        )
        .await;
    let cookies = set_cookies(&response);
    let session = session_from(&response);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["username"], username);
    assert_eq!(body["data"]["user"]["email"], email);
    assert_eq!(body["data"]["user"]["status"], "online");
    assert!(body["data"]["session"]["sessionId"].is_string());
    let text = body.to_string();
    assert!(!text.contains(&session.access) && !text.contains(&session.refresh));

    let access = &cookies["accessToken"];
    assert_eq!(access.cookie.http_only(), Some(true), "{}", access.raw);
    assert_eq!(access.cookie.path(), Some("/"));
    assert_eq!(
        access.cookie.same_site(),
        Some(cookie::SameSite::Strict),
        "{}",
        access.raw
    );
    assert_eq!(access.cookie.secure(), None, "development is not Secure");
    // ACCESS_TOKEN_EXPIRY defaults to 15 minutes.
    let max_age = access.cookie.max_age().expect("Max-Age").whole_seconds();
    assert!((895..=900).contains(&max_age), "{}", access.raw);

    let refresh = &cookies["refreshToken"];
    assert_eq!(refresh.cookie.http_only(), Some(true));
    assert_eq!(refresh.cookie.path(), Some("/api/auth"));
    // REFRESH_TOKEN_EXPIRY defaults to 7 days.
    let max_age = refresh.cookie.max_age().expect("Max-Age").whole_seconds();
    assert!(
        (7 * 86400 - 5..=7 * 86400).contains(&max_age),
        "{}",
        refresh.raw
    );

    let (status, me) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::OK, "{me:#}");
    assert_eq!(me["data"]["user"]["username"], username);
}

#[tokio::test]
async fn verify_accepts_code_as_well_as_otp() {
    let app = spawn_app().await;
    let (username, email) = new_identity();
    app.register(&username, &email).await;
    let code = app.next_code(&email).await;
    let response = app
        .post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "code": code }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_fields_are_422_with_json_field_names() {
    let app = spawn_app().await;
    let (status, body) = read(
        app.post_json(
            "/api/auth/register",
            json!({ "username": "x", "email": "not-an-email", "password": "short", "avatarUrl": "ftp://x" }),
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
    let fields = detail_fields(&body);
    for field in ["username", "email", "password", "avatarUrl"] {
        assert!(fields.iter().any(|f| f == field), "{field}: {body:#}");
    }
    assert!(body["error"]["details"][0]["message"].is_string());
}

#[tokio::test]
async fn taken_email_and_username_are_409() {
    let app = spawn_app().await;
    let (username, email, _) = app.signed_up_user().await;
    let (other_name, other_email) = new_identity();

    let (status, body) = app.register(&other_name, &email).await;
    assert_error(status, &body, StatusCode::CONFLICT, "EMAIL_TAKEN");
    assert_eq!(detail_fields(&body), ["email"]);

    let (status, body) = app.register(&username, &other_email).await;
    assert_error(status, &body, StatusCode::CONFLICT, "USERNAME_TAKEN");
    assert_eq!(detail_fields(&body), ["username"]);
}

#[tokio::test]
async fn a_wrong_code_is_422_on_otp_with_attempts_left_then_429() {
    let app = spawn_app().await;
    let (username, email) = new_identity();
    app.register(&username, &email).await;
    let code = app.next_code(&email).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let (status, body) = read(
        app.post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": wrong }),
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
    let left = body["error"]["attemptsRemaining"]
        .as_u64()
        .expect("attemptsRemaining");

    // Spend the rest of the budget: the pending registration is void, with a delay.
    let mut last = (status, body);
    for _ in 0..=left {
        last = read(
            app.post_json(
                "/api/auth/verify-otp",
                json!({ "email": email, "otp": wrong }),
            )
            .await,
        )
        .await;
        if last.0 != StatusCode::UNPROCESSABLE_ENTITY {
            break;
        }
    }
    let (status, body) = last;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
    assert!(
        body["error"]["retryAfterSeconds"].is_null(),
        "a void sign-up starts again; waiting does not help: {body:#}"
    );
}

#[tokio::test]
async fn verify_without_a_registration_cookie_is_refused() {
    let app = spawn_app().await;
    let (_, email) = new_identity();
    let (status, body) = read(
        app.post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": "123456" }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "REGISTRATION_ID_REQUIRED",
    );
    assert_eq!(detail_fields(&body), ["registrationId"]);
}

#[tokio::test]
async fn the_sign_up_is_bound_to_the_browser_that_registered() {
    let app = spawn_app().await;
    let (username, email) = new_identity();
    let response = app
        .post_json(
            "/api/auth/register",
            json!({ "username": username, "email": email, "password": PASSWORD }),
        )
        .await;
    let set = set_cookies(&response);
    let held = &set["registrationId"];
    assert_eq!(held.cookie.http_only(), Some(true), "{}", held.raw);
    assert_eq!(held.cookie.path(), Some("/api/auth"), "{}", held.raw);
    assert_eq!(
        held.cookie.same_site(),
        Some(cookie::SameSite::Strict),
        "{}",
        held.raw
    );
    let id = held.cookie.value().to_owned();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    assert!(
        !body.to_string().contains(&id),
        "the id never travels in a JSON body"
    );
    let code = app.next_code(&email).await;
    // Another browser with the right code, and even with an id of its own, cannot finish it.
    let (status, body) = read(
        app.post_json_elsewhere(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": code }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "REGISTRATION_ID_REQUIRED",
    );
    let other_browser = app
        .request(reqwest::Method::POST, "/api/auth/verify-otp")
        .header(header::COOKIE, "registrationId=AAAAAAAAAAAAAAAAAAAAAA")
        .json(&json!({ "email": email, "otp": code }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(other_browser).await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "REGISTRATION_NOT_FOUND",
    );
    // The browser that registered finishes, and its registration cookie is cleared.
    let response = app
        .post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": code }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        set_cookies(&response)["registrationId"].cookie.max_age(),
        Some(cookie::time::Duration::ZERO)
    );
    assert!(app.pending_cookie_header().is_empty());
}

#[tokio::test]
async fn an_expired_code_is_400() {
    let app = spawn_app_with(Env::default().service("CODE_TTL", "1s")).await;
    let (username, email) = new_identity();
    app.register(&username, &email).await;
    let code = app.next_code(&email).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, body) = read(
        app.post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": code }),
        )
        .await,
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "CODE_EXPIRED");
}

#[tokio::test]
async fn resend_during_the_cooldown_is_429_with_retry_after() {
    let app = spawn_app().await;
    let (username, email) = new_identity();
    app.register(&username, &email).await;
    let response = app
        .post_json("/api/auth/resend-otp", json!({ "email": email }))
        .await;
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = read(response).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "RESEND_COOLDOWN",
    );
    // CODE_RESEND_COOLDOWN defaults to 60 s.
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(body["error"]["retryAfterSeconds"], retry_after);
}

#[tokio::test]
async fn resend_sends_a_new_code_that_verifies() {
    let app = spawn_app_with(Env::default().service("CODE_RESEND_COOLDOWN", "0s")).await;
    let (username, email) = new_identity();
    app.register(&username, &email).await;
    app.next_code(&email).await;
    let (status, body) = read(
        app.post_json("/api/auth/resend-otp", json!({ "email": email }))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["email"], email);
    let code = app.next_code(&email).await;
    let response = app
        .post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": code }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn resend_failures() {
    let app = spawn_app().await;
    let (_, email) = new_identity();
    let (status, body) = read(
        app.post_json("/api/auth/resend-otp", json!({ "email": email }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "REGISTRATION_ID_REQUIRED",
    );
    let (status, body) = read(
        app.post_json("/api/auth/resend-otp", json!({ "email": "nope" }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
    assert_eq!(detail_fields(&body), ["email"]);
}
