//! Passkeys over gRPC, with webauthn-rs's software authenticator in place of a browser's:
//! adding one (its options, the answer with the password), signing in with it alone, as the
//! second factor after a password, listing and removing them, and the attacks: a registration
//! or sign-in finished by someone else or twice, an assertion replayed, a user handle forged,
//! the cap per user, and the budget of sign-ins started per network. Chromium's virtual
//! authenticator does the same through the gateway and the page (tests/browser).

use baatcheet_auth_api::{json, v1 as pb};
use baatcheet_test_support::{passkey::SoftAuthenticator, totp};
use serde_json::Value;
use tonic::{Code, Status};

use super::mfa::{challenge, complete, enrolled, wait_for_notice};
use crate::helpers::*;

/// The origin the service's default WEBAUTHN_ORIGINS names.
pub const ORIGIN: &str = "http://localhost:8080";

const PASSKEY: i32 = pb::AuthMethod::Passkey as i32;

fn to_struct(value: Value) -> Option<prost_types::Struct> {
    json::to_struct(value)
}

pub async fn start_registration(app: &TestApp, token: &str) -> Result<Value, Status> {
    app.client()
        .start_passkey_registration(authed(pb::StartPasskeyRegistrationRequest {}, token))
        .await
        .map(|r| json::from_struct(r.into_inner().creation_options.expect("options")))
}

pub async fn finish_registration(
    app: &TestApp,
    token: &str,
    credential: Value,
    name: &str,
    password: &str,
) -> Result<pb::Passkey, Status> {
    app.client()
        .finish_passkey_registration(authed(
            pb::FinishPasskeyRegistrationRequest {
                credential: to_struct(credential),
                name: name.into(),
                current_password: password.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().passkey.expect("passkey"))
}

/// Adds a passkey of `authenticator` to the account of `token`.
pub async fn add_passkey(
    app: &TestApp,
    token: &str,
    authenticator: &mut SoftAuthenticator,
    name: &str,
) -> pb::Passkey {
    let options = start_registration(app, token).await.unwrap();
    let credential = authenticator.register(options);
    finish_registration(app, token, credential, name, PASSWORD)
        .await
        .unwrap()
}

pub async fn list(app: &TestApp, token: &str) -> Vec<pb::Passkey> {
    app.client()
        .list_passkeys(authed(pb::ListPasskeysRequest {}, token))
        .await
        .unwrap()
        .into_inner()
        .passkeys
}

/// StartPasskeyLogin: (login id, request options).
pub async fn start_login(app: &TestApp) -> Result<(String, Value), Status> {
    app.client()
        .start_passkey_login(pb::StartPasskeyLoginRequest {})
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.login_id, json::from_struct(r.request_options.unwrap()))
        })
}

