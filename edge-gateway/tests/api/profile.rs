//! PATCH /api/auth/me: the fields present in the body are the update mask, every refusal of the
//! service through the one error mapping, and the edge's own refusals (body, cookie, origin).

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::*;

impl TestApp {
    async fn patch_me(&self, session: &Session, body: Value) -> (StatusCode, Value) {
        read(
            self.with_session(Method::PATCH, "/api/auth/me", session)
                .json(&body)
                .send()
                .await
                .expect("patch me"),
        )
        .await
    }
}

#[tokio::test]
async fn patch_changes_the_fields_present_and_me_shows_them() {
    let app = spawn_app().await;
    let (username, email, session) = app.signed_up_user().await;
    let (status, body) = app
        .patch_me(
            &session,
            json!({ "bio": "Chai first, then code.", "avatarUrl": "https://cdn.example.com/a.png" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["success"], true);
    let user = &body["data"]["user"];
    assert_eq!(user["bio"], "Chai first, then code.");
    assert_eq!(user["avatarUrl"], "https://cdn.example.com/a.png");
    assert_eq!(
        (&user["username"], &user["email"]),
        (&json!(username), &json!(email))
    );
    // The username never changed, so it may change now.
    assert!(body["data"]["nextUsernameChangeAt"].is_string(), "{body:#}");

    let (status, me) = app.get_me(&session).await;
    assert_eq!(status, StatusCode::OK, "{me:#}");
    assert_eq!(me["data"]["user"]["bio"], "Chai first, then code.");
    assert_eq!(
        me["data"]["user"]["avatarUrl"],
        "https://cdn.example.com/a.png"
    );

    // Only the fields present change; "" clears one. Unknown fields are ignored, as everywhere.
    let (status, body) = app
        .patch_me(&session, json!({ "bio": "", "email": "other@example.com" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (_, me) = app.get_me(&session).await;
    let user = &me["data"]["user"];
    assert_eq!(user["bio"], "");
    assert_eq!(user["avatarUrl"], "https://cdn.example.com/a.png");
    assert_eq!(user["email"], email.as_str());

    // A bearer token works as for GET /me.
    let response = app
        .request(Method::PATCH, "/api/auth/me")
        .bearer_auth(&session.access)
        .json(&json!({ "bio": "by bearer" }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["bio"], "by bearer");
}

#[tokio::test]
async fn a_second_username_change_waits_for_the_cooldown() {
    let app = spawn_app().await;
    let (_, email, session) = app.signed_up_user().await;
    let (renamed, _) = new_identity();
    let (status, body) = app.patch_me(&session, json!({ "username": renamed })).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["username"], renamed.as_str());
    let next = body["data"]["nextUsernameChangeAt"].as_str().unwrap();
    let next = humantime::parse_rfc3339(next).unwrap();
    let days = next
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert_eq!(days, 29, "30 days from now, by default: {body:#}");
    // The new name signs in.
    app.login(&renamed, PASSWORD).await;

    let (again, _) = new_identity();
    let response = app
        .with_session(Method::PATCH, "/api/auth/me", &session)
        .json(&json!({ "username": again }))
        .send()
        .await
        .unwrap();
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
        "USERNAME_CHANGE_COOLDOWN",
    );
    assert!(retry_after > 29 * 86_400, "{retry_after}");
    assert_eq!(body["error"]["retryAfterSeconds"], retry_after);
    let (_, me) = app.get_me(&session).await;
    assert_eq!(me["data"]["user"]["username"], renamed.as_str());
    assert_eq!(me["data"]["user"]["email"], email.as_str());

    // The cooldown is about the username only: the rest still changes.
    let (status, body) = app.patch_me(&session, json!({ "bio": "still me" })).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
}

#[tokio::test]
async fn a_taken_username_is_a_conflict() {
    let app = spawn_app().await;
    let (taken, _, _) = app.signed_up_user().await;
    let (_, _, session) = app.signed_up_user().await;
    let (status, body) = app
        .patch_me(&session, json!({ "username": taken.to_uppercase() }))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "USERNAME_TAKEN");
    assert_eq!(detail_fields(&body), ["username"]);
}

#[tokio::test]
async fn invalid_fields_are_named_as_the_body_names_them() {
    let app = spawn_app().await;
    let (_, _, session) = app.signed_up_user().await;
    let (status, body) = app
        .patch_me(&session, json!({ "avatarUrl": "javascript:alert(1)" }))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
    assert_eq!(detail_fields(&body), ["avatarUrl"]);

    let (status, body) = app
        .patch_me(
            &session,
            json!({ "bio": "b".repeat(151), "avatarUrl": "not a url", "username": "x" }),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_ARGUMENT",
    );
    let mut fields = detail_fields(&body);
    fields.sort();
    assert_eq!(fields, ["avatarUrl", "bio", "username"]);
    // Nothing changed.
    let (_, me) = app.get_me(&session).await;
    assert_eq!(me["data"]["user"]["bio"], "");
}

#[tokio::test]
async fn the_body_must_name_a_field_as_a_string() {
    let app = spawn_app().await;
    let (_, _, session) = app.signed_up_user().await;
    for body in [
        json!({}),
        json!({ "email": "other@example.com", "avatar_url": "https://a.example/x.png" }),
    ] {
        let (status, answer) = app.patch_me(&session, body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "INVALID_BODY");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("request body"),
            "{body}: {answer:#}"
        );
    }
    for body in [
        json!({ "bio": null }),
        json!({ "username": 7 }),
        json!([]),
        json!("bio"),
    ] {
        let (status, answer) = app.patch_me(&session, body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "INVALID_BODY");
    }
    let (status, body) = read(
        app.with_session(Method::PATCH, "/api/auth/me", &session)
            .header(header::CONTENT_TYPE, "application/json")
            .body("{\"bio\":")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    let (status, body) = read(
        app.with_session(Method::PATCH, "/api/auth/me", &session)
            .body("bio=x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    let (status, body) = app
        .patch_me(&session, json!({ "bio": "b".repeat(20 * 1024) }))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    );
}

#[tokio::test]
async fn patch_needs_a_session_and_an_allowed_origin() {
    let app = spawn_app().await;
    let (_, _, session) = app.signed_up_user().await;
    let (status, body) = read(
        app.request(Method::PATCH, "/api/auth/me")
            .json(&json!({ "bio": "anonymous" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    // Cookies from a page of another origin: refused before the service hears of it.
    for (name, value) in [
        (header::ORIGIN.as_str(), "http://evil.test"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let (status, body) = read(
            app.with_session(Method::PATCH, "/api/auth/me", &session)
                .header(name, value)
                .json(&json!({ "bio": "forged" }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "CSRF_REJECTED");
    }
    let (_, me) = app.get_me(&session).await;
    assert_eq!(me["data"]["user"]["bio"], "");

    // The allowed origin may: its preflight lists PATCH, and the call goes through.
    let preflight = app
        .request(Method::OPTIONS, "/api/auth/me")
        .header(header::ORIGIN, ALLOWED_ORIGIN)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let methods = preflight.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("PATCH"), "{methods}");
    let response = app
        .with_session(Method::PATCH, "/api/auth/me", &session)
        .header(header::ORIGIN, ALLOWED_ORIGIN)
        .json(&json!({ "bio": "from the app" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        ALLOWED_ORIGIN
    );
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["bio"], "from the app");
}
