//! The atomic rules under real concurrency: many calls at once over separate connections.

use baatcheet_auth_api::v1::{self as pb, auth_service_client::AuthServiceClient};
use futures::future::join_all;
use std::future::Future;

use tonic::{Code, Response, Status};

use crate::helpers::*;

type Client = AuthServiceClient<tonic::transport::Channel>;

/// Sends `call` from `n` clients at once, each on its own HTTP/2 connection (so the calls
/// truly run in parallel), and returns every answer in client order.
async fn race<T, F, Fut>(app: &TestApp, n: usize, call: F) -> Vec<Result<Response<T>, Status>>
where
    T: Send + 'static,
    F: Fn(Client, usize) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>> + Send + 'static,
{
    let mut calls = Vec::new();
    for i in 0..n {
        let client = Client::connect(format!("http://{}", app.addr))
            .await
            .unwrap();
        calls.push(tokio::spawn(call(client, i)));
    }
    join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_of_one_registration_create_exactly_one_user() {
    let app = spawn_app().await;
    let mail = email("race");
    app.register(&username("race"), &mail, PASSWORD)
        .await
        .unwrap();
    let code = app.wait_for_code(&mail, 1).await;
    let results = race(&app, 12, |mut c, _| {
        let (mail, code) = (mail.clone(), code.clone());
        async move {
            c.verify_registration(pb::VerifyRegistrationRequest { email: mail, code })
                .await
        }
    })
    .await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "exactly one verification wins");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            (r.code(), reason(r).as_str()),
            (Code::NotFound, "REGISTRATION_NOT_FOUND"),
            "{r:?}"
        );
    }
    let tokens = ok[0].get_ref().tokens.clone().unwrap();
    assert_eq!(app.sessions(&tokens.access_token).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_never_exceed_the_budget() {
    let app = spawn_app().await;
    let mail = email("burst");
    app.register(&username("burst"), &mail, PASSWORD)
        .await
        .unwrap();
    let code = app.wait_for_code(&mail, 1).await;
    let wrong = if code == "000001" { "000002" } else { "000001" };
    let results = race(&app, 20, |mut c, _| {
        let mail = mail.clone();
        async move {
            c.verify_registration(pb::VerifyRegistrationRequest {
                email: mail,
                code: wrong.into(),
            })
            .await
        }
    })
    .await;
    let reasons: Vec<String> = results
        .iter()
        .map(|r| reason(r.as_ref().unwrap_err()))
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "CODE_INVALID").count(),
        5,
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "CODE_ATTEMPTS_EXHAUSTED")
            .count(),
        15,
        "{reasons:?}"
    );
    assert_error(
        app.verify(&mail, &code).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registers_of_one_email_send_one_code() {
    let app = spawn_app_with(&[("CODE_RESEND_COOLDOWN", "60s")]).await;
    let mail = email("dup");
    let results = race(&app, 8, |mut c, i| {
        let mail = mail.clone();
        async move {
            c.register(pb::RegisterRequest {
                username: format!("dup_user_{i}"),
                email: mail,
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
        }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(r), "RESEND_COOLDOWN");
    }
    app.wait_for_code(&mail, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.mails_to(&mail).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_without_grace_never_both_continue_the_family() {
    let app = spawn_app_with(&[("REFRESH_REUSE_GRACE", "0s")]).await;
    let mail = email("rot0");
    let (_, tokens) = app.signup(&username("rot0"), &mail).await;
    let other = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();
    let results = race(&app, 8, |mut c, _| {
        let token = tokens.refresh_token.clone();
        async move {
            c.refresh_session(pb::RefreshSessionRequest {
                refresh_token: token,
            })
            .await
        }
    })
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(
        winners.len() <= 1,
        "at most one rotation continues: {}",
        winners.len()
    );
    // Any second use was a replay: the family is gone, including a winner's new token.
    if results.iter().any(|r| {
        r.as_ref()
            .err()
            .is_some_and(|s| reason(s) == "REFRESH_TOKEN_REUSED")
    }) {
        for w in winners {
            let next = w.get_ref().tokens.clone().unwrap();
            assert_error(
                app.refresh(&next.refresh_token).await,
                Code::Unauthenticated,
                "REFRESH_TOKEN_INVALID",
            );
        }
        assert_error(
            app.validate(&tokens.access_token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    app.validate(&other.access_token)
        .await
        .expect("the other session is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_inside_the_grace_window_all_keep_the_session() {
    let app = spawn_app_with(&[("REFRESH_REUSE_GRACE", "30s")]).await;
    let (_, tokens) = app.signup(&username("rotg"), &email("rotg")).await;
    let results = race(&app, 8, |mut c, _| {
        let token = tokens.refresh_token.clone();
        async move {
            c.refresh_session(pb::RefreshSessionRequest {
                refresh_token: token,
            })
            .await
        }
    })
    .await;
    let pairs: Vec<pb::TokenPair> = results
        .into_iter()
        .map(|r| {
            r.expect("benign race gets a pair")
                .into_inner()
                .tokens
                .unwrap()
        })
        .collect();
    for pair in &pairs {
        assert_eq!(pair.session_id, tokens.session_id);
        app.validate(&pair.access_token).await.unwrap();
    }
    // Each new refresh token is single-use in its own right.
    app.refresh(&pairs[0].refresh_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hash_queue_answers_resource_exhausted_at_once() {
    let app = spawn_app_with(&[
        ("HASH_CONCURRENCY", "1"),
        ("HASH_QUEUE", "0"),
        ("LOGIN_MAX_ATTEMPTS", "1000"),
    ])
    .await;
    let mail = email("busy");
    app.signup(&username("busy"), &mail).await;
    let results = race(&app, 16, |mut c, _| {
        let mail = mail.clone();
        async move {
            c.login(pb::LoginRequest {
                identifier: mail,
                password: PASSWORD.into(),
            })
            .await
        }
    })
    .await;
    let busy: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(results.iter().any(|r| r.is_ok()), "some logins get through");
    assert!(
        !busy.is_empty(),
        "with one slot and no queue, a burst of 16 is partly refused"
    );
    for s in busy {
        assert_eq!(
            (s.code(), reason(s).as_str()),
            (Code::ResourceExhausted, "SERVER_BUSY")
        );
        assert_eq!(retry_secs(s), Some(1));
    }
}
