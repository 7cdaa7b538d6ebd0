//! Second factors, passkeys and sign-in by emailed code on every backend (SQLite; Redis +
//! MongoDB with mail through SMTP, two instances), followed on the event stream:
//! factor.enabled, mfa.failed, the sessions a challenge, a code and a passkey start,
//! factor.disabled and the revocations it causes.

use baatcheet_auth_api::v1::{self as pb, EventType, SessionRevokeReason};
use baatcheet_test_support::totp;
use tonic::Code;

use super::{Deployment, credential, internal, on_every_backend, watch, with_token};
use crate::api::mfa::{challenge, complete, confirm, start};
use crate::helpers::{PASSWORD, assert_error, authed};

on_every_backend!(
    two_factor_sign_in_is_watched_from_enrollment_to_disabling,
    passkeys_work_across_instances_and_are_watched,
);

async fn two_factor_sign_in_is_watched_from_enrollment_to_disabling(d: Deployment) {
    use pb::complete_mfa_challenge_request::Factor;
    let socket = credential("socket");
    let app = d.instance(&[&socket], &[]).await;
    let mut events = watch(
        &app,
        &socket.token,
        &[
            EventType::FactorEnabled,
            EventType::FactorDisabled,
            EventType::MfaFailed,
            EventType::SessionRevoked,
        ],
    )
    .await;

    let (user, tokens) = d.signup(&app, "factors").await;
    let secret = start(&app, &tokens.access_token).await.unwrap().secret;
    let recovery = confirm(
        &app,
        &tokens.access_token,
        &totp::code_now(&secret),
        PASSWORD,
    )
    .await
    .unwrap();
    let enabled = events.next(&user.id).await;
    assert_eq!(
        (enabled.r#type, enabled.factor),
        (EventType::FactorEnabled as i32, pb::AuthMethod::Totp as i32)
    );

    // A wrong code is an event; the right one signs in.
    let c = challenge(&app, &user.email).await;
    let wrong = if totp::code_next(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_error(
        complete(&app, &c.challenge_id, Factor::TotpCode(wrong.into())).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    let failed = events.next(&user.id).await;
    assert_eq!(
        (failed.r#type, failed.factor),
        (EventType::MfaFailed as i32, pb::AuthMethod::Totp as i32)
    );
    let by_app = complete(
        &app,
        &c.challenge_id,
        Factor::TotpCode(totp::code_next(&secret)),
    )
    .await
    .unwrap()
    .tokens
    .unwrap();

    // Sign-in by emailed code (the mail through this deployment's mailer), then a recovery code.
    // The sign-up code and the notice that TOTP is on are in; the code asked for next is mail 3.
    for _ in 0..600 {
        if d.mails(&app, &user.email) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let before = d.mails(&app, &user.email);
    assert_eq!(before, 2, "the sign-up code and the notice");
    let sent = app
        .client()
        .request_login_code(pb::RequestLoginCodeRequest {
            email: user.email.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let code = d.code(&app, &user.email, before + 1).await;
    let reply = app
        .client()
        .login_with_code(pb::LoginWithCodeRequest {
            email: user.email.clone(),
            code,
            login_id: sent.login_id,
        })
        .await
        .unwrap()
        .into_inner();
    let c = reply
        .mfa_challenge
        .expect("the second factor is still asked");
    let by_code = complete(
        &app,
        &c.challenge_id,
        Factor::RecoveryCode(recovery[0].clone()),
    )
    .await
    .unwrap()
    .tokens
    .unwrap();
    let sessions = app
        .client()
        .list_sessions(authed(pb::ListSessionsRequest {}, &by_code.access_token))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let methods = |id: &str| {
        sessions
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.auth_methods.clone())
            .unwrap()
    };
    use pb::AuthMethod as M;
    assert_eq!(
        methods(&by_app.session_id),
        [M::Password as i32, M::Totp as i32]
    );
    assert_eq!(
        methods(&by_code.session_id),
        [M::EmailCode as i32, M::RecoveryCode as i32]
    );

    // Turning it off from the first session ends the two others, with the reason.
    app.client()
        .disable_totp(authed(
            pb::DisableTotpRequest {
                proof: Some(pb::disable_totp_request::Proof::Password(PASSWORD.into())),
            },
            &tokens.access_token,
        ))
        .await
        .unwrap();
    let mut ended = Vec::new();
    let mut disabled = false;
    while ended.len() < 2 || !disabled {
        let event = events.next(&user.id).await;
        if event.r#type == EventType::FactorDisabled as i32 {
            disabled = true;
        } else {
            assert_eq!(event.reason, SessionRevokeReason::FactorChanged as i32);
            ended.push(event.session_id);
        }
    }
    ended.sort();
    let mut expected = vec![by_app.session_id, by_code.session_id];
    expected.sort();
    assert_eq!(ended, expected);
}

/// A passkey added through one instance and signed in with through another (the ceremony's
/// state is a ticket in the shared store), its events, and its removal.
async fn passkeys_work_across_instances_and_are_watched(d: Deployment) {
    use crate::api::passkeys::{
        ORIGIN, delete, finish_login, finish_registration, list, password_proof, start_login,
        start_registration,
    };
    let socket = credential("socket");
    let a = d.instance(&[&socket], &[]).await;
    let second = match d {
        Deployment::RedisMongo(_) => Some(d.instance(&[], &[]).await),
        Deployment::Sqlite => None,
    };
    let b = second.as_ref().unwrap_or(&a);
    let mut stream = internal(&a)
        .await
        .watch_events(with_token(
            pb::WatchEventsRequest {
                since_event_id: String::new(),
                types: [EventType::FactorEnabled, EventType::FactorDisabled]
                    .iter()
                    .map(|t| *t as i32)
                    .collect(),
            },
            &socket.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let (user, tokens) = d.signup(&a, "passkeys").await;
    let token = &tokens.access_token;
    let mut key = baatcheet_test_support::passkey::SoftAuthenticator::new(ORIGIN);
    let options = start_registration(&a, token).await.unwrap();
    let added = finish_registration(b, token, key.register(options), "Phone", PASSWORD)
        .await
        .unwrap();
    assert_eq!(list(&a, token).await, std::slice::from_ref(&added));

    let (login_id, options) = start_login(b).await.unwrap();
    let signed_in = finish_login(&a, &login_id, Some(key.assert(options)))
        .await
        .unwrap();
    assert_eq!(signed_in.user.unwrap().id, user.id);
    let session = signed_in.tokens.unwrap();
    let sessions = b.sessions(&session.access_token).await.unwrap();
    let this = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(this.auth_methods, [pb::AuthMethod::Passkey as i32]);
    // The used login id is gone on every instance.
    let (_, options) = start_login(&a).await.unwrap();
    assert_error(
        finish_login(b, &login_id, Some(key.assert(options))).await,
        Code::NotFound,
        "PASSKEY_LOGIN_NOT_FOUND",
    );

    delete(b, token, &added.id, password_proof(PASSWORD))
        .await
        .unwrap();
    assert!(list(&a, token).await.is_empty());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(15), stream.message())
            .await
            .expect("an event within 15 s")
            .unwrap()
            .unwrap();
        if let Some(event) = message.event.filter(|e| e.user_id == user.id) {
            seen.push((event.r#type, event.factor));
        }
    }
    let passkey = pb::AuthMethod::Passkey as i32;
    assert_eq!(
        seen,
        [
            (EventType::FactorEnabled as i32, passkey),
            (EventType::FactorDisabled as i32, passkey)
        ]
    );
}
