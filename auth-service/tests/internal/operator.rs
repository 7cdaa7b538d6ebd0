//! Operator actions on every backend: only a service named in OPERATOR_SERVICES may call them;
//! FindUserByEmail, ListUserSessions, DisableUser (every session ends at once, sign-in refused
//! after the first factor, a suspension that lifts by itself), EnableUser, RevokeUserSessions,
//! each watched on the event stream; and sign-ins racing a suspension leave no live session.

use std::time::Duration;

use baatcheet_auth_api::v1::{self as pb, EventType, SessionRevokeReason};
use tonic::Code;

use super::{Deployment, credential, internal, on_every_backend, watch, with_token};
use crate::helpers::{PASSWORD, assert_error, violated_fields};

on_every_backend!(
    an_operator_disables_enables_and_signs_out_an_account,
    sign_ins_racing_a_suspension_leave_no_session,
    an_operator_deletes_an_account,
);

fn metadata_value(status: &tonic::Status, key: &str) -> Option<String> {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}

async fn an_operator_disables_enables_and_signs_out_an_account(d: Deployment) {
    let (ops, socket) = (credential("ops"), credential("socket"));
    let app = d
        .instance(&[&ops, &socket], &[("OPERATOR_SERVICES", "ops")])
        .await;
    let mut client = internal(&app).await;
    let mut events = watch(
        &app,
        &socket.token,
        &[
            EventType::UserDisabled,
            EventType::UserEnabled,
            EventType::SessionRevoked,
        ],
    )
    .await;

    let (user, phone) = d.signup(&app, "operated").await;
    let laptop = app.login(&user.email, PASSWORD).await.unwrap();
    let laptop = laptop.tokens.unwrap();
    let reader = client.clone();
    let find = |email: String, token: Option<&str>| {
        let mut client = reader.clone();
        let request = pb::FindUserByEmailRequest { email };
        let request = match token {
            Some(token) => with_token(request, token),
            None => tonic::Request::new(request),
        };
        async move { client.find_user_by_email(request).await }
    };

    // Only an operator: another service's credential is refused, none is unauthenticated.
    assert_error(
        find(user.email.clone(), Some(&socket.token)).await,
        Code::PermissionDenied,
        "OPERATOR_ONLY",
    );
    assert_error(
        find(user.email.clone(), None).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    let account = find(user.email.to_uppercase(), Some(&ops.token))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(
        (account.id.as_str(), account.email.as_str()),
        (user.id.as_str(), user.email.as_str())
    );
    assert!(account.suspension.is_none());
    assert_error(
        find("nobody-here@example.com".into(), Some(&ops.token)).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let bad = assert_error(
        find("not an email".into(), Some(&ops.token)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&bad), ["email"]);

    let list = |token: &str| {
        let mut client = reader.clone();
        let request = with_token(
            pb::ListUserSessionsRequest {
                user_id: user.id.clone(),
            },
            token,
        );
        async move { client.list_user_sessions(request).await }
    };
    assert_error(
        list(&socket.token).await,
        Code::PermissionDenied,
        "OPERATOR_ONLY",
    );
    let mut listed: Vec<String> = list(&ops.token)
        .await
        .unwrap()
        .into_inner()
        .sessions
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    let mut expected = vec![phone.session_id.clone(), laptop.session_id.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // Bad input names each field, and changes nothing.
    let past = pb::DisableUserRequest {
        user_id: user.id.clone(),
        reason: "  ".into(),
        until_time: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
    };
    let bad = assert_error(
        client.disable_user(with_token(past, &ops.token)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&bad), ["reason", "until"]);
    app.validate(&phone.access_token).await.unwrap();
    let unknown = pb::DisableUserRequest {
        user_id: "0190a8e2-7c1d-7000-8000-00000000dead".into(),
        reason: "spam".into(),
        until_time: None,
    };
    assert_error(
        client.disable_user(with_token(unknown, &ops.token)).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );

    // Disabled: every session ends at once, and each ending is an event.
    let disabled = client
        .disable_user(with_token(
            pb::DisableUserRequest {
                user_id: user.id.clone(),
                reason: "reported for spam".into(),
                until_time: None,
            },
            &ops.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(disabled.sessions_ended, 2);
    let suspension = disabled.account.unwrap().suspension.unwrap();
    assert_eq!(suspension.reason, "reported for spam");
    assert!(suspension.until_time.is_none());
    let event = events.next(&user.id).await;
    assert_eq!(event.r#type, EventType::UserDisabled as i32);
    for _ in 0..2 {
        let event = events.next(&user.id).await;
        assert_eq!(
            (event.r#type, event.reason),
            (
                EventType::SessionRevoked as i32,
                SessionRevokeReason::Operator as i32
            )
        );
    }
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
    assert!(
        list(&ops.token)
            .await
            .unwrap()
            .into_inner()
            .sessions
            .is_empty()
    );
    // Sign-in: refused once the password is right; a wrong one learns nothing new.
    let refused = assert_error(
        app.login(&user.email, PASSWORD).await,
        Code::PermissionDenied,
        "USER_DISABLED",
    );
    assert_eq!(metadata_value(&refused, "until"), None, "for good");
    assert_error(
        app.login(&user.email, "not-the-password-at-all").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert!(
        list(&ops.token)
            .await
            .unwrap()
            .into_inner()
            .sessions
            .is_empty()
    );

    // Enabled: sign-in works again.
    let enabled = client
        .enable_user(with_token(
            pb::EnableUserRequest {
                user_id: user.id.clone(),
            },
            &ops.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(enabled.account.unwrap().suspension.is_none());
    assert_eq!(
        events.next(&user.id).await.r#type,
        EventType::UserEnabled as i32
    );
    let back = app
        .login(&user.email, PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();
    app.validate(&back.access_token).await.unwrap();

    // RevokeUserSessions: ends them, the account stays usable.
    let revoked = client
        .revoke_user_sessions(with_token(
            pb::RevokeUserSessionsRequest {
                user_id: user.id.clone(),
            },
            &ops.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.sessions_ended, 1);
    let event = events.next(&user.id).await;
    assert_eq!(
        (event.r#type, event.session_id.as_str(), event.reason),
        (
            EventType::SessionRevoked as i32,
            back.session_id.as_str(),
            SessionRevokeReason::Operator as i32
        )
    );
    assert_error(
        app.validate(&back.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );

    // A suspension with an end lifts by itself.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let until = prost_types::Timestamp {
        seconds: (now + Duration::from_secs(2)).as_secs() as i64,
        nanos: 0,
    };
    client
        .disable_user(with_token(
            pb::DisableUserRequest {
                user_id: user.id.clone(),
                reason: "cool-off".into(),
                until_time: Some(until),
            },
            &ops.token,
        ))
        .await
        .unwrap();
    let refused = assert_error(
        app.login(&user.email, PASSWORD).await,
        Code::PermissionDenied,
        "USER_DISABLED",
    );
    assert_eq!(metadata_value(&refused, "until"), Some(until.to_string()));
    tokio::time::sleep(Duration::from_millis(2600)).await;
    app.login(&user.email, PASSWORD).await.unwrap();

    // The user's security log, as operators read it (this backend's log: SQLite or MongoDB).
    let log = |token: &str, kinds: &[&str], page_token: &str| {
        let mut client = reader.clone();
        let request = with_token(
            pb::ListUserSecurityEventsRequest {
                user_id: user.id.clone(),
                page_size: 3,
                page_token: page_token.into(),
                kinds: kinds.iter().map(|k| k.to_string()).collect(),
            },
            token,
        );
        async move { client.list_user_security_events(request).await }
    };
    assert_error(
        log(&socket.token, &[], "").await,
        Code::PermissionDenied,
        "OPERATOR_ONLY",
    );
    let bad = assert_error(
        log(&ops.token, &["sign_in", "nonsense"], "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&bad), ["kinds"]);
    let mut kinds = Vec::new();
    let mut next = String::new();
    loop {
        let reply = log(
            &ops.token,
            &["disabled", "enabled", "sign_in_refused"],
            &next,
        )
        .await
        .unwrap()
        .into_inner();
        kinds.extend(reply.events.into_iter().map(|e| e.kind));
        if reply.next_page_token.is_empty() {
            break;
        }
        next = reply.next_page_token;
    }
    assert_eq!(
        kinds,
        [
            "sign_in_refused",
            "disabled",
            "enabled",
            "sign_in_refused",
            "disabled"
        ],
        "newest first"
    );
}

/// Sign-ins that were checking the password while the suspension landed: whichever finished
/// first, no session of the user is live afterwards.
async fn sign_ins_racing_a_suspension_leave_no_session(d: Deployment) {
    let ops = credential("ops");
    let app = d.instance(&[&ops], &[("OPERATOR_SERVICES", "ops")]).await;
    let (user, _) = d.signup(&app, "racing").await;
    let mut client = internal(&app).await;
    let logins: Vec<_> = (0..6)
        .map(|_| {
            let (app_client, email) = (app.client(), user.email.clone());
            tokio::spawn(async move {
                let mut c = app_client;
                c.login(pb::LoginRequest {
                    identifier: email,
                    password: PASSWORD.into(),
                })
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    client
        .disable_user(with_token(
            pb::DisableUserRequest {
                user_id: user.id.clone(),
                reason: "race".into(),
                until_time: None,
            },
            &ops.token,
        ))
        .await
        .unwrap();
    let mut refused = 0;
    for login in logins {
        match login.await.unwrap() {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(
                    crate::helpers::reason(&status),
                    "USER_DISABLED",
                    "{status:?}"
                );
                refused += 1;
            }
        }
    }
    let live = client
        .list_user_sessions(with_token(
            pb::ListUserSessionsRequest {
                user_id: user.id.clone(),
            },
            &ops.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert!(live.is_empty(), "{refused} refused; live: {live:?}");
}

/// DeleteUser: operators only; the sessions end (reason account_deleted), then the user goes
/// (user.deleted); the email and username are free again.
async fn an_operator_deletes_an_account(d: Deployment) {
    let (ops, socket) = (credential("ops"), credential("socket"));
    let app = d
        .instance(&[&ops, &socket], &[("OPERATOR_SERVICES", "ops")])
        .await;
    let mut client = internal(&app).await;
    let mut events = watch(
        &app,
        &socket.token,
        &[EventType::UserDeleted, EventType::SessionRevoked],
    )
    .await;
    let (name, mail) = (
        crate::helpers::username("deleted"),
        crate::helpers::email("deleted"),
    );
    let (user, tokens) = d.signup_as(&app, &name, &mail).await;
    let request = |token: &str, reason: &str| {
        with_token(
            pb::DeleteUserRequest {
                user_id: user.id.clone(),
                reason: reason.into(),
            },
            token,
        )
    };
    assert_error(
        client.delete_user(request(&socket.token, "spam")).await,
        Code::PermissionDenied,
        "OPERATOR_ONLY",
    );
    let bad = assert_error(
        client.delete_user(request(&ops.token, "")).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&bad), ["reason"]);
    app.validate(&tokens.access_token).await.unwrap();

    client
        .delete_user(request(&ops.token, "asked by email"))
        .await
        .unwrap();
    let revoked = events.next(&user.id).await;
    assert_eq!(
        (revoked.r#type, revoked.reason),
        (
            EventType::SessionRevoked as i32,
            SessionRevokeReason::AccountDeleted as i32
        )
    );
    assert_eq!(
        events.next(&user.id).await.r#type,
        EventType::UserDeleted as i32
    );
    assert_error(
        app.validate(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert_error(
        client
            .find_user_by_email(with_token(
                pb::FindUserByEmailRequest {
                    email: mail.clone(),
                },
                &ops.token,
            ))
            .await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    assert_error(
        client.delete_user(request(&ops.token, "again")).await,
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    // Free again: the goodbye notice first (mail 2), then a new sign-up with both.
    for _ in 0..600 {
        if d.mails(&app, &mail) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        d.mails(&app, &mail),
        2,
        "the sign-up code and the goodbye notice"
    );
    let (again, _) = d.signup_as(&app, &name, &mail).await;
    assert_ne!(again.id, user.id);
}
