//! Presence: sign-in, Heartbeat and SetPresence make a user present; logout ends it at once;
//! heartbeats that stop run out after PRESENCE_TTL (short here) and are reported.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use super::{Deployment, credential, internal, on_every_backend, with_token};
use crate::env::eventually;
use crate::helpers::{assert_error, authed, violated_fields};

on_every_backend!(presence_follows_heartbeats_and_sessions);

async fn presence_follows_heartbeats_and_sessions(d: Deployment) {
    let socket = credential("socket");
    let app = d
        .instance(
            &[&socket],
            &[("PRESENCE_TTL", "2s"), ("PRESENCE_WRITE_INTERVAL", "0s")],
        )
        .await;
    let (ana, phone) = d.signup(&app, "pres").await;
    let (other, theirs) = d.signup(&app, "pres2").await;
    let svc = internal(&app).await;
    let presence = |svc: &pb::internal_auth_service_client::InternalAuthServiceClient<_>| {
        let mut svc = svc.clone();
        let (id, token) = (ana.id.clone(), socket.token.clone());
        async move {
            svc.get_presence(with_token(
                pb::GetPresenceRequest {
                    user_ids: vec![id, "never-seen".into()],
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .presences
        }
    };
    let status_of = |p: &[pb::Presence]| pb::UserStatus::try_from(p[0].status).unwrap();
    let first = presence(&svc).await;
    assert_eq!(
        status_of(&first),
        pb::UserStatus::Online,
        "signing in is a heartbeat"
    );
    assert_eq!(first[1].status, pb::UserStatus::Offline as i32);
    assert!(first[1].last_seen_time.is_none());

    // The user says away from their own session.
    let away = app
        .client()
        .set_presence(authed(
            pb::SetPresenceRequest {
                status: pb::UserStatus::Away as i32,
            },
            &phone.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .presence
        .unwrap();
    assert_eq!(away.status, pb::UserStatus::Away as i32);
    // Offline is not a status one sets.
    let refused = app
        .client()
        .set_presence(authed(
            pb::SetPresenceRequest {
                status: pb::UserStatus::Offline as i32,
            },
            &phone.access_token,
        ))
        .await;
    let status = assert_error(refused, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["status"]);
    // Toggling is limited per session: every change is an event every watcher gets.
    let mut limited = None;
    for i in 0..40 {
        let status = if i % 2 == 0 {
            pb::UserStatus::Online
        } else {
            pb::UserStatus::Away
        };
        let answer = app
            .client()
            .set_presence(authed(
                pb::SetPresenceRequest {
                    status: status as i32,
                },
                &theirs.access_token,
            ))
            .await;
        if let Err(status) = answer {
            limited = Some(status);
            break;
        }
    }
    let limited = limited.expect("SetPresence is limited");
    assert_eq!(crate::helpers::reason(&limited), "PRESENCE_RATE_LIMITED");

    // A socket server's heartbeat of a session: only the session's own user.
    let beat = |user: &str, session: &str| {
        let mut svc = svc.clone();
        let request = pb::HeartbeatRequest {
            user_id: user.into(),
            session_id: session.into(),
            status: pb::UserStatus::Unspecified as i32,
        };
        let token = socket.token.clone();
        async move { svc.heartbeat(with_token(request, &token)).await }
    };
    let online = beat(&ana.id, &phone.session_id).await.unwrap().into_inner();
    assert_eq!(
        online.presence.unwrap().status,
        pb::UserStatus::Online as i32
    );
    assert_eq!(online.ttl.unwrap().seconds, 2);
    assert_error(
        beat(&ana.id, &theirs.session_id).await,
        Code::FailedPrecondition,
        "SESSION_ENDED",
    );
    let status = assert_error(
        beat(&other.id, "not-a-session").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["session_id"]);

    // Logout ends the session's presence at once; its heartbeats are refused from then on.
    app.client()
        .logout(pb::LogoutRequest {
            refresh_token: phone.refresh_token.clone(),
        })
        .await
        .unwrap();
    let after = presence(&svc).await;
    assert_eq!(status_of(&after), pb::UserStatus::Offline);
    assert!(after[0].last_seen_time.is_some());
    assert_error(
        beat(&ana.id, &phone.session_id).await,
        Code::FailedPrecondition,
        "SESSION_ENDED",
    );

    // Heartbeats that stop run out: the other user goes offline by itself.
    beat(&other.id, &theirs.session_id).await.unwrap();
    let other_status = || {
        let mut svc = svc.clone();
        let (id, token) = (other.id.clone(), socket.token.clone());
        async move {
            svc.get_presence(with_token(
                pb::GetPresenceRequest { user_ids: vec![id] },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .presences[0]
                .status
        }
    };
    assert_eq!(other_status().await, pb::UserStatus::Online as i32);
    eventually(
        Duration::from_secs(10),
        "the heartbeat runs out",
        || async { other_status().await == pb::UserStatus::Offline as i32 },
    )
    .await;
}
