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
    let id = app
        .register(&username("race"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = app.wait_for_code(&mail, 1).await;
    let results = race(&app, 12, |mut c, _| {
        let (mail, code, id) = (mail.clone(), code.clone(), id.clone());
        async move {
            c.verify_registration(pb::VerifyRegistrationRequest {
                email: mail,
                code,
                registration_id: id,
            })
            .await
        }
    })
    .await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(!ok.is_empty(), "the right code verifies");
    // The request stays until the user exists, so verifications that raced in before that
    // all sign in; they agree on the one user the registration creates.
    let user_id = ok[0].get_ref().user.clone().unwrap().id;
    for r in &ok {
        assert_eq!(r.get_ref().user.clone().unwrap().id, user_id);
    }
    // Once it exists the request is finished: later ones find nothing.
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            (r.code(), reason(r).as_str()),
            (Code::NotFound, "REGISTRATION_NOT_FOUND"),
            "{r:?}"
        );
    }
    let tokens = ok[0].get_ref().tokens.clone().unwrap();
    assert_eq!(
        app.sessions(&tokens.access_token).await.unwrap().len(),
        ok.len(),
        "one user with a session per successful verification"
    );
    let signed_in = app.login(&mail, PASSWORD).await.unwrap();
    assert_eq!(signed_in.user.unwrap().id, user_id);
    assert_error(
        app.verify(&mail, &id, &code).await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_never_exceed_the_budget() {
    let app = spawn_app().await;
    let mail = email("burst");
    let id = app
        .register(&username("burst"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = app.wait_for_code(&mail, 1).await;
    let wrong = if code == "000001" { "000002" } else { "000001" };
    let results = race(&app, 20, |mut c, _| {
        let (mail, id) = (mail.clone(), id.clone());
        async move {
            c.verify_registration(pb::VerifyRegistrationRequest {
                email: mail,
                code: wrong.into(),
                registration_id: id,
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
        app.verify(&mail, &id, &code).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_over_many_sign_ups_never_exceed_the_daily_budget() {
    let app = spawn_app_with(&[("CODE_MAX_GUESSES_PER_DAY", "7")]).await;
    let mail = email("daily");
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = app
            .register(&username(&format!("daily{i}")), &mail, PASSWORD)
            .await
            .unwrap()
            .registration_id;
        ids.push(id);
    }
    let codes: Vec<String> = {
        let mut codes = Vec::new();
        for n in 1..=4 {
            codes.push(app.wait_for_code(&mail, n).await);
        }
        codes
    };
    // A guess that is wrong for every request.
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !codes.contains(c))
        .unwrap();
    // Four requests with five guesses each could take 20 wrong codes; the email allows 7.
    let results = race(&app, 20, |mut c, i| {
        let (mail, id, wrong) = (mail.clone(), ids[i % 4].clone(), wrong.clone());
        async move {
            c.verify_registration(pb::VerifyRegistrationRequest {
                email: mail,
                code: wrong,
                registration_id: id,
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
        7,
        "{reasons:?}"
    );
    for r in &reasons {
        assert!(
            [
                "CODE_INVALID",
                "TOO_MANY_GUESSES_TODAY",
                "CODE_ATTEMPTS_EXHAUSTED"
            ]
            .contains(&r.as_str()),
            "{reasons:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registers_of_one_email_never_exceed_the_daily_sends() {
    // Each sign-up is a request of its own (with its own cooldown), so a burst of them is
    // bounded by the email's daily code budget, counted atomically.
    let app = spawn_app_with(&[
        ("CODE_RESEND_COOLDOWN", "60s"),
        ("CODE_MAX_SENDS_PER_DAY", "5"),
    ])
    .await;
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
    let mut ids: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.get_ref().registration_id.clone())
        .collect();
    assert_eq!(ids.len(), 5, "five sends a day");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every sign-up has its own id");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            (r.code(), reason(r).as_str()),
            (Code::ResourceExhausted, "CODE_DAILY_LIMIT"),
            "{r:?}"
        );
    }
    app.wait_for_code(&mail, 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.mails_to(&mail).len(), 5, "one code mail per sign-up");
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
        // The session keeps one live refresh token: every racer gets the one the first
        // rotation made (with an access token of its own).
        assert_eq!(pair.refresh_token, pairs[0].refresh_token);
    }
    assert_ne!(pairs[0].refresh_token, tokens.refresh_token);
    let next = app.refresh(&pairs[0].refresh_token).await.unwrap();
    assert_ne!(next.refresh_token, pairs[0].refresh_token);
    // Two rotations back is no longer a replay the session answers: just invalid, and the
    // session lives on.
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        Code::Unauthenticated,
        "REFRESH_TOKEN_INVALID",
    );
    app.validate(&next.access_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_correct_logins_of_one_account_all_succeed() {
    // Only wrong passwords count against the limits, after the check: a burst of right ones
    // (many devices waking at once) is never refused.
    let app = spawn_app_with(&[("LOGIN_MAX_ATTEMPTS", "3")]).await;
    let mail = email("many");
    let (user, _) = app.signup(&username("many"), &mail).await;
    let results = race(&app, 40, |mut c, _| {
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
    for r in &results {
        let signed_in = r.as_ref().expect("every right password signs in");
        assert_eq!(signed_in.get_ref().user.clone().unwrap().id, user.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_passwords_never_exceed_the_limit() {
    let app = spawn_app_with(&[("LOGIN_MAX_ATTEMPTS", "3"), ("LOGIN_WINDOW", "10m")]).await;
    let mail = email("guessburst");
    app.signup(&username("guessburst"), &mail).await;
    let results = race(&app, 16, |mut c, i| {
        let mail = mail.clone();
        async move {
            c.login(pb::LoginRequest {
                identifier: mail,
                password: format!("wrong password {i}"),
            })
            .await
        }
    })
    .await;
    let reasons: Vec<String> = results
        .iter()
        .map(|r| reason(r.as_ref().unwrap_err()))
        .collect();
    // A burst learns no more than the limit allows: three answers say "wrong", the rest
    // are refused whatever the password.
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "INVALID_CREDENTIALS")
            .count(),
        3,
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "LOGIN_RATE_LIMITED")
            .count(),
        13,
        "{reasons:?}"
    );
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
}

/// HASH_MAX_WAIT: one hashing thread and no wait allowed, with every queue place free. A burst
/// of wrong passwords is partly refused as busy, and a refusal is decided before any store
/// work: it counts no wrong password against the account (the owner keeps every attempt the
/// hashed ones left), so overload is no lever to lock the owner out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hash_that_would_wait_past_hash_max_wait_is_refused_before_any_store_work() {
    let app = spawn_app_with(&[
        ("HASH_CONCURRENCY", "1"),
        ("HASH_QUEUE", "64"),
        ("HASH_MAX_WAIT", "0s"),
        ("LOGIN_MAX_ATTEMPTS", "10"),
    ])
    .await;
    let mail = email("overload");
    app.signup(&username("overload"), &mail).await;
    let results = race(&app, 8, |mut c, _| {
        let mail = mail.clone();
        async move {
            c.login(pb::LoginRequest {
                identifier: mail,
                password: "wrong password!".into(),
            })
            .await
        }
    })
    .await;
    let mut wrong_in_burst = 0;
    let mut busy = 0;
    for r in &results {
        let s = r.as_ref().expect_err("a wrong password never signs in");
        match reason(s).as_str() {
            "INVALID_CREDENTIALS" => wrong_in_burst += 1,
            "SERVER_BUSY" => {
                assert_eq!(s.code(), Code::ResourceExhausted);
                assert_eq!(retry_secs(s), Some(1));
                busy += 1
            }
            other => panic!("unexpected {other}: {s:?}"),
        }
    }
    assert!(
        busy >= 1,
        "some of 8 at once are refused: {wrong_in_burst} hashed"
    );
    assert!(wrong_in_burst >= 1, "one is hashed");
    // One at a time, the wrong passwords left before the limit are exactly those the hashed
    // ones did not use.
    let mut wrong_after = 0;
    loop {
        let s = app
            .login(&mail, "wrong password!")
            .await
            .expect_err("a wrong password");
        match reason(&s).as_str() {
            "INVALID_CREDENTIALS" => wrong_after += 1,
            "LOGIN_RATE_LIMITED" => break,
            other => panic!("unexpected {other}: {s:?}"),
        }
        assert!(wrong_after <= 10, "the limit holds");
    }
    assert_eq!(
        wrong_in_burst + wrong_after,
        10,
        "{busy} refusals counted no wrong password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hash_queue_answers_resource_exhausted_at_once() {
    let app = spawn_app_with(&[("HASH_CONCURRENCY", "1"), ("HASH_QUEUE", "0")]).await;
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
