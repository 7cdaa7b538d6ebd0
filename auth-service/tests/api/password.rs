use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn request_reset(
    app: &TestApp,
    email: &str,
) -> Result<pb::RequestPasswordResetResponse, tonic::Status> {
    app.client()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: email.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn reset(
    app: &TestApp,
    email: &str,
    code: &str,
    password: &str,
) -> Result<pb::ResetPasswordResponse, tonic::Status> {
    app.client()
        .reset_password(pb::ResetPasswordRequest {
            email: email.into(),
            code: code.into(),
            new_password: password.into(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_reset_by_emailed_code_sets_the_password_and_ends_every_session() {
    let app = spawn_app().await;
    let mail = email("reset");
    let (_, a) = app.signup(&username("reset"), &mail).await;
    let b = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let answer = request_reset(&app, &mail).await.unwrap();
    assert_eq!(answer.code_ttl.unwrap().seconds, 300);
    let code = app.wait_for_code(&mail, 2).await;
    assert!(app.mails_to(&mail)[1].0.contains("reset"));
    let done = reset(&app, &mail, &code, NEW_PASSWORD).await.unwrap();
    assert_eq!(done.revoked_session_count, 2);
    for t in [&a, &b] {
        assert_error(
            app.validate(&t.access_token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
        assert_error(
            app.refresh(&t.refresh_token).await,
            Code::Unauthenticated,
            "REFRESH_TOKEN_INVALID",
        );
    }
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    app.login(&mail, NEW_PASSWORD).await.unwrap();
    assert_error(
        reset(&app, &mail, &code, NEW_PASSWORD).await,
        Code::NotFound,
        "RESET_NOT_FOUND",
    );
}

#[tokio::test]
async fn reset_codes_are_limited_like_registration_codes() {
    let app = spawn_app().await;
    let mail = email("rguess");
    app.signup(&username("rguess"), &mail).await;
    request_reset(&app, &mail).await.unwrap();
    let code = app.wait_for_code(&mail, 2).await;
    let wrong = if code == "123456" { "654321" } else { "123456" };
    for _ in 0..5 {
        assert_error(
            reset(&app, &mail, wrong, NEW_PASSWORD).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    assert_error(
        reset(&app, &mail, &code, NEW_PASSWORD).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
    app.login(&mail, PASSWORD)
        .await
        .expect("the password did not change");
    let status = assert_error(
        reset(&app, "x", "1", "short").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["code", "email", "new_password"]);
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer_and_no_mail() {
    let app = spawn_app_with(&[("CODE_RESEND_COOLDOWN", "60s")]).await;
    let known = email("known");
    app.signup(&username("known"), &known).await;
    let ghost = email("ghost");
    let a = request_reset(&app, &known).await.unwrap();
    let b = request_reset(&app, &ghost).await.unwrap();
    assert_eq!(a.code_ttl, b.code_ttl);
    // Same limits for both, so the cooldown reveals nothing either.
    assert_error(
        request_reset(&app, &known).await,
        Code::ResourceExhausted,
        "RESEND_COOLDOWN",
    );
    assert_error(
        request_reset(&app, &ghost).await,
        Code::ResourceExhausted,
        "RESEND_COOLDOWN",
    );
    app.wait_for_code(&known, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.mails_to(&ghost).is_empty());
    assert_error(
        reset(&app, &ghost, "123456", NEW_PASSWORD).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
}

#[tokio::test]
async fn change_password_keeps_this_session_and_ends_the_others() {
    let app = spawn_app().await;
    let mail = email("chg");
    let (_, here) = app.signup(&username("chg"), &mail).await;
    let there = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let change = |current: &str, new: &str| {
        let mut client = app.client();
        let request = authed(
            pb::ChangePasswordRequest {
                current_password: current.into(),
                new_password: new.into(),
            },
            &here.access_token,
        );
        async move { client.change_password(request).await }
    };
    let status = assert_error(
        change("wrong current!", NEW_PASSWORD).await,
        Code::InvalidArgument,
        "WRONG_PASSWORD",
    );
    assert_eq!(violated_fields(&status), ["current_password"]);
    let status = assert_error(
        change(PASSWORD, PASSWORD).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["new_password"]);
    let done = change(PASSWORD, NEW_PASSWORD).await.unwrap().into_inner();
    assert_eq!(done.revoked_session_count, 1);
    app.validate(&here.access_token).await.unwrap();
    assert_error(
        app.validate(&there.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.login(&mail, NEW_PASSWORD).await.unwrap();
    assert_error(
        app.client()
            .change_password(pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: NEW_PASSWORD.into(),
            })
            .await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn current_password_guesses_share_the_login_budget() {
    let app = spawn_app_with(&[("LOGIN_MAX_ATTEMPTS", "3"), ("LOGIN_WINDOW", "10m")]).await;
    let (_, tokens) = app.signup(&username("guess"), &email("guess")).await;
    let change = |current: &str| {
        let mut client = app.client();
        let request = authed(
            pb::ChangePasswordRequest {
                current_password: current.into(),
                new_password: NEW_PASSWORD.into(),
            },
            &tokens.access_token,
        );
        async move { client.change_password(request).await }
    };
    for _ in 0..3 {
        assert_error(
            change("a wrong guess").await,
            Code::InvalidArgument,
            "WRONG_PASSWORD",
        );
    }
    assert_error(
        change(PASSWORD).await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
}