pub async fn finish_login(
    app: &TestApp,
    login_id: &str,
    credential: Option<Value>,
) -> Result<pb::FinishPasskeyLoginResponse, Status> {
    app.client()
        .finish_passkey_login(pb::FinishPasskeyLoginRequest {
            login_id: login_id.into(),
            credential: credential.and_then(to_struct),
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn delete(
    app: &TestApp,
    token: &str,
    id: &str,
    proof: Option<pb::delete_passkey_request::Proof>,
) -> Result<i32, Status> {
    app.client()
        .delete_passkey(authed(
            pb::DeletePasskeyRequest {
                id: id.into(),
                proof,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().revoked_session_count)
}

pub fn password_proof(password: &str) -> Option<pb::delete_passkey_request::Proof> {
    Some(pb::delete_passkey_request::Proof::Password(password.into()))
}

#[tokio::test]
async fn a_passkey_added_with_the_password_signs_in_alone() {
    let app = spawn_app().await;
    let mail = email("pk");
    let (user, tokens) = app.signup(&username("pk"), &mail).await;
    let token = &tokens.access_token;
    let mut phone = SoftAuthenticator::new(ORIGIN);

    let options = start_registration(&app, token).await.unwrap();
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost");
    assert_eq!(public_key["user"]["name"], mail.as_str());
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "required"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    let credential = phone.register(options);
    let added = finish_registration(&app, token, credential, " Phone ", PASSWORD)
        .await
        .unwrap();
    assert_eq!(added.name, "Phone");
    assert_eq!(added.id, phone.last_id());
    assert!(added.create_time.is_some() && added.last_used_time.is_none());
    assert_eq!(list(&app, token).await, std::slice::from_ref(&added));
    assert_eq!(app.me(token).await.unwrap().passkey_count, 1);
    // A passkey alone turns no second factor on: the password still signs in by itself.
    assert!(app.me(token).await.unwrap().second_factors.is_empty());
    assert!(app.login(&mail, PASSWORD).await.unwrap().tokens.is_some());
    wait_for_notice(&app, &mail, "A passkey was added").await;

    // A second add of the same authenticator is excluded by its options.
    let again = start_registration(&app, token).await.unwrap();
    let excluded = again["publicKey"]["excludeCredentials"].as_array().unwrap();
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0]["id"], added.id.as_str());

    // Signing in: no username, the browser offers the site's passkeys.
    let (login_id, options) = start_login(&app).await.unwrap();
    assert_eq!(login_id.len(), 22);
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
    let assertion = phone.assert(options);
    let signed_in = finish_login(&app, &login_id, Some(assertion.clone()))
        .await
        .unwrap();
    assert_eq!(signed_in.user.unwrap().id, user.id);
    let new_tokens = signed_in.tokens.unwrap();
    let claims = app.validate(&new_tokens.access_token).await.unwrap();
    assert_eq!(claims.sub, user.id);
    let sessions = app.sessions(&new_tokens.access_token).await.unwrap();
    let this = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(this.auth_methods, [PASSKEY]);
    let used = list(&app, token).await.remove(0);
    assert!(used.last_used_time.is_some());

    // The login id is used up; the same assertion under a new one answers the wrong challenge.
    assert_error(
        finish_login(&app, &login_id, Some(assertion.clone())).await,
        Code::NotFound,
        "PASSKEY_LOGIN_NOT_FOUND",
    );
    let (fresh, _) = start_login(&app).await.unwrap();
    let status = assert_error(
        finish_login(&app, &fresh, Some(assertion)).await,
        Code::InvalidArgument,
        "PASSKEY_INVALID",
    );
    assert_eq!(violated_fields(&status), ["credential"]);
}

#[tokio::test]
async fn a_registration_needs_the_password_and_its_own_session() {
    let app = spawn_app().await;
    let (_, ana) = app.signup(&username("pka"), &email("pka")).await;
    let (_, eve) = app.signup(&username("pke"), &email("pke")).await;
    let mut key = SoftAuthenticator::new(ORIGIN);
    let credential = key.register(start_registration(&app, &ana.access_token).await.unwrap());

    // Without the password (a stolen access token), nothing is added and the options stay.
    let status = assert_error(
        finish_registration(&app, &ana.access_token, credential.clone(), "Key", "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["current_password"]);
    assert_error(
        finish_registration(
            &app,
            &ana.access_token,
            credential.clone(),
            "Key",
            "wrong password",
        )
        .await,
        Code::InvalidArgument,
        "WRONG_PASSWORD",
    );
    // Another account cannot finish Ana's registration: its session has none waiting.
    assert_error(
        finish_registration(&app, &eve.access_token, credential.clone(), "Key", PASSWORD).await,
        Code::FailedPrecondition,
        "PASSKEY_REGISTRATION_NOT_FOUND",
    );
    for (name, field) in [("", "name"), (&*"x".repeat(65), "name")] {
        let status = assert_error(
            finish_registration(&app, &ana.access_token, credential.clone(), name, PASSWORD).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), [field]);
    }
    let added = finish_registration(&app, &ana.access_token, credential.clone(), "Key", PASSWORD)
        .await
        .unwrap();
    assert_eq!(added.name, "Key");
    // Finished once: a replay of the answer finds nothing waiting, and under new options it
    // answers the wrong challenge.
    assert_error(
        finish_registration(&app, &ana.access_token, credential.clone(), "Key", PASSWORD).await,
        Code::FailedPrecondition,
        "PASSKEY_REGISTRATION_NOT_FOUND",
    );
    start_registration(&app, &ana.access_token).await.unwrap();
    assert_error(
        finish_registration(&app, &ana.access_token, credential, "Key", PASSWORD).await,
        Code::InvalidArgument,
        "PASSKEY_INVALID",
    );
    assert_eq!(list(&app, &ana.access_token).await.len(), 1);
    assert!(list(&app, &eve.access_token).await.is_empty());
}

#[tokio::test]
async fn a_forged_user_handle_signs_no_one_in() {
    let app = spawn_app().await;
    let (ana_user, ana) = app.signup(&username("pfa"), &email("pfa")).await;
    let (_, eve) = app.signup(&username("pfe"), &email("pfe")).await;
    let mut anas = SoftAuthenticator::new(ORIGIN);
    add_passkey(&app, &ana.access_token, &mut anas, "Phone").await;
    let mut eves = SoftAuthenticator::new(ORIGIN);
    add_passkey(&app, &eve.access_token, &mut eves, "Laptop").await;

    // Eve signs with her own key but names Ana in the user handle.
    let (login_id, options) = start_login(&app).await.unwrap();
    let mut forged = eves.assert(options);
    let handle = base64_url(uuid_bytes(&ana_user.id));
    forged["response"]["userHandle"] = Value::from(handle);
    let status = assert_error(
        finish_login(&app, &login_id, Some(forged)).await,
        Code::InvalidArgument,
        "PASSKEY_INVALID",
    );
    assert_eq!(violated_fields(&status), ["credential"]);

    // Bad input names the field.
    let (login_id, _) = start_login(&app).await.unwrap();
    for credential in [None, Some(serde_json::json!({ "id": "abc" }))] {
        let status = assert_error(
            finish_login(&app, &login_id, credential).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&status), ["credential"]);
    }
    let status = assert_error(
        finish_login(&app, "not-an-id", Some(serde_json::json!({}))).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["login_id"]);
}

#[tokio::test]
async fn a_passkey_completes_the_challenge_after_a_password() {
    let app = spawn_app().await;
    let user = enrolled(&app, "pkm").await;
    let token = &user.tokens.access_token;
    let mut phone = SoftAuthenticator::new(ORIGIN);
    add_passkey(&app, token, &mut phone, "Phone").await;

    let challenge = challenge(&app, &user.email).await;
    assert!(challenge.factors.contains(&PASSKEY), "{challenge:?}");
    let request = json::from_struct(challenge.passkey_request.clone().expect("passkey options"));
    let allowed = request["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], phone.last_id().as_str());

    // Another authenticator's assertion is a wrong answer, counted like a wrong code.
    let mut other = SoftAuthenticator::new(ORIGIN);
    let (_, eve) = app.signup(&username("pke"), &email("pke")).await;
    add_passkey(&app, &eve.access_token, &mut other, "Eve").await;
    let mut eve_request = request.clone();
    eve_request["publicKey"]["allowCredentials"][0]["id"] = Value::from(other.last_id());
    let wrong = other.assert(eve_request);
    let factor = |c: Value| {
        pb::complete_mfa_challenge_request::Factor::PasskeyCredential(to_struct(c).unwrap())
    };
    let status = assert_error(
        complete(&app, &challenge.challenge_id, factor(wrong)).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    assert_eq!(violated_fields(&status), ["passkey_credential"]);

    let assertion = phone.assert(request);
    let signed_in = complete(&app, &challenge.challenge_id, factor(assertion.clone()))
        .await
        .unwrap();
    let tokens = signed_in.tokens.unwrap();
    let sessions = app.sessions(&tokens.access_token).await.unwrap();
    let this = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(
        this.auth_methods,
        [pb::AuthMethod::Password as i32, PASSKEY]
    );
    // The challenge is used up, and its assertion answers no other.
    assert_error(
        complete(&app, &challenge.challenge_id, factor(assertion.clone())).await,
        Code::NotFound,
        "MFA_CHALLENGE_NOT_FOUND",
    );
    let next = super::mfa::challenge(&app, &user.email).await;
    assert_error(
        complete(&app, &next.challenge_id, factor(assertion)).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    // TOTP still works beside it.
    let code = totp::code_next(&user.secret);
    complete(
        &app,
        &next.challenge_id,
        pb::complete_mfa_challenge_request::Factor::TotpCode(code),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn removing_a_passkey_needs_a_proof_and_it_signs_in_no_more() {
    let app = spawn_app().await;
    let mail = email("pkd");
    let (_, tokens) = app.signup(&username("pkd"), &mail).await;
    let token = &tokens.access_token;
    let mut phone = SoftAuthenticator::new(ORIGIN);
    let added = add_passkey(&app, token, &mut phone, "Phone").await;

    assert_error(
        delete(&app, token, &added.id, None).await,
        Code::InvalidArgument,
        "MFA_REQUIRED",
    );
    assert_error(
        delete(&app, token, &added.id, password_proof("wrong password")).await,
        Code::InvalidArgument,
        "WRONG_PASSWORD",
    );
    assert_error(
        delete(&app, token, "no-such-key", password_proof(PASSWORD)).await,
        Code::NotFound,
        "PASSKEY_NOT_FOUND",
    );
    let status = assert_error(
        delete(&app, token, " ", password_proof(PASSWORD)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["id"]);
    // The lost device's session (here one the passkey started) ends with the removal.
    let (login_id, options) = start_login(&app).await.unwrap();
    let lost = finish_login(&app, &login_id, Some(phone.assert(options)))
        .await
        .unwrap()
        .tokens
        .unwrap();
    assert_eq!(
        delete(&app, token, &added.id, password_proof(PASSWORD))
            .await
            .unwrap(),
        1
    );
    assert!(list(&app, token).await.is_empty());
    assert_error(
        app.me(&lost.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.me(token).await.expect("the caller's own session stays");
    wait_for_notice(&app, &mail, "A passkey was removed").await;

    let (login_id, options) = start_login(&app).await.unwrap();
    assert_error(
        finish_login(&app, &login_id, Some(phone.assert(options))).await,
        Code::InvalidArgument,
        "PASSKEY_INVALID",
    );
}

#[tokio::test]
async fn an_assertion_made_for_another_origin_signs_no_one_in() {
    let app = spawn_app().await;
    let (_, tokens) = app.signup(&username("pko"), &email("pko")).await;
    // A look-alike site on another port of the same name: the browser signs for its origin.
    let mut phishing = SoftAuthenticator::new("http://localhost:9999");
    let options = start_registration(&app, &tokens.access_token)
        .await
        .unwrap();
    assert_error(
        finish_registration(
            &app,
            &tokens.access_token,
            phishing.register(options),
            "Phone",
            PASSWORD,
        )
        .await,
        Code::InvalidArgument,
        "PASSKEY_INVALID",
    );
    let mut phone = SoftAuthenticator::new(ORIGIN);
    add_passkey(&app, &tokens.access_token, &mut phone, "Phone").await;
    // The user's own passkey, used on the look-alike site: its assertion names that origin.
    phone.move_to("http://localhost:9999");
    let (login_id, options) = start_login(&app).await.unwrap();
    let status = assert_error(
        finish_login(&app, &login_id, Some(phone.assert(options))).await,
        Code::InvalidArgument,
        "PASSKEY_INVALID",
    );
    assert_eq!(violated_fields(&status), ["credential"]);
}

#[tokio::test]
async fn removing_an_unknown_passkey_spends_no_recovery_code() {
    let app = spawn_app().await;
    let user = enrolled(&app, "pkr").await;
    let token = &user.tokens.access_token;
    let code = user.recovery[0].clone();
    assert_error(
        delete(
            &app,
            token,
            "no-such-key",
            Some(pb::delete_passkey_request::Proof::RecoveryCode(code)),
        )
        .await,
        Code::NotFound,
        "PASSKEY_NOT_FOUND",
    );
    assert_eq!(app.me(token).await.unwrap().recovery_codes_remaining, 10);
}

#[tokio::test]
async fn passkeys_are_capped_and_sign_ins_started_are_counted_per_network() {
    let app = spawn_app_with(&[
        ("PASSKEYS_MAX_PER_USER", "2"),
        ("PASSKEY_LOGINS_PER_IP_PER_HOUR", "3"),
    ])
    .await;
    let (_, tokens) = app.signup(&username("pkc"), &email("pkc")).await;
    let token = &tokens.access_token;
    for name in ["One", "Two"] {
        let mut key = SoftAuthenticator::new(ORIGIN);
        add_passkey(&app, token, &mut key, name).await;
    }
    let status = assert_error(
        start_registration(&app, token).await,
        Code::FailedPrecondition,
        "PASSKEY_LIMIT_REACHED",
    );
    assert!(status.message().contains('2'), "{status:?}");

    for _ in 0..3 {
        start_login(&app).await.unwrap();
    }
    let status = assert_error(
        start_login(&app).await,
        Code::ResourceExhausted,
        "PASSKEY_LOGIN_RATE_LIMITED",
    );
    assert!(retry_secs(&status).is_some_and(|s| s > 0), "{status:?}");
}

fn uuid_bytes(id: &str) -> Vec<u8> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn base64_url(bytes: Vec<u8>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
