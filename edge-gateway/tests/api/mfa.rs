//! Second factors and sign-in by emailed code through the gateway: the challenge and the
//! sign-in request live in httpOnly cookies (never in JSON), tokens appear only after the
//! second factor, and each route maps the service's refusals. Codes come from pyotp.

use baatcheet_test_support::totp;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::*;

/// Turns TOTP on for a signed-in browser: (secret, recovery codes).
pub async fn enable_totp(app: &TestApp, session: &Session) -> (String, Vec<String>) {
    let (status, body) = read(
        app.with_session(Method::POST, "/api/auth/mfa/totp/start", session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let secret = body["data"]["secret"].as_str().unwrap().to_owned();
    assert!(
        body["data"]["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let (status, body) = read(
        app.with_session(Method::POST, "/api/auth/mfa/totp/confirm", session)
            .json(&json!({ "code": totp::code_now(&secret), "currentPassword": PASSWORD }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let codes = body["data"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

fn token_cookies(response: &reqwest::Response) -> Vec<String> {
    set_cookies(response)
        .into_keys()
        .filter(|name| name.ends_with("Token"))
        .collect()
}

#[tokio::test]
async fn the_second_factor_comes_before_any_token_and_its_challenge_is_an_httponly_cookie() {
    let app = spawn_app().await;
    let (_, email, session) = app.signed_up_user().await;
    let (secret, recovery) = enable_totp(&app, &session).await;
    assert_eq!(recovery.len(), 10);
    let (_, me) = app.get_me(&session).await;
    assert_eq!(me["data"]["user"]["secondFactors"], json!(["totp"]));
    assert_eq!(me["data"]["user"]["recoveryCodesRemaining"], 10);

    let response = app
        .post_json(
            "/api/auth/login",
            json!({ "identifier": email, "password": PASSWORD }),
        )
        .await;
    assert!(
        token_cookies(&response).is_empty(),
        "no token before the second factor"
    );
    let challenge = set_cookies(&response)
        .remove("mfaChallenge")
        .expect("the challenge cookie");
    assert!(challenge.raw.contains("HttpOnly"), "{}", challenge.raw);
    assert!(challenge.raw.contains("SameSite"), "{}", challenge.raw);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["mfaRequired"], true);
    assert_eq!(body["data"]["factors"], json!(["totp", "recovery_code"]));
    assert!(
        !body.to_string().contains(challenge.cookie.value()),
        "the id is not in JSON"
    );

    // Another browser without the cookie cannot finish it, even with the right code.
    let (status, body) = read(
        app.post_json_elsewhere(
            "/api/auth/mfa/complete",
            json!({ "totpCode": totp::code_next(&secret) }),
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
    assert_eq!(detail_fields(&body), ["challengeId"]);

    let wrong = if totp::code_next(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, body) = read(
        app.post_json("/api/auth/mfa/complete", json!({ "totpCode": wrong }))
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "MFA_CODE_INVALID",
    );
    assert_eq!(detail_fields(&body), ["totpCode"]);
    assert_eq!(body["error"]["attemptsRemaining"], 4);

    let response = app
        .post_json(
            "/api/auth/mfa/complete",
            json!({ "totpCode": totp::code_next(&secret) }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = set_cookies(&response).remove("mfaChallenge").unwrap();
    assert_eq!(
        cleared.cookie.value(),
        "",
        "the challenge cookie is cleared"
    );
    let signed_in = session_from(&response);
    let (status, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &signed_in)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sessions = body["data"]["sessions"].as_array().unwrap();
    let this = sessions.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(this["authMethods"], json!(["password", "totp"]));

    // Used once.
    let (status, body) = read(
        app.request(Method::POST, "/api/auth/mfa/complete")
            .header(
                header::COOKIE,
                format!("mfaChallenge={}", challenge.cookie.value()),
            )
            .json(&json!({ "recoveryCode": recovery[0] }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "MFA_CHALLENGE_NOT_FOUND",
    );
}

#[tokio::test]
async fn an_emailed_code_signs_in_only_the_browser_that_asked() {
    let app = spawn_app().await;
    let (username, email, _) = app.signed_up_user().await;
    let response = app
        .post_json("/api/auth/login/code/request", json!({ "email": email }))
        .await;
    let held = set_cookies(&response)
        .remove("loginId")
        .expect("the loginId cookie");
    assert!(held.raw.contains("HttpOnly"), "{}", held.raw);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["codeTtlSeconds"], 300);
    let code = app.next_code(&email).await;

    let (status, body) = read(
        app.post_json_elsewhere(
            "/api/auth/login/code",
            json!({ "email": email, "code": code }),
        )
        .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "LOGIN_ID_REQUIRED",
    );
    assert_eq!(detail_fields(&body), ["loginId"]);

    let response = app
        .post_json(
            "/api/auth/login/code",
            json!({ "email": email, "code": code }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(set_cookies(&response)["loginId"].cookie.value(), "");
    let session = session_from(&response);
    let (_, me) = app.get_me(&session).await;
    assert_eq!(me["data"]["user"]["username"], Value::from(username));
}

#[tokio::test]
async fn turning_totp_off_needs_a_proof_and_ends_the_other_sessions() {
    let app = spawn_app().await;
    let (_, email, session) = app.signed_up_user().await;
    let (_, recovery) = enable_totp(&app, &session).await;
    // A second browser signs in with a recovery code.
    let response = app
        .post_json(
            "/api/auth/login",
            json!({ "identifier": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .post_json(
            "/api/auth/mfa/complete",
            json!({ "recoveryCode": recovery[5] }),
        )
        .await;
    let other = session_from(&response);

    let disable = |body: Value| {
        app.with_session(Method::POST, "/api/auth/mfa/totp/disable", &session)
            .json(&body)
            .send()
    };
    let (status, body) = read(disable(json!({})).await.unwrap()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "MFA_REQUIRED",
    );
    assert_eq!(detail_fields(&body), ["proof"]);
    let (status, body) = read(
        disable(json!({ "password": PASSWORD, "totpCode": "123456" }))
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
    assert_eq!(detail_fields(&body), ["proof"]);
    let (status, body) = read(
        disable(json!({ "password": "not it at all" }))
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
    let (status, body) = read(disable(json!({ "password": PASSWORD })).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["revokedSessionCount"], 1);
    assert_eq!(app.get_me(&other).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = read(disable(json!({ "password": PASSWORD })).await.unwrap()).await;
    assert_error(status, &body, StatusCode::CONFLICT, "TOTP_NOT_ENABLED");
}
