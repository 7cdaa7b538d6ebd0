//! Two service instances sharing one Redis and one MongoDB: one cooldown and one attempt
//! budget per pending request, one set of sessions, one mail queue, and races across instances
//! keep the atomic rules.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::env::Backends;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_limits_sessions_and_the_mail_queue() {
    let backends = Backends::start(false).await;
    let cooldown = [("CODE_RESEND_COOLDOWN", "30s")];
    let a = backends.instance(&cooldown).await;
    let b = backends.instance(&cooldown).await;

    // One cooldown per request, whichever instance is asked.
    let mail = email("twin");
    let id = a
        .register(&username("twin"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    assert_error(
        b.resend(&mail, &id).await,
        Code::ResourceExhausted,
        "RESEND_COOLDOWN",
    );
    // One attempt budget: wrong guesses alternate between the instances.
    let code = backends
        .wait_for_code(&mail, 1, Duration::from_secs(15))
        .await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for (i, remaining) in (0..4).rev().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        let status = assert_error(
            app.verify(&mail, &id, wrong).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
        let info = tonic_types::StatusExt::get_error_details(&status)
            .error_info()
            .cloned()
            .unwrap();
        assert_eq!(
            info.metadata["attempts_remaining"],
            (remaining + 1).to_string()
        );
    }
    // The same right code sent to both at once: one user. The request is kept until the user
    // exists, so both may sign in, as that one user; a late one finds the request finished.
    let (ra, rb) = tokio::join!(a.verify(&mail, &id, &code), b.verify(&mail, &id, &code));
    let winners: Vec<&pb::VerifyRegistrationResponse> = [&ra, &rb]
        .into_iter()
        .filter_map(|r| r.as_ref().ok())
        .collect();
    assert!(!winners.is_empty(), "{ra:?} {rb:?}");
    for r in [&ra, &rb] {
        if let Err(s) = r {
            assert_eq!(
                (s.code(), reason(s).as_str()),
                (Code::NotFound, "REGISTRATION_NOT_FOUND"),
                "{s:?}"
            );
        }
    }
    let user_id = winners[0].user.clone().unwrap().id;
    assert!(
        winners
            .iter()
            .all(|w| w.user.as_ref().unwrap().id == user_id),
        "{ra:?} {rb:?}"
    );
    let tokens = winners[0].tokens.clone().unwrap();
    let verified_sessions = winners.len();

    // One set of sessions.
    let other = b.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    assert_eq!(
        a.sessions(&tokens.access_token).await.unwrap().len(),
        verified_sessions + 1
    );
    a.client()
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                session_id: other.session_id.clone(),
            },
            &tokens.access_token,
        ))
        .await
        .unwrap();
    assert_error(
        b.validate(&other.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );

    // A refresh race across instances without grace: at most one continues.
    let no_grace = [("REFRESH_REUSE_GRACE", "0s")];
    let (c, d) = (
        backends.instance(&no_grace).await,
        backends.instance(&no_grace).await,
    );
    let fresh = c.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let (rc, rd) = tokio::join!(
        c.refresh(&fresh.refresh_token),
        d.refresh(&fresh.refresh_token)
    );
    assert!(
        [rc.is_ok(), rd.is_ok()].iter().filter(|ok| **ok).count() <= 1,
        "{rc:?} {rd:?}"
    );

    // One mail queue: every message is sent exactly once although two workers drain it.
    let people: Vec<String> = (0..8).map(|i| email(&format!("q{i}"))).collect();
    for (i, person) in people.iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        app.register(&username(&format!("q{i}")), person, PASSWORD)
            .await
            .unwrap();
    }
    for person in &people {
        backends
            .wait_for_code(person, 1, Duration::from_secs(15))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for person in &people {
        assert_eq!(
            backends.mails_to(person).len(),
            1,
            "{person} got one message"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_on_the_other_instance_gets_the_same_refresh_token_and_one_session_cap_holds() {
    let backends = Backends::start(false).await;
    let config = [
        ("REFRESH_REUSE_GRACE", "30s"),
        ("MAX_SESSIONS_PER_USER", "2"),
    ];
    let a = backends.instance(&config).await;
    let b = backends.instance(&config).await;
    let mail = email("seal");
    let (_, first) = backends.signup(&a, &username("seal"), &mail).await;
    let second = a.refresh(&first.refresh_token).await.unwrap();
    // The successor a sealed opens on b (one AUTH_SECRET): the racer on b gets the session's
    // one live refresh token, not a fork of the session.
    let raced = b.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(raced.session_id, first.session_id);
    assert_eq!(raced.refresh_token, second.refresh_token);
    a.validate(&raced.access_token).await.unwrap();
    let third = b.refresh(&second.refresh_token).await.unwrap();
    assert_error(
        a.refresh(&first.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );

    // One cap over both instances: a third session ends the least recently used one, the
    // sign-up's (last rotated before both logins).
    let phone = b.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let laptop = a.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    assert_error(
        b.validate(&third.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    assert_error(
        a.refresh(&third.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    let mut expected = vec![phone.session_id, laptop.session_id];
    expected.sort();
    assert_eq!(b.session_ids(&laptop.access_token).await, expected);
}
