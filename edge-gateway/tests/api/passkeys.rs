//! Passkeys through the gateway, with webauthn-rs's software authenticator standing in for
//! the browser's: options as `{publicKey}` JSON, credentials back as JSON, the passwordless
//! sign-in's id in an httpOnly cookie only this browser holds, the passkey as the second
//! factor of a challenge, and the refusals mapped to HTTP. Chromium's virtual authenticator
//! does the same on the page (tests/browser).

use baatcheet_test_support::passkey::SoftAuthenticator;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::mfa::enable_totp;
use crate::helpers::*;

/// The origin of the service's default WEBAUTHN_ORIGINS.
const ORIGIN: &str = "http://localhost:8080";

async fn add_passkey(app: &TestApp, session: &Session, key: &mut SoftAuthenticator) -> Value {
    let (status, body) = read(
        app.with_session(Method::POST, "/api/auth/passkeys/register/start", session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let options = json!({ "publicKey": body["data"]["publicKey"] });
    assert!(body["data"]["expiresAt"].is_string());
    let credential = key.register(options);
    let (status, body) = read(
        app.with_session(Method::POST, "/api/auth/passkeys/register/finish", session)
            .json(
                &json!({ "credential": credential, "name": "Phone", "currentPassword": PASSWORD }),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    body["data"].clone()
}

#[tokio::test]
async fn a_passkey_signs_in_through_the_gateway_with_an_httponly_sign_in_cookie() {
    let app = spawn_app().await;
    let (username, _, session) = app.signed_up_user().await;
    let mut key = SoftAuthenticator::new(ORIGIN);
    let added = add_passkey(&app, &session, &mut key).await;
    assert_eq!(added["name"], "Phone");
    assert_eq!(added["id"], key.last_id().as_str());
    let (status, body) = read(
        app.with_session(Method::GET, "/api/auth/passkeys", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["passkeys"], json!([added]));
    let (_, me) = app.get_me(&session).await;
    assert_eq!(me["data"]["user"]["passkeyCount"], 1);

    // Garbage in this browser's own sign-ins: 422 naming the credential.
    let deep = (0..20).fold(json!(1), |inner, _| json!({ "a": inner }));
    for credential in [json!("text"), json!({ "id": "x" }), deep] {
        let started = app
            .post_json("/api/auth/login/passkey/start", json!({}))
            .await;
        assert_eq!(started.status(), StatusCode::OK);
        let (status, body) = read(
            app.post_json(
                "/api/auth/login/passkey",
                json!({ "credential": credential }),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:#}");
        assert_eq!(detail_fields(&body), ["credential"], "{body:#}");
    }

    let response = app
        .post_json("/api/auth/login/passkey/start", json!({}))
        .await;
    let held = set_cookies(&response)
        .remove("passkeyLogin")
        .expect("the sign-in cookie");
    assert!(held.raw.contains("HttpOnly"), "{}", held.raw);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(
        !body.to_string().contains(held.cookie.value()),
        "the id is not in JSON"
    );
    let assertion = key.assert(json!({ "publicKey": body["data"]["publicKey"] }));

    // Another browser, without the cookie, cannot use the assertion.
    let (status, body) = read(
        app.post_json_elsewhere(
            "/api/auth/login/passkey",
            json!({ "credential": assertion }),
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
    assert_eq!(detail_fields(&body), ["loginId"]);
    let response = app
        .post_json(
            "/api/auth/login/passkey",
            json!({ "credential": assertion }),
        )
        .await;
    let cookies = set_cookies(&response);
    assert!(cookies.contains_key("accessToken") && cookies.contains_key("refreshToken"));
    assert_eq!(cookies["passkeyLogin"].cookie.value(), "", "forgotten");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["user"]["username"], username.as_str());

    // Used up: the same assertion again finds no sign-in.
    let response = app
        .request(Method::POST, "/api/auth/login/passkey")
        .header("cookie", format!("passkeyLogin={}", held.cookie.value()))
        .json(&json!({ "credential": assertion }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "PASSKEY_LOGIN_NOT_FOUND",
    );

    // Removing it takes a proof.
    let remove = |proof: Value| {
        let mut body = json!({ "id": added["id"] });
        body.as_object_mut()
            .unwrap()
            .extend(proof.as_object().unwrap().clone());
        app.with_session(Method::POST, "/api/auth/passkeys/delete", &session)
            .json(&body)
            .send()
    };
    let (status, body) = read(remove(json!({})).await.unwrap()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "MFA_REQUIRED",
    );
    let (status, body) = read(remove(json!({ "password": PASSWORD })).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (status, body) = read(remove(json!({ "password": PASSWORD })).await.unwrap()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "PASSKEY_NOT_FOUND");
}

#[tokio::test]
async fn a_passkey_completes_the_gateways_second_factor_step() {
    let app = spawn_app().await;
    let (_, email, session) = app.signed_up_user().await;
    enable_totp(&app, &session).await;
    let mut key = SoftAuthenticator::new(ORIGIN);
    add_passkey(&app, &session, &mut key).await;

    let (status, body) = read(
        app.post_json(
            "/api/auth/login",
            json!({ "identifier": email, "password": PASSWORD }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(
        body["data"]["factors"],
        json!(["totp", "passkey", "recovery_code"])
    );
    let options = body["data"]["passkey"].clone();
    assert!(
        options["publicKey"]["allowCredentials"].is_array(),
        "{body:#}"
    );
    let assertion = key.assert(options);

    let (status, body) = read(
        app.post_json(
            "/api/auth/mfa/complete",
            json!({ "passkeyCredential": assertion, "totpCode": "123456" }),
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
    assert_eq!(detail_fields(&body), ["proof"]);

    let response = app
        .post_json(
            "/api/auth/mfa/complete",
            json!({ "passkeyCredential": assertion }),
        )
        .await;
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(body["data"]["session"]["sessionId"].is_string());
}
