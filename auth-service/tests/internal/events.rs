//! WatchEvents: what happens on one instance reaches a watcher on another, a watcher that
//! reconnects gets what it missed, a stale position is answered clearly, and the verifier
//! library refuses a revoked session's token from the stream alone.

use std::time::Duration;

use baatcheet_auth_api::{
    AccessTokenVerifier,
    v1::{self as pb, EventType, SessionRevokeReason},
};
use tonic::{Code, Streaming};

use super::{Credential, Deployment, credential, internal, on_every_backend, with_token};
use crate::env::eventually;
use crate::helpers::{TestApp, assert_error, authed};

on_every_backend!(
    events_reach_watchers_on_other_instances_and_resume_by_id,
    the_verifier_refuses_a_revoked_session_from_the_stream_alone,
    a_position_older_than_the_retention_is_answered_clearly,
);

async fn watch(
    app: &TestApp,
    who: &Credential,
    since: &str,
    types: &[EventType],
) -> Streaming<pb::WatchEventsResponse> {
    internal(app)
        .await
        .watch_events(with_token(
            pb::WatchEventsRequest {
                since_event_id: since.into(),
                types: types.iter().map(|t| *t as i32).collect(),
            },
            &who.token,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The next event of `user`, skipping others (tests share backends) and checkpoints.
async fn next_of(stream: &mut Streaming<pb::WatchEventsResponse>, user: &str) -> pb::Event {
    next_with_checkpoints(stream, user).await.0
}

/// The next event of `user`, and whether a checkpoint (a position without an event) came
/// before it.
async fn next_with_checkpoints(
    stream: &mut Streaming<pb::WatchEventsResponse>,
    user: &str,
) -> (pb::Event, bool) {
    let mut checkpoint = false;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), stream.message())
            .await
            .expect("an event within 15 s")
            .expect("the stream stays up")
            .expect("the stream does not end");
        let Some(event) = message.event else {
            assert!(
                !message.position.is_empty(),
                "a checkpoint names its position"
            );
            checkpoint = true;
            continue;
        };
        assert_eq!(message.position, event.id);
        if event.user_id == user {
            return (event, checkpoint);
        }
    }
}

/// Two instances on the same backends (on SQLite, one instance serves both roles: the
/// embedded store is one process's).
async fn pair(
    d: &Deployment,
    who: &Credential,
    extra: &[(&str, &str)],
) -> (TestApp, Option<TestApp>) {
    let a = d.instance(&[who], extra).await;
    let b = match d {
        Deployment::Sqlite => None,
        Deployment::RedisMongo(_) => Some(d.instance(&[who], extra).await),
    };
    (a, b)
}

