//! The password policy over gRPC: sign-up, reset and change refuse a common password, one
//! containing the username or the email's name, and one below PASSWORD_MIN_SCORE, each with a
//! field violation naming the rule; nothing is created, changed or used up by the refusal.

use baatcheet_auth_api::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

/// The description of the one field violation of a refusal, after checking its field.
fn refused_because(status: &tonic::Status, field: &str) -> String {
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("field violations")
        .field_violations;
    assert_eq!(violations.len(), 1, "{status:?}");
    assert_eq!(violations[0].field, field);
    violations[0].description.clone()
}

#[tokio::test]
async fn sign_up_refuses_common_and_personal_passwords_and_keeps_nothing() {
    let app = spawn_app().await;
    let (name, mail) = (username("pol"), email("pol"));
    for (password, rule) in [
        ("password123", "common"),
        ("qwertyuiop", "common"),
        (&*format!("my {name} secret!"), "username"),
        (
            &*format!("{}!!xyz", mail.split('@').next().unwrap()),
            "email",
        ),
    ] {
        let status = assert_error(
            app.register(&name, &mail, password).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        let why = refused_because(&status, "password");
        assert!(why.contains(rule), "{password}: {why}");
    }
    assert!(app.mails_to(&mail).is_empty(), "no code mailed");
    app.register(&name, &mail, PASSWORD)
        .await
        .expect("a strong one passes");
}

#[tokio::test]
async fn the_minimum_strength_is_configurable() {
    let lenient = spawn_app_with(&[("PASSWORD_MIN_SCORE", "0")]).await;
    lenient
        .register(&username("len"), &email("len"), "password123")
        .await
        .expect("no strength asked");
    let strict = spawn_app_with(&[("PASSWORD_MIN_SCORE", "4")]).await;
    let status = assert_error(
        strict
            .register(&username("str"), &email("str"), "correct horse")
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert!(refused_because(&status, "password").contains("at least 4"));
}

#[tokio::test]
async fn reset_and_change_refuse_weak_new_passwords_and_keep_the_old_one() {
    let app = spawn_app().await;
    let mail = email("polr");
    let (_, tokens) = app.signup(&username("polr"), &mail).await;
    let status = assert_error(
        app.client()
            .change_password(authed(
                pb::ChangePasswordRequest {
                    current_password: PASSWORD.into(),
                    new_password: "12345678".into(),
                },
                &tokens.access_token,
            ))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert!(refused_because(&status, "new_password").contains("too easy to guess"));

    let reset_id = app.request_reset(&mail).await.unwrap();
    let code = app.wait_for_code(&mail, 2).await;
    let status = assert_error(
        app.reset(&mail, &reset_id, &code, "iloveyou2").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    refused_because(&status, "new_password");
    // Nothing changed: the old password still signs in, and the same code finishes the reset.
    assert!(app.login(&mail, PASSWORD).await.unwrap().tokens.is_some());
    app.reset(&mail, &reset_id, &code, "a much better passphrase")
        .await
        .expect("the code still works");
    assert!(app.login(&mail, "a much better passphrase").await.is_ok());
}
