//! Password guessing turned against the owner: lock-outs from elsewhere, refusing the owner's
//! right password because others are in flight, and bursts that try to outrun the limit.

use baatcheet_auth_api::v1 as pb;
use futures::future::join_all;
use tonic::Code;

use crate::attacks::arena::{Arena, Backend, from_ip, on_every_backend};
use crate::helpers::*;

on_every_backend!(
    wrong_passwords_from_elsewhere_never_lock_the_owner_out,
    concurrent_right_passwords_are_never_refused,
    a_burst_of_guesses_learns_no_more_than_the_limit,
    change_password_guesses_are_limited_per_session,
);

async fn login_from(
    app: &TestApp,
    ip: &str,
    identifier: &str,
    password: &str,
) -> Result<pb::LoginResponse, tonic::Status> {
    app.client()
        .login(from_ip(
            pb::LoginRequest {
                identifier: identifier.into(),
                password: password.into(),
            },
            ip,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn wrong_passwords_from_elsewhere_never_lock_the_owner_out(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let app = &arena.app;
    let (mail, name) = (email("owner"), username("owner"));
    arena.signup(&name, &mail).await;
    // Guessing from three networks, by email and by username: each (identifier, network) is
    // stopped after LOGIN_MAX_ATTEMPTS, and even the right password is refused there then.
    for net in 1..=3 {
        let ip = format!("203.0.113.{net}");
        for identifier in [&mail, &name] {
            for _ in 0..10 {
                assert_error(
                    login_from(app, &ip, identifier, "wrong guess").await,
                    Code::Unauthenticated,
                    "INVALID_CREDENTIALS",
                );
            }
            let status = assert_error(
                login_from(app, &ip, identifier, PASSWORD).await,
                Code::ResourceExhausted,
                "LOGIN_RATE_LIMITED",
            );
            assert!(retry_secs(&status).unwrap() > 0);
        }
    }
    // The owner, on their own device: a typo is a typo, the right password works (slowed
    // down while the account is being guessed at, never refused).
    let owner = "198.51.100.7";
    assert_error(
        login_from(app, owner, &mail, "a typo").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    login_from(app, owner, &mail, PASSWORD)
        .await
        .expect("the owner signs in");
    login_from(app, "2001:db8:1:2::3", &name, PASSWORD)
        .await
        .expect("from anywhere else too");
}

async fn concurrent_right_passwords_are_never_refused(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let mail = email("busy");
    arena.signup(&username("busy"), &mail).await;
    let logins = (0..40).map(|_| {
        let (mut client, mail) = (arena.app.client(), mail.clone());
        tokio::spawn(async move {
            client
                .login(pb::LoginRequest {
                    identifier: mail,
                    password: PASSWORD.into(),
                })
                .await
        })
    });
    let results: Vec<_> = join_all(logins)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        refused.first()
    );
}

async fn a_burst_of_guesses_learns_no_more_than_the_limit(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let mail = email("burst");
    arena.signup(&username("burst"), &mail).await;
    let guesses = (0..40).map(|n| {
        let (mut client, mail) = (arena.app.client(), mail.clone());
        tokio::spawn(async move {
            client
                .login(from_ip(
                    pb::LoginRequest {
                        identifier: mail,
                        password: format!("guess number {n}"),
                    },
                    "203.0.113.200",
                ))
                .await
        })
    });
    let results: Vec<_> = join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let answered = results
        .iter()
        .filter(|r| {
            r.as_ref()
                .is_err_and(|s| reason(s) == "INVALID_CREDENTIALS")
        })
        .count();
    let limited = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(|s| reason(s) == "LOGIN_RATE_LIMITED"))
        .count();
    assert_eq!(
        (answered, limited),
        (10, 30),
        "only LOGIN_MAX_ATTEMPTS guesses get an answer"
    );
}

async fn change_password_guesses_are_limited_per_session(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let app = &arena.app;
    let mail = email("change");
    let (_, stolen) = arena.signup(&username("change"), &mail).await;
    let owners = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let change = |token: String, current: &'static str, new: &'static str| {
        let mut client = app.client();
        async move {
            client
                .change_password(authed(
                    pb::ChangePasswordRequest {
                        current_password: current.into(),
                        new_password: new.into(),
                    },
                    &token,
                ))
                .await
        }
    };
    // A thief with an access token tries to find the password.
    for _ in 0..10 {
        assert_error(
            change(stolen.access_token.clone(), "a guess", "thief's password 1").await,
            Code::InvalidArgument,
            "WRONG_PASSWORD",
        );
    }
    assert_error(
        change(stolen.access_token.clone(), PASSWORD, "thief's password 1").await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
    // The owner's own session and sign-in are not affected; the change ends the thief's.
    change(owners.access_token.clone(), PASSWORD, "the owner's new one")
        .await
        .expect("the owner changes the password");
    assert_error(
        app.validate(&stolen.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.login(&mail, "the owner's new one").await.unwrap();
}
