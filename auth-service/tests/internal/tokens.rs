//! Service credentials: only a configured token opens InternalAuthService, and only a caller
//! presenting one has its forwarded client address believed.

use baatcheet_auth_api::v1 as pb;
use tonic::{Code, Request};

use super::{Deployment, credential, internal, on_every_backend, with_token};
use crate::helpers::{PASSWORD, assert_error, authed, email, spawn_app_with, username};

on_every_backend!(anything_but_a_configured_service_token_is_unauthenticated);

async fn anything_but_a_configured_service_token_is_unauthenticated(d: Deployment) {
    let (chat, other) = (credential("chat"), credential("other"));
    let app = d.instance(&[&chat], &[]).await;
    let (user, tokens) = d.signup(&app, "svc").await;
    let mut client = internal(&app).await;
    let get = || pb::GetUserRequest {
        user_id: user.id.clone(),
    };
    let refusals = [
        client.get_user(Request::new(get())).await,
        client.get_user(with_token(get(), &other.token)).await,
        client
            .get_user(with_token(get(), &tokens.access_token))
            .await,
        client.get_user(with_token(get(), &chat.line)).await,
        client
            .get_user(with_token(get(), &format!("{}x", chat.token)))
            .await,
    ];
    for refused in refusals {
        let status = assert_error(refused, Code::Unauthenticated, "UNAUTHENTICATED");
        assert!(!status.message().contains(&chat.token));
    }
    // Nothing is said about the user to an unauthenticated caller, not even whether it exists.
    let ghost = client
        .get_user(Request::new(pb::GetUserRequest {
            user_id: "nobody".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(ghost.code(), Code::Unauthenticated);
    let found = client
        .get_user(with_token(get(), &chat.token))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(found.username, user.username);
    // Streams too.
    let watch = client
        .watch_events(with_token(
            pb::WatchEventsRequest::default(),
            &tokens.access_token,
        ))
        .await;
    assert_error(watch, Code::Unauthenticated, "UNAUTHENTICATED");
}

#[tokio::test]
async fn with_no_service_token_configured_the_internal_api_is_closed() {
    let app = spawn_app_with(&[]).await;
    let chat = credential("chat");
    let mut client = internal(&app).await;
    let refused = client
        .batch_get_users(with_token(pb::BatchGetUsersRequest::default(), &chat.token))
        .await;
    assert_error(refused, Code::Unauthenticated, "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_cli_mints_a_token_the_service_accepts_by_its_printed_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .args(["token", "new", "socket-1"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("socket-1:"))
        .unwrap_or_else(|| panic!("no SERVICE_TOKENS line in {stderr:?}"))
        .to_owned();
    assert!(
        !stderr.contains(&token),
        "the token is printed once, on stdout"
    );
    let app = spawn_app_with(&[("SERVICE_TOKENS", &line)]).await;
    internal(&app)
        .await
        .get_presence(with_token(pb::GetPresenceRequest::default(), &token))
        .await
        .unwrap();
    // A bad name is refused with exit code 2.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .args(["token", "new", "has space"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn with_tokens_configured_client_metadata_is_believed_only_with_one() {
    let gateway = credential("gateway");
    let app = spawn_app_with(&[("SERVICE_TOKENS", &gateway.line)]).await;
    let mail = email("meta");
    app.signup(&username("meta"), &mail).await;
    let login = |with_credential: bool| {
        let mut request = Request::new(pb::LoginRequest {
            identifier: mail.clone(),
            password: PASSWORD.into(),
        });
        let meta = request.metadata_mut();
        meta.insert("x-client-ip", "203.0.113.9".parse().unwrap());
        meta.insert("x-client-user-agent", "Browser/1".parse().unwrap());
        if with_credential {
            let value = format!("Bearer {}", gateway.token);
            meta.insert("x-service-authorization", value.parse().unwrap());
        }
        let mut client = app.client();
        async move { client.login(request).await.unwrap().into_inner() }
    };
    // From loopback (a TRUSTED_PROXIES address) but without the credential: not believed.
    let plain = login(false).await.tokens.unwrap();
    let believed = login(true).await.tokens.unwrap();
    let sessions = app
        .client()
        .list_sessions(authed(
            pb::ListSessionsRequest::default(),
            &believed.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let ip_of = |id: &str| {
        sessions
            .iter()
            .find(|s| s.id == id)
            .map(|s| (s.client_ip.clone(), s.user_agent.clone()))
            .unwrap()
    };
    assert_eq!(ip_of(&believed.session_id).0, "203.0.113.9");
    assert_eq!(ip_of(&believed.session_id).1, "Browser/1");
    assert_eq!(ip_of(&plain.session_id).0, "127.0.0.1");
    assert_ne!(ip_of(&plain.session_id).1, "Browser/1");
}
