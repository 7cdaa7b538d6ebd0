//! Email change: the code goes to the new address and only the session that asked can use it;
//! the old address gets a notice and loses its pending resets; a taken address is answered
//! alike (its owner notified, no code can finish it); bad input names its field; and an email
//! change racing a sign-up for the same address ends with exactly one winner.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use tonic::{Code, Status};

use crate::helpers::*;

async fn request_change(
    app: &TestApp,
    token: &str,
    new_email: &str,
    password: &str,
) -> Result<pb::RequestEmailChangeResponse, Status> {
    app.client()
        .request_email_change(authed(
            pb::RequestEmailChangeRequest {
                new_email: new_email.into(),
                current_password: password.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn confirm_change(app: &TestApp, token: &str, code: &str) -> Result<pb::User, Status> {
    app.client()
        .confirm_email_change(authed(
            pb::ConfirmEmailChangeRequest { code: code.into() },
            token,
        ))
        .await
        .map(|r| r.into_inner().user.expect("user"))
}

async fn mail_number(app: &TestApp, to: &str, n: usize) -> baatcheet_test_support::mail::Mail {
    for _ in 0..400 {
        let mails = app.mails_to(to);
        if mails.len() >= n {
            return mails[n - 1].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no mail number {n} to {to}");
}

#[tokio::test]
async fn the_new_address_gets_a_code_that_only_the_asking_session_can_use() {
    let app = spawn_app().await;
    let (old, new) = (email("chg-old"), email("chg-new"));
    let (user, phone) = app.signup(&username("chg"), &old).await;
    let laptop = app.login(&old, PASSWORD).await.unwrap().tokens.unwrap();
    // A reset started at the old address before the change.
    let reset_id = app.request_reset(&old).await.unwrap();
    let reset_code = app.wait_for_code(&old, 2).await;

    // Bad input names its field; a wrong password changes nothing.
    for (new_email, field) in [("not an email", "new_email"), (old.as_str(), "new_email")] {
        let bad = assert_error(
            request_change(&app, &phone.access_token, new_email, PASSWORD).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&bad), [field]);
    }
    assert_error(
        request_change(&app, &phone.access_token, &new, "wrong password!").await,
        Code::InvalidArgument,
        "WRONG_PASSWORD",
    );
    assert!(app.mails_to(&new).is_empty());

    let asked = request_change(&app, &phone.access_token, &new, PASSWORD)
        .await
        .unwrap();
    assert!(asked.code_expire_time.is_some());
    let code = app.wait_for_code(&new, 1).await;
    // Another session of the same user, or no asking at all: nothing to confirm.
    assert_error(
        confirm_change(&app, &laptop.access_token, &code).await,
        Code::NotFound,
        "EMAIL_CHANGE_NOT_FOUND",
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_error(
        confirm_change(&app, &phone.access_token, wrong).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    let changed = confirm_change(&app, &phone.access_token, &code)
        .await
        .unwrap();
    assert_eq!(
        (changed.id.as_str(), changed.email.as_str()),
        (user.id.as_str(), new.as_str())
    );
    // Used: the same code again finds nothing.
    assert_error(
        confirm_change(&app, &phone.access_token, &code).await,
        Code::NotFound,
        "EMAIL_CHANGE_NOT_FOUND",
    );

    // The new address signs in, the old one no longer; sessions go on.
    app.login(&new, PASSWORD).await.unwrap();
    assert_error(
        app.login(&old, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    app.validate(&laptop.access_token).await.unwrap();
    // The old address was told, with the new one and where from; its reset is void.
    let notice = mail_number(&app, &old, 3).await;
    assert!(
        notice.subject.contains("email address"),
        "{}",
        notice.subject
    );
    assert!(
        notice.text.contains(&new) && notice.text.contains("127.0.0.1"),
        "{}",
        notice.text
    );
    assert_error(
        app.reset(&old, &reset_id, &reset_code, "a completely new passphrase")
            .await,
        Code::NotFound,
        "RESET_NOT_FOUND",
    );
    // Someone else's session cannot confirm a change it did not ask for.
    let (_, other) = app
        .signup(&username("chg-other"), &email("chg-other"))
        .await;
    assert_error(
        confirm_change(&app, &other.access_token, &code).await,
        Code::NotFound,
        "EMAIL_CHANGE_NOT_FOUND",
    );
}

#[tokio::test]
async fn an_address_another_account_has_is_answered_alike_and_never_changes_hands() {
    let app = spawn_app().await;
    let (mine, theirs) = (email("taken-mine"), email("taken-theirs"));
    let (me, tokens) = app.signup(&username("taken-me"), &mine).await;
    app.signup(&username("taken-them"), &theirs).await;
    let asked = request_change(&app, &tokens.access_token, &theirs, PASSWORD)
        .await
        .unwrap();
    assert!(
        asked.code_expire_time.is_some(),
        "the same answer as for a free address"
    );
    // Its owner is told; no code is mailed anywhere.
    let notice = mail_number(&app, &theirs, 2).await;
    assert!(
        notice.subject.contains("tried to use your address"),
        "{}",
        notice.subject
    );
    let six_digits =
        |line: &str| line.trim().len() == 6 && line.trim().bytes().all(|b| b.is_ascii_digit());
    assert!(
        !notice.text.lines().any(six_digits),
        "no code in it: {}",
        notice.text
    );
    // Guesses are counted like wrong codes, and the request dies after them.
    for _ in 0..5 {
        assert_error(
            confirm_change(&app, &tokens.access_token, "123456").await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    assert_error(
        confirm_change(&app, &tokens.access_token, "123456").await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
    assert_eq!(app.me(&tokens.access_token).await.unwrap().email, me.email);
}

/// A change to an address and a sign-up with it, both with their right codes, racing: the
/// unique index lets exactly one of them have it.
#[tokio::test]
async fn an_email_change_racing_a_sign_up_for_the_address_has_one_winner() {
    let app = spawn_app().await;
    for round in 0..4 {
        let contested = email(&format!("contested{round}"));
        let (_, tokens) = app
            .signup(
                &username(&format!("racer{round}")),
                &email(&format!("racer{round}")),
            )
            .await;
        request_change(&app, &tokens.access_token, &contested, PASSWORD)
            .await
            .unwrap();
        let change_code = app.wait_for_code(&contested, 1).await;
        let registration = app
            .register(&username(&format!("newcomer{round}")), &contested, PASSWORD)
            .await
            .unwrap()
            .registration_id;
        let signup_code = app.wait_for_code(&contested, 2).await;
        let (changed, signed_up) = tokio::join!(
            confirm_change(&app, &tokens.access_token, &change_code),
            app.verify(&contested, &registration, &signup_code),
        );
        match (&changed, &signed_up) {
            (Ok(user), Err(status)) => {
                assert_eq!(user.email, contested);
                assert_eq!(reason(status), "EMAIL_TAKEN", "{status:?}");
            }
            (Err(status), Ok(_)) => {
                assert_eq!(reason(status), "EMAIL_TAKEN", "{status:?}");
                assert_eq!(violated_fields(status), ["new_email"]);
            }
            other => panic!("round {round}: exactly one must win: {other:?}"),
        }
    }
}
