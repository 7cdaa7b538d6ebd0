//! The security log over gRPC: what a user's actions write (with the client's address and user
//! agent where a request of theirs caused it), paging newest first, one user's log only, bad
//! page parameters named, nothing secret in any entry, and the retention.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use tonic::{Code, Request, Status};

use crate::helpers::*;

async fn page(
    app: &TestApp,
    token: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListSecurityEventsResponse, Status> {
    app.client()
        .list_security_events(authed(
            pb::ListSecurityEventsRequest {
                page_size,
                page_token: page_token.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Every entry of the caller's log, newest first, read `size` at a time.
async fn all(app: &TestApp, token: &str, size: i32) -> Vec<pb::SecurityEvent> {
    let (mut out, mut next) = (Vec::new(), String::new());
    loop {
        let reply = page(app, token, size, &next).await.unwrap();
        assert!(reply.events.len() <= size as usize);
        out.extend(reply.events);
        if reply.next_page_token.is_empty() {
            return out;
        }
        next = reply.next_page_token;
    }
}

#[tokio::test]
async fn a_users_actions_are_logged_with_where_they_came_from_and_nothing_secret() {
    let app = spawn_app().await;
    let mail = email("audit");
    let (_, first) = app.signup(&username("audit"), &mail).await;
    // A wrong password, then a sign-in from a known client (the loopback peer is a trusted
    // proxy, so its x-client-* metadata is believed).
    assert_error(
        app.login(&mail, "not the password at all").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    let mut request = Request::new(pb::LoginRequest {
        identifier: mail.clone(),
        password: PASSWORD.into(),
    });
    request
        .metadata_mut()
        .insert("x-client-ip", "203.0.113.7".parse().unwrap());
    request
        .metadata_mut()
        .insert("x-client-user-agent", "Firefox/130".parse().unwrap());
    let laptop = app
        .client()
        .login(request)
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let new_password = "a completely different passphrase";
    app.client()
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: new_password.into(),
            },
            &laptop.access_token,
        ))
        .await
        .unwrap();
    // The failed sign-in is written without making its answer wait: give it a moment.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = all(&app, &laptop.access_token, 2).await;
        if events.iter().any(|e| e.kind == "sign_in_failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["password_changed", "sign_in", "sign_in_failed", "sign_in"],
        "{events:#?}"
    );
    let times: Vec<i64> = events.iter().map(|e| e.time.unwrap().seconds).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let login = &events[1];
    assert_eq!(
        (
            login.detail.as_str(),
            login.client_ip.as_str(),
            login.user_agent.as_str()
        ),
        ("password", "203.0.113.7", "Firefox/130")
    );
    assert_eq!(login.session_id, laptop.session_id);
    assert_eq!(
        events[3].detail, "password+email_code",
        "the sign-up's session"
    );
    assert_eq!(events[3].session_id, first.session_id);
    let everything = format!("{events:?}");
    for secret in [
        PASSWORD,
        new_password,
        "not the password at all",
        &first.access_token,
        &first.refresh_token,
        &laptop.refresh_token,
    ] {
        assert!(!everything.contains(secret), "a secret in the log");
    }

    // One's own log only.
    let (_, stranger) = app.signup(&username("audit-x"), &email("audit-x")).await;
    let theirs = all(&app, &stranger.access_token, 50).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].session_id, stranger.session_id);

    // Bad page parameters are named.
    for (size, token, field) in [
        (101, "", "page_size"),
        (-1, "", "page_size"),
        (10, "not-a-token", "page_token"),
    ] {
        let bad = assert_error(
            page(&app, &laptop.access_token, size, token).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        assert_eq!(violated_fields(&bad), [field]);
    }
    assert_error(
        page(&app, "not-a-token", 10, "").await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );
}

#[tokio::test]
async fn entries_older_than_the_retention_go() {
    let app = spawn_app_with(&[("AUDIT_RETENTION", "1s")]).await;
    let (_, tokens) = app.signup(&username("retain"), &email("retain")).await;
    assert_eq!(all(&app, &tokens.access_token, 10).await.len(), 1);
    let mut left = usize::MAX;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = all(&app, &tokens.access_token, 10).await.len();
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "trimmed within 10 s of a 1 s retention");
}

/// A stranger's wrong passwords, from many networks: each is counted by the login limits, but
/// at most 30 an hour are written to the owner's log, so no one can grow it without bound.
#[tokio::test]
async fn strangers_cannot_grow_a_users_log_without_bound() {
    let app = spawn_app_with(&[("LOGIN_SLOWDOWN_AFTER", "1000")]).await;
    let mail = email("flood");
    let (_, tokens) = app.signup(&username("flood"), &mail).await;
    for n in 0..45u8 {
        let mut request = Request::new(pb::LoginRequest {
            identifier: mail.clone(),
            password: format!("wrong password {n}"),
        });
        request
            .metadata_mut()
            .insert("x-client-ip", format!("198.51.100.{n}").parse().unwrap());
        let refused = app.client().login(request).await.unwrap_err();
        assert_eq!(reason(&refused), "INVALID_CREDENTIALS");
    }
    let mut failed = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = all(&app, &tokens.access_token, 100).await;
        let count = now.iter().filter(|e| e.kind == "sign_in_failed").count();
        if count == failed && count > 0 {
            break; // settled
        }
        failed = count;
    }
    assert_eq!(failed, 30, "the hourly share of failures");
}
