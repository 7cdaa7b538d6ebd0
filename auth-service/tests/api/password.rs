//! Password reset by emailed code (every session ends, the email's other resets finish, codes
//! limited like sign-up's, an unknown email answered alike with no mail) and ChangePassword
//! (this session kept, the others ended, guesses at the current password limited per session).

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// RequestPasswordReset with the whole answer (the `request_reset` helper gives the id only).
async fn request_reset_answer(
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

#[tokio::test]
async fn a_reset_by_emailed_code_sets_the_password_and_ends_every_session() {
    let app = spawn_app().await;
    let mail = email("reset");
    let (_, a) = app.signup(&username("reset"), &mail).await;
    let b = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let answer = request_reset_answer(&app, &mail).await.unwrap();
    assert_eq!(answer.code_ttl.unwrap().seconds, 300);
    let id = answer.reset_id;
    assert_eq!(id.len(), 22, "128 random bits, base64url: {id}");
    let code = app.wait_for_code(&mail, 2).await;
    assert!(app.mails_to(&mail)[1].subject.contains("reset"));
    let done = app.reset(&mail, &id, &code, NEW_PASSWORD).await.unwrap();
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
        app.reset(&mail, &id, &code, NEW_PASSWORD).await,
        Code::NotFound,
        "RESET_NOT_FOUND",
    );
}

