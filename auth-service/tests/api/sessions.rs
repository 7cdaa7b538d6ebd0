//! Sessions: refresh rotation and the grace window, bad and expired refresh tokens, listing and
//! revoking per device (one's own only), the session cap, client metadata from trusted proxies
//! only, Logout and LogoutAll, and bearer tokens on authenticated RPCs.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn refresh_rotates_and_a_replay_inside_the_grace_window_keeps_the_session() {
    let app = spawn_app_with(&[("REFRESH_REUSE_GRACE", "10s")]).await;
    let (_, first) = app.signup(&username("rot"), &email("rot")).await;
    let second = app.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.session_id, first.session_id);
    // Same token again inside the grace window (two tabs racing): a fresh access token for the
    // same session, and the same refresh token the first use got, the session's only live one.
    let raced = app.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(raced.session_id, first.session_id);
    assert_eq!(raced.refresh_token, second.refresh_token);
    assert_ne!(raced.access_token, second.access_token);
    app.validate(&raced.access_token).await.unwrap();
    // That one token keeps working, and a racer that replays it again in its own window gets
    // its successor.
    let third = app.refresh(&second.refresh_token).await.unwrap();
    let raced_again = app.refresh(&raced.refresh_token).await.unwrap();
    assert_eq!(raced_again.refresh_token, third.refresh_token);
    // A token older than the previous one is not a replay the session can answer: invalid,
    // and the session goes on.
    assert_error(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    app.validate(&third.access_token).await.unwrap();
    app.refresh(&third.refresh_token).await.unwrap();
}

