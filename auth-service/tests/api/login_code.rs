//! Sign-in by emailed code: the code works once and only with the `login_id` of the request
//! that asked for it, an unknown email is answered alike with no mail, and a user with a
//! second factor still gets the challenge.

use baatcheet_auth_api::v1 as pb;
use baatcheet_test_support::totp;
use tonic::{Code, Status};

use super::mfa::{complete, enrolled};
use crate::helpers::*;

async fn request_code(app: &TestApp, email: &str) -> Result<pb::RequestLoginCodeResponse, Status> {
    app.client()
        .request_login_code(pb::RequestLoginCodeRequest {
            email: email.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn login_with_code(
    app: &TestApp,
    email: &str,
    code: &str,
    login_id: &str,
) -> Result<pb::LoginWithCodeResponse, Status> {
    app.client()
        .login_with_code(pb::LoginWithCodeRequest {
            email: email.into(),
            code: code.into(),
            login_id: login_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn an_emailed_code_signs_in_once_and_only_with_its_request() {
    let app = spawn_app().await;
    let mail = email("code");
    app.signup(&username("code"), &mail).await;
    let requested = request_code(&app, &mail).await.unwrap();
    assert_eq!(requested.code_ttl.unwrap().seconds, 300);
    let code = app.wait_for_code(&mail, 2).await;
    let sent = &app.mails_to(&mail)[1];
    assert!(sent.subject.contains("sign-in code"), "{}", sent.subject);

    // Knowing the email and the code is not enough: the request's id is needed.
    let status = assert_error(
        login_with_code(&app, &mail, &code, "").await,
        Code::InvalidArgument,
        "LOGIN_ID_REQUIRED",
    );
    assert_eq!(violated_fields(&status), ["login_id"]);
    let other = request_code(&app, &email("nobody")).await.unwrap().login_id;
    assert_error(
        login_with_code(&app, &mail, &code, &other).await,
        Code::NotFound,
        "LOGIN_NOT_FOUND",
    );
    let signed = login_with_code(&app, &mail, &code, &requested.login_id)
        .await
        .unwrap();
    assert!(signed.mfa_challenge.is_none());
    let tokens = signed.tokens.unwrap();
    let sessions = app.sessions(&tokens.access_token).await.unwrap();
    let this = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(this.auth_methods, [pb::AuthMethod::EmailCode as i32]);
    // Once.
    assert_error(
        login_with_code(&app, &mail, &code, &requested.login_id).await,
        Code::NotFound,
        "LOGIN_NOT_FOUND",
    );
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer_and_no_mail() {
    let app = spawn_app().await;
    let known = email("known");
    app.signup(&username("known"), &known).await;
    let unknown = email("unknown");
    let a = request_code(&app, &known).await.unwrap();
    let b = request_code(&app, &unknown).await.unwrap();
    assert_eq!(a.code_ttl, b.code_ttl);
    assert_eq!((a.login_id.len(), b.login_id.len()), (22, 22));
    app.wait_for_code(&known, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.mails_to(&unknown).is_empty());
    // No code finishes the decoy.
    assert_error(
        login_with_code(&app, &unknown, "123456", &b.login_id).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
}

#[tokio::test]
async fn wrong_codes_are_limited_like_every_emailed_code() {
    let app = spawn_app().await;
    let mail = email("lguess");
    app.signup(&username("lguess"), &mail).await;
    let id = request_code(&app, &mail).await.unwrap().login_id;
    let code = app.wait_for_code(&mail, 2).await;
    let wrong = if code == "123456" { "654321" } else { "123456" };
    for _ in 0..5 {
        assert_error(
            login_with_code(&app, &mail, wrong, &id).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    assert_error(
        login_with_code(&app, &mail, &code, &id).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
}

#[tokio::test]
async fn a_user_with_a_second_factor_still_gets_the_challenge() {
    let app = spawn_app().await;
    let user = enrolled(&app, "lmfa").await;
    let n = app.mails_to(&user.email).len();
    let id = request_code(&app, &user.email).await.unwrap().login_id;
    let code = app.wait_for_code(&user.email, n + 1).await;
    let reply = login_with_code(&app, &user.email, &code, &id)
        .await
        .unwrap();
    assert!(reply.tokens.is_none() && reply.user.is_none());
    let challenge = reply.mfa_challenge.unwrap();
    let signed = complete(
        &app,
        &challenge.challenge_id,
        pb::complete_mfa_challenge_request::Factor::TotpCode(totp::code_next(&user.secret)),
    )
    .await
    .unwrap();
    let token = signed.tokens.unwrap().access_token;
    let sessions = app.sessions(&token).await.unwrap();
    let this = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(
        this.auth_methods,
        [
            pb::AuthMethod::EmailCode as i32,
            pb::AuthMethod::Totp as i32
        ]
    );
}
