//! DeleteAccount: the proof it needs (and that a wrong one changes nothing), what goes (every
//! session, the sign-in, the factors), what becomes free (the email and username), the goodbye
//! notice; and deletion racing sign-ins, which must leave no live session and no user behind.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use baatcheet_test_support::totp;
use tonic::{Code, Status};

use crate::api::mfa::{confirm, start};
use crate::helpers::*;

async fn delete(
    app: &TestApp,
    token: &str,
    proof: Option<pb::delete_account_request::Proof>,
) -> Result<pb::DeleteAccountResponse, Status> {
    app.client()
        .delete_account(authed(pb::DeleteAccountRequest { proof }, token))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn deleting_an_account_needs_a_proof_and_frees_its_email_and_username() {
    use pb::delete_account_request::Proof;
    let app = spawn_app().await;
    let (name, mail) = (username("goodbye"), email("goodbye"));
    let (user, phone) = app.signup(&name, &mail).await;
    let laptop = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();

    // Without a proof, or with a wrong one, nothing happens.
    let missing = assert_error(
        delete(&app, &phone.access_token, None).await,
        Code::InvalidArgument,
        "MFA_REQUIRED",
    );
    assert_eq!(violated_fields(&missing), ["proof"]);
    assert_error(
        delete(
            &app,
            &phone.access_token,
            Some(Proof::Password("wrong password!".into())),
        )
        .await,
        Code::InvalidArgument,
        "WRONG_PASSWORD",
    );
    assert_error(
        delete(&app, "not-a-token", Some(Proof::Password(PASSWORD.into()))).await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );
    app.validate(&laptop.access_token).await.unwrap();
    assert_eq!(app.me(&phone.access_token).await.unwrap().id, user.id);

    delete(
        &app,
        &phone.access_token,
        Some(Proof::Password(PASSWORD.into())),
    )
    .await
    .unwrap();
    // Every session is over, on every device, and the password signs no one in.
    for tokens in [&phone, &laptop] {
        assert_error(
            app.validate(&tokens.access_token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
        assert_error(
            app.refresh(&tokens.refresh_token).await,
            Code::Unauthenticated,
            "REFRESH_TOKEN_INVALID",
        );
    }
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    // A second deletion with a token of the deleted account finds no session.
    assert_error(
        delete(
            &app,
            &phone.access_token,
            Some(Proof::Password(PASSWORD.into())),
        )
        .await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The goodbye notice, after the sign-up code.
    let goodbye = wait_for_mail(&app, &mail, 2).await;
    assert!(goodbye.subject.contains("deleted"), "{}", goodbye.subject);
    assert!(goodbye.text.contains(&name));

    // The email and the username are free: someone signs up with both, as a new user.
    let (again, _) = app.signup(&name, &mail).await;
    assert_ne!(again.id, user.id);
}

#[tokio::test]
async fn with_two_factor_sign_in_a_current_code_deletes_the_account() {
    use pb::delete_account_request::Proof;
    let app = spawn_app().await;
    let mail = email("del2fa");
    let (_, tokens) = app.signup(&username("del2fa"), &mail).await;
    let secret = start(&app, &tokens.access_token).await.unwrap().secret;
    confirm(
        &app,
        &tokens.access_token,
        &totp::code_now(&secret),
        PASSWORD,
    )
    .await
    .unwrap();
    assert_error(
        delete(
            &app,
            &tokens.access_token,
            Some(Proof::TotpCode("12345".into())),
        )
        .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    delete(
        &app,
        &tokens.access_token,
        Some(Proof::TotpCode(totp::code_next(&secret))),
    )
    .await
    .unwrap();
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
}

/// Sign-ins that checked the password while the account was being deleted: whichever
/// finished first, afterwards no session of the old account is live, and the account stays
/// gone (a new sign-up with the same email is a new user).
#[tokio::test]
async fn deletion_racing_sign_ins_leaves_no_session_and_no_user() {
    use pb::delete_account_request::Proof;
    let app = spawn_app().await;
    let (name, mail) = (username("delrace"), email("delrace"));
    let (user, tokens) = app.signup(&name, &mail).await;
    let logins: Vec<_> = (0..6)
        .map(|_| {
            let (mut client, mail) = (app.client(), mail.clone());
            tokio::spawn(async move {
                client
                    .login(pb::LoginRequest {
                        identifier: mail,
                        password: PASSWORD.into(),
                    })
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    delete(
        &app,
        &tokens.access_token,
        Some(Proof::Password(PASSWORD.into())),
    )
    .await
    .unwrap();
    for login in logins {
        match login.await.unwrap() {
            // Signed in before the deletion: the deletion ended that session.
            Ok(reply) => {
                let won = reply.into_inner().tokens.unwrap();
                assert_error(
                    app.validate(&won.access_token).await,
                    Code::Unauthenticated,
                    "SESSION_REVOKED",
                );
            }
            Err(status) => assert_eq!(reason(&status), "INVALID_CREDENTIALS", "{status:?}"),
        }
    }
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    wait_for_mail(&app, &mail, 2).await; // the goodbye, so that the next code is mail 3
    let (again, _) = app.signup(&name, &mail).await;
    assert_ne!(again.id, user.id);
}

async fn wait_for_mail(
    app: &TestApp,
    to: &str,
    count: usize,
) -> baatcheet_test_support::mail::Mail {
    for _ in 0..400 {
        let mails = app.mails_to(to);
        if mails.len() >= count {
            return mails[count - 1].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no mail number {count} to {to}");
}