#[tokio::test]
async fn a_replay_after_the_grace_window_ends_that_session_and_no_other() {
    let app = spawn_app_with(&[("REFRESH_REUSE_GRACE", "1s")]).await;
    let mail = email("replay");
    let (_, stolen) = app.signup(&username("replay"), &mail).await;
    let other = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let current = app.refresh(&stolen.refresh_token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_error(
        app.refresh(&stolen.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_REUSED",
    );
    // The whole family is gone: the newest token and its access token too.
    assert_error(
        app.refresh(&current.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    assert_error(
        app.validate(&current.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The user's other device is untouched.
    app.validate(&other.access_token).await.unwrap();
    app.refresh(&other.refresh_token).await.unwrap();
}

#[tokio::test]
async fn bad_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    let (_, tokens) = app.signup(&username("badrt"), &email("badrt")).await;
    assert_error(
        app.refresh("garbage").await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    let (sid, secret) = tokens.refresh_token.split_once('.').unwrap();
    let forged = format!("{sid}.{}", "A".repeat(secret.len()));
    assert_error(
        app.refresh(&forged).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    let status = assert_error(
        app.refresh("").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["refresh_token"]);
}

#[tokio::test]
async fn sessions_end_after_their_idle_timeout_and_their_maximum_lifetime() {
    let app = spawn_app_with(&[
        ("SESSION_IDLE_TIMEOUT", "2s"),
        ("SESSION_MAX_LIFETIME", "4s"),
    ])
    .await;
    let mail = email("lifetime");
    // Idle: unused for longer than the idle timeout, the session is over.
    let (_, idle) = app.signup(&username("lifetime"), &mail).await;
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_error(
        app.refresh(&idle.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    assert_error(
        app.validate(&idle.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&idle.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );

    // Maximum lifetime: refreshed well inside the idle timeout, it still ends 4 s after it
    // started, and the list shows both deadlines.
    let started = std::time::Instant::now();
    let mut tokens = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let listed = app.sessions(&tokens.access_token).await.unwrap();
    let session = listed.iter().find(|s| s.current).unwrap();
    let (created, max) = (
        session.create_time.unwrap(),
        session.max_expire_time.unwrap(),
    );
    let ms = |t: prost_types::Timestamp| t.seconds * 1000 + i64::from(t.nanos / 1_000_000);
    assert_eq!(ms(max), ms(created) + 4000);
    let expire = session.expire_time.unwrap();
    assert!(
        expire.seconds <= max.seconds,
        "the idle deadline is never past the maximum"
    );
    let mut refreshes = 0;
    let refused = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match app.refresh(&tokens.refresh_token).await {
            Ok(next) => {
                let until = next.refresh_token_expire_time.unwrap();
                assert!(
                    until.seconds <= max.seconds,
                    "a refresh never extends past the maximum"
                );
                tokens = next;
                refreshes += 1;
                assert!(refreshes < 20, "the session outlived its maximum lifetime");
            }
            Err(status) => break status,
        }
    };
    assert_eq!(reason(&refused), "SESSION_EXPIRED", "{refused:?}");
    assert!(refreshes >= 3, "refreshed {refreshes} times first");
    assert!(started.elapsed() >= Duration::from_millis(3900));
    assert_error(
        app.validate(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
}

#[tokio::test]
async fn sessions_are_listed_per_device_and_can_be_revoked() {
    let app = spawn_app().await;
    let mail = email("dev");
    let (_, phone) = app.signup(&username("dev"), &mail).await;
    let mut login = tonic::Request::new(pb::LoginRequest {
        identifier: mail.clone(),
        password: PASSWORD.into(),
    });
    login
        .metadata_mut()
        .insert("x-client-user-agent", "Firefox/130".parse().unwrap());
    login
        .metadata_mut()
        .insert("x-client-ip", "203.0.113.7".parse().unwrap());
    let laptop = app
        .client()
        .login(login)
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();

    let sessions = app.sessions(&laptop.access_token).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].id, laptop.session_id);
    assert_eq!(
        (
            current[0].user_agent.as_str(),
            current[0].client_ip.as_str()
        ),
        ("Firefox/130", "203.0.113.7")
    );
    let phone_session = sessions.iter().find(|s| s.id == phone.session_id).unwrap();
    assert_eq!(
        phone_session.client_ip, "127.0.0.1",
        "the TCP peer when no gateway forwards one"
    );
    assert!(phone_session.create_time.is_some() && phone_session.expire_time.is_some());

    app.client()
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                session_id: phone.session_id.clone(),
            },
            &laptop.access_token,
        ))
        .await
        .unwrap();
    assert_error(
        app.validate(&phone.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&phone.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    assert_eq!(app.sessions(&laptop.access_token).await.unwrap().len(), 1);
    assert_error(
        app.client()
            .revoke_session(authed(
                pb::RevokeSessionRequest {
                    session_id: phone.session_id.clone(),
                },
                &laptop.access_token,
            ))
            .await,
        Code::NotFound,
        "SESSION_NOT_FOUND",
    );
    let status = assert_error(
        app.client()
            .revoke_session(authed(
                pb::RevokeSessionRequest {
                    session_id: "nope".into(),
                },
                &laptop.access_token,
            ))
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["session_id"]);
}

#[tokio::test]
async fn client_metadata_is_believed_only_from_trusted_proxies() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "192.0.2.0/24")]).await;
    let mail = email("spoof");
    app.signup(&username("spoof"), &mail).await;
    let mut login = tonic::Request::new(pb::LoginRequest {
        identifier: mail.clone(),
        password: PASSWORD.into(),
    });
    login
        .metadata_mut()
        .insert("x-client-user-agent", "Firefox/130".parse().unwrap());
    login
        .metadata_mut()
        .insert("x-client-ip", "203.0.113.7".parse().unwrap());
    let tokens = app
        .client()
        .login(login)
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let sessions = app.sessions(&tokens.access_token).await.unwrap();
    let session = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(
        session.client_ip, "127.0.0.1",
        "a loopback peer is not a listed proxy: its x-client-ip is ignored"
    );
    assert_ne!(session.user_agent, "Firefox/130");
    assert!(
        session.user_agent.contains("tonic"),
        "the gRPC client's own user agent: {}",
        session.user_agent
    );
}

#[tokio::test]
async fn a_new_session_beyond_the_cap_ends_the_least_recently_used_one() {
    let app = spawn_app_with(&[("MAX_SESSIONS_PER_USER", "3")]).await;
    let mail = email("cap");
    let (_, a) = app.signup(&username("cap"), &mail).await;
    let b = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let c = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    // The oldest session is used again; the one left alone longest is now b.
    let a = app.refresh(&a.refresh_token).await.unwrap();
    let d = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    assert_error(
        app.validate(&b.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&b.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    let mut expected = vec![a.session_id, c.session_id, d.session_id];
    expected.sort();
    assert_eq!(app.session_ids(&d.access_token).await, expected);
}

#[tokio::test]
async fn nobody_can_revoke_another_users_session() {
    let app = spawn_app().await;
    let (_, alice) = app.signup(&username("alice"), &email("alice")).await;
    let (_, mallory) = app.signup(&username("mallory"), &email("mallory")).await;
    assert_error(
        app.client()
            .revoke_session(authed(
                pb::RevokeSessionRequest {
                    session_id: alice.session_id.clone(),
                },
                &mallory.access_token,
            ))
            .await,
        Code::NotFound,
        "SESSION_NOT_FOUND",
    );
    app.validate(&alice.access_token).await.unwrap();
}

#[tokio::test]
async fn logout_by_refresh_token_or_bearer_ends_that_session_only() {
    let app = spawn_app().await;
    let mail = email("out");
    let (user, a) = app.signup(&username("out"), &mail).await;
    let b = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let c = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    app.client()
        .logout(pb::LogoutRequest {
            refresh_token: a.refresh_token.clone(),
        })
        .await
        .unwrap();
    assert_error(
        app.validate(&a.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The user's other devices are still present: online, last seen at the logout.
    let me = app.me(&b.access_token).await.unwrap();
    assert_eq!(me.status, pb::UserStatus::Online as i32);
    let ms = |t: prost_types::Timestamp| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000;
    assert!(ms(me.last_seen_time.unwrap()) >= ms(user.last_seen_time.unwrap()));
    // A second logout with the same token (and nothing else) is refused.
    assert_error(
        app.client()
            .logout(pb::LogoutRequest {
                refresh_token: a.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    // A stale refresh token with a live access token: the access token's session ends, so
    // clearing a browser's cookies never leaves its session alive.
    app.client()
        .logout(authed(
            pb::LogoutRequest {
                refresh_token: a.refresh_token.clone(),
            },
            &b.access_token,
        ))
        .await
        .unwrap();
    assert_error(
        app.validate(&b.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.client()
        .logout(authed(pb::LogoutRequest::default(), &c.access_token))
        .await
        .unwrap();
    assert_error(
        app.validate(&c.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.client().logout(pb::LogoutRequest::default()).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn logout_with_the_previous_refresh_token_inside_the_grace_window_ends_the_session() {
    // A tab that logs out with the token another tab just rotated away still ends the session.
    let app = spawn_app_with(&[("REFRESH_REUSE_GRACE", "30s")]).await;
    let (_, first) = app.signup(&username("outg"), &email("outg")).await;
    let second = app.refresh(&first.refresh_token).await.unwrap();
    app.client()
        .logout(pb::LogoutRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .unwrap();
    assert_error(
        app.validate(&second.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        app.refresh(&second.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    // The grace window answers nothing for an ended session.
    assert_error(
        app.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let app = spawn_app().await;
    let mail = email("all");
    let (_, a) = app.signup(&username("all"), &mail).await;
    let b = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let c = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let (_, stranger) = app.signup(&username("stranger"), &email("stranger")).await;
    let n = app
        .client()
        .logout_all(authed(pb::LogoutAllRequest {}, &b.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.revoked_session_count, 3);
    for t in [&a, &b, &c] {
        assert_error(
            app.validate(&t.access_token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    app.validate(&stranger.access_token).await.unwrap();
}

#[tokio::test]
async fn authenticated_rpcs_need_a_bearer_token() {
    let app = spawn_app().await;
    let mut client = app.client();
    assert_error(
        client.get_current_user(pb::GetCurrentUserRequest {}).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_error(
        client.list_sessions(pb::ListSessionsRequest {}).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_error(
        client.logout_all(pb::LogoutAllRequest {}).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_error(
        client
            .get_current_user(authed(pb::GetCurrentUserRequest {}, "not.a.jwt"))
            .await,
        Code::Unauthenticated,
        "ACCESS_TOKEN_INVALID",
    );
    let mut basic = tonic::Request::new(pb::GetCurrentUserRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_error(
        client.get_current_user(basic).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
}