async fn events_reach_watchers_on_other_instances_and_resume_by_id(d: Deployment) {
    let socket = credential("socket");
    let (a, b) = pair(&d, &socket, &[]).await;
    let watched = b.as_ref().unwrap_or(&a);
    let mut stream = watch(watched, &socket, "", &[]).await;
    let (user, first) = d.signup(&a, "watch").await;
    let created = next_of(&mut stream, &user.id).await;
    assert_eq!(created.r#type, EventType::UserCreated as i32);
    let session = next_of(&mut stream, &user.id).await;
    assert_eq!(
        (session.r#type, session.session_id.as_str()),
        (EventType::SessionCreated as i32, first.session_id.as_str())
    );
    let online = next_of(&mut stream, &user.id).await;
    assert_eq!(
        (online.r#type, online.status),
        (
            EventType::PresenceChanged as i32,
            pb::UserStatus::Online as i32
        )
    );
    // The watcher goes away; meanwhile the session logs out on A.
    let resume_from = online.id.clone();
    drop(stream);
    a.client()
        .logout(pb::LogoutRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .unwrap();
    // Back, with the last id seen, asking for revocations only: the missed one arrives.
    let mut stream = watch(watched, &socket, &resume_from, &[EventType::SessionRevoked]).await;
    let revoked = next_of(&mut stream, &user.id).await;
    assert_eq!(
        (revoked.r#type, revoked.session_id.as_str(), revoked.reason),
        (
            EventType::SessionRevoked as i32,
            first.session_id.as_str(),
            SessionRevokeReason::Logout as i32
        )
    );
    // A profile change is filtered out; a LogoutAll's revocation comes through, with its reason.
    let second = a
        .login(&user.email, crate::helpers::PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();
    a.client()
        .update_profile(authed(
            pb::UpdateProfileRequest {
                bio: "x".into(),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["bio".into()],
                }),
                ..Default::default()
            },
            &second.access_token,
        ))
        .await
        .unwrap();
    a.client()
        .logout_all(authed(
            pb::LogoutAllRequest::default(),
            &second.access_token,
        ))
        .await
        .unwrap();
    let (all, checkpoint) = next_with_checkpoints(&mut stream, &user.id).await;
    assert_eq!(
        (all.session_id.as_str(), all.reason),
        (
            second.session_id.as_str(),
            SessionRevokeReason::LogoutAll as i32
        )
    );
    assert!(
        checkpoint,
        "the filtered-out events moved the watcher's position"
    );
    // A type this service does not know is refused rather than widening the filter.
    let unknown = internal(watched)
        .await
        .watch_events(with_token(
            pb::WatchEventsRequest {
                since_event_id: String::new(),
                types: vec![99],
            },
            &socket.token,
        ))
        .await;
    assert_error(unknown, Code::InvalidArgument, "INVALID_ARGUMENT");
    // A position that is no event id of this service is refused as such.
    let bad = internal(watched)
        .await
        .watch_events(with_token(
            pb::WatchEventsRequest {
                since_event_id: "yesterday".into(),
                types: vec![],
            },
            &socket.token,
        ))
        .await;
    assert_error(bad, Code::InvalidArgument, "INVALID_ARGUMENT");
}

async fn the_verifier_refuses_a_revoked_session_from_the_stream_alone(d: Deployment) {
    let socket = credential("socket");
    let (a, b) = pair(&d, &socket, &[]).await;
    let followed = b.as_ref().unwrap_or(&a);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", followed.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let verifier = AccessTokenVerifier::builder(channel)
        .issuer("baatcheet-auth")
        .audience("baatcheet")
        .service_token(socket.token.clone())
        .build()
        .unwrap();
    let follower = verifier.spawn_follower();
    eventually(
        Duration::from_secs(10),
        "the verifier follows the stream",
        || async { verifier.is_following() },
    )
    .await;
    let (user, tokens) = d.signup(&a, "verif").await;
    let verified = verifier.verify(&tokens.access_token).await.unwrap();
    assert_eq!(
        (verified.user_id.as_str(), verified.session_id.as_str()),
        (user.id.as_str(), tokens.session_id.as_str())
    );
    a.client()
        .logout(pb::LogoutRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .unwrap();
    // verify_cached never calls the service: the refusal comes from the stream it followed.
    eventually(
        Duration::from_secs(10),
        "the verifier learns the revocation",
        || async {
            matches!(
                verifier.verify_cached(&tokens.access_token),
                Err(baatcheet_auth_api::verifier::VerifyError::Revoked)
            )
        },
    )
    .await;
    follower.abort();
}

async fn a_position_older_than_the_retention_is_answered_clearly(d: Deployment) {
    let socket = credential("socket");
    let app = d.instance(&[&socket], &[("EVENT_RETENTION", "1s")]).await;
    let mut stream = watch(&app, &socket, "", &[]).await;
    let (user, _) = d.signup(&app, "stale").await;
    let seen = next_of(&mut stream, &user.id).await;
    drop(stream);
    // Past the retention (the log trims itself), the position names events that are gone.
    eventually(Duration::from_secs(15), "the position expires", || async {
        let answer = internal(&app)
            .await
            .watch_events(with_token(
                pb::WatchEventsRequest {
                    since_event_id: seen.id.clone(),
                    types: vec![],
                },
                &socket.token,
            ))
            .await;
        match answer {
            Err(status) => {
                assert_eq!(
                    (status.code(), crate::helpers::reason(&status).as_str()),
                    (Code::FailedPrecondition, "EVENTS_EXPIRED"),
                    "{status:?}"
                );
                true
            }
            Ok(_) => false,
        }
    })
    .await;
}

/// Watch streams are bounded per instance: one more is refused with a retry delay, and a
/// stream that ends frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_beyond_the_cap_are_refused_until_one_leaves() {
    let socket = credential("socket");
    let app = crate::helpers::spawn_app_with(&[
        ("SERVICE_TOKENS", &socket.line),
        ("MAX_EVENT_WATCHERS", "1"),
    ])
    .await;
    let first = watch(&app, &socket, "", &[]).await;
    let refused = internal(&app)
        .await
        .watch_events(with_token(pb::WatchEventsRequest::default(), &socket.token))
        .await;
    let status = assert_error(refused, Code::ResourceExhausted, "TOO_MANY_WATCHERS");
    assert!(crate::helpers::retry_secs(&status).is_some());
    drop(first);
    eventually(
        Duration::from_secs(15),
        "the place is free again",
        || async {
            internal(&app)
                .await
                .watch_events(with_token(pb::WatchEventsRequest::default(), &socket.token))
                .await
                .is_ok()
        },
    )
    .await;
}