#[tokio::test]
async fn a_reset_finishes_every_pending_reset_of_the_email() {
    let app = spawn_app().await;
    let mail = email("two");
    app.signup(&username("two"), &mail).await;
    let first = app.request_reset(&mail).await.unwrap();
    let first_code = app.wait_for_code(&mail, 2).await;
    let second = app.request_reset(&mail).await.unwrap();
    let second_code = app.wait_for_code(&mail, 3).await;
    assert_ne!(first, second, "each request has its own id");
    // Each code belongs to its own request.
    if first_code != second_code {
        assert_error(
            app.reset(&mail, &second, &first_code, NEW_PASSWORD).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    app.reset(&mail, &second, &second_code, NEW_PASSWORD)
        .await
        .unwrap();
    // The password is set: the other request is void.
    assert_error(
        app.reset(&mail, &first, &first_code, "yet another passphrase")
            .await,
        Code::NotFound,
        "RESET_NOT_FOUND",
    );
    app.login(&mail, NEW_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn reset_codes_are_limited_like_registration_codes() {
    let app = spawn_app().await;
    let mail = email("rguess");
    app.signup(&username("rguess"), &mail).await;
    let id = app.request_reset(&mail).await.unwrap();
    let code = app.wait_for_code(&mail, 2).await;
    let wrong = if code == "123456" { "654321" } else { "123456" };
    for _ in 0..5 {
        assert_error(
            app.reset(&mail, &id, wrong, NEW_PASSWORD).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    let status = assert_error(
        app.reset(&mail, &id, &code, NEW_PASSWORD).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
    assert_eq!(retry_secs(&status), None, "a void request: start again");
    app.login(&mail, PASSWORD)
        .await
        .expect("the password did not change");
    // A new request has a budget of its own.
    let again = app.request_reset(&mail).await.unwrap();
    let fresh = app.wait_for_code(&mail, 3).await;
    app.reset(&mail, &again, &fresh, NEW_PASSWORD)
        .await
        .unwrap();
    app.login(&mail, NEW_PASSWORD).await.unwrap();

    let status = assert_error(
        app.reset("x", "", "1", "short").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["code", "email", "new_password"]);
    let status = assert_error(
        app.reset("x", "not an id", "1", "short").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["code", "email", "new_password", "reset_id"]);
    let status = assert_error(
        app.reset(&mail, " ", "123456", NEW_PASSWORD).await,
        Code::InvalidArgument,
        "RESET_ID_REQUIRED",
    );
    assert_eq!(violated_fields(&status), ["reset_id"]);
    assert_error(
        app.reset(&mail, "AAAAAAAAAAAAAAAAAAAAAA", "123456", NEW_PASSWORD)
            .await,
        Code::NotFound,
        "RESET_NOT_FOUND",
    );
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer_and_no_mail() {
    let app = spawn_app_with(&[
        ("CODE_RESEND_COOLDOWN", "60s"),
        ("CODE_MAX_SENDS_PER_DAY", "2"),
    ])
    .await;
    let known = email("known");
    app.signup(&username("known"), &known).await;
    let ghost = email("ghost");
    let a = request_reset_answer(&app, &known).await.unwrap();
    let b = request_reset_answer(&app, &ghost).await.unwrap();
    assert_eq!(a.code_ttl, b.code_ttl);
    assert_eq!((a.reset_id.len(), b.reset_id.len()), (22, 22));
    let resend_gap = |r: &pb::RequestPasswordResetResponse| {
        r.resend_available_time.unwrap().seconds - unix_now()
    };
    for gap in [resend_gap(&a), resend_gap(&b)] {
        assert!((58..=61).contains(&gap), "{gap}");
    }
    // Same limits for both, so the daily budget reveals nothing either.
    request_reset_answer(&app, &known).await.unwrap();
    request_reset_answer(&app, &ghost).await.unwrap();
    let known_limit = assert_error(
        request_reset_answer(&app, &known).await,
        Code::ResourceExhausted,
        "CODE_DAILY_LIMIT",
    );
    let ghost_limit = assert_error(
        request_reset_answer(&app, &ghost).await,
        Code::ResourceExhausted,
        "CODE_DAILY_LIMIT",
    );
    assert_eq!(known_limit.message(), ghost_limit.message());
    assert!(retry_secs(&known_limit).unwrap() > 3600);
    assert!(retry_secs(&ghost_limit).unwrap() > 3600);
    app.wait_for_code(&known, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.mails_to(&ghost).is_empty());
    // The decoy request answers a guess like a real one, and no code finishes it.
    let status = assert_error(
        app.reset(&ghost, &b.reset_id, "123456", NEW_PASSWORD).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    let info = tonic_types::StatusExt::get_error_details(&status)
        .error_info()
        .cloned()
        .unwrap();
    assert_eq!(info.metadata["attempts_remaining"], "4");
    for _ in 0..4 {
        assert_error(
            app.reset(&ghost, &b.reset_id, "123456", NEW_PASSWORD).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    assert_error(
        app.reset(&ghost, &b.reset_id, "123456", NEW_PASSWORD).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
}

/// Seconds since the epoch, to compare with the Timestamps of an answer.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
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
async fn current_password_guesses_are_limited_per_session() {
    let app = spawn_app_with(&[("LOGIN_MAX_ATTEMPTS", "3"), ("LOGIN_WINDOW", "10m")]).await;
    let mail = email("guess");
    let (_, tokens) = app.signup(&username("guess"), &mail).await;
    let change = |access_token: &str, current: &str| {
        let mut client = app.client();
        let request = authed(
            pb::ChangePasswordRequest {
                current_password: current.into(),
                new_password: NEW_PASSWORD.into(),
            },
            access_token,
        );
        async move { client.change_password(request).await }
    };
    for _ in 0..3 {
        assert_error(
            change(&tokens.access_token, "a wrong guess").await,
            Code::InvalidArgument,
            "WRONG_PASSWORD",
        );
    }
    // A stolen access token cannot be used to find the password: this session is done
    // guessing, even with the right one.
    let status = assert_error(
        change(&tokens.access_token, PASSWORD).await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
    assert!(retry_secs(&status).unwrap() > 500);
    // Its own counter: logins are not refused, and another session may change the password.
    let other = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    change(&other.access_token, PASSWORD).await.unwrap();
    app.login(&mail, NEW_PASSWORD).await.unwrap();
}
