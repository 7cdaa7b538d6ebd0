//! A backend stopped mid-run: RPCs that need it fail fast with UNAVAILABLE, the process stays
//! up, readiness says NOT_SERVING, and service resumes by itself when the backend is back.

use std::time::{Duration, Instant};

use baatcheet_auth_api::v1 as pb;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::env::{Backends, eventually, once_available};
use crate::helpers::*;

async fn serving(app: &TestApp) -> i32 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// Calls `login` and asserts it fails with UNAVAILABLE quickly (no wait beyond the timeouts).
async fn assert_unavailable_fast(app: &TestApp, identifier: &str) {
    let started = Instant::now();
    let status = app
        .login(identifier, PASSWORD)
        .await
        .expect_err("login must fail while a backend is down");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "BACKEND_UNAVAILABLE"),
        "{status:?}"
    );
    assert!(
        retry_secs(&status).is_some(),
        "UNAVAILABLE carries a retry delay"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "failed fast: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_fails_fast_and_recovers_without_a_restart() {
    let backends = Backends::start(false).await;
    let app = backends.instance(&[]).await;
    let mail = email("redisdown");
    backends.signup(&app, &username("redisdown"), &mail).await;

    backends.redis.stop();
    assert_unavailable_fast(&app, &mail).await;
    app.client()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("the process stays up");
    eventually(Duration::from_secs(10), "NOT_SERVING", || async {
        serving(&app).await == ServingStatus::NotServing as i32
    })
    .await;

    backends.redis.restart();
    eventually(Duration::from_secs(10), "login works again", || async {
        app.login(&mail, PASSWORD).await.is_ok()
    })
    .await;
    eventually(Duration::from_secs(10), "SERVING again", || async {
        serving(&app).await == ServingStatus::Serving as i32
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_stopped_mid_run_fails_fast_and_recovers_without_a_restart() {
    let backends = Backends::start(true).await;
    let mongo = backends.mongo.as_ref().expect("a server this test owns");
    let app = backends.instance(&[]).await;
    let mail = email("mongodown");
    backends.signup(&app, &username("mongodown"), &mail).await;

    mongo.stop();
    assert_unavailable_fast(&app, &mail).await;
    eventually(Duration::from_secs(10), "NOT_SERVING", || async {
        serving(&app).await == ServingStatus::NotServing as i32
    })
    .await;

    mongo.restart().await;
    eventually(Duration::from_secs(20), "login works again", || async {
        app.login(&mail, PASSWORD).await.is_ok()
    })
    .await;
    eventually(Duration::from_secs(10), "SERVING again", || async {
        serving(&app).await == ServingStatus::Serving as i32
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_while_smtp_is_down_all_get_their_mail_when_it_is_back() {
    let backends = Backends::start(false).await;
    let app = backends.instance(&[]).await;
    backends.smtp.stop();
    let people: Vec<(String, String)> = (0..5)
        .map(|i| (username(&format!("down{i}")), email(&format!("down{i}"))))
        .collect();
    let mut ids = Vec::new();
    for (name, mail) in &people {
        let id = app
            .register(name, mail, PASSWORD)
            .await
            .expect("sign-up succeeds while SMTP is down")
            .registration_id;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(backends.smtp.messages().is_empty());
    backends.smtp.restart().await;
    for ((_, mail), id) in people.iter().zip(&ids) {
        let code = backends
            .wait_for_code(mail, 1, Duration::from_secs(20))
            .await;
        app.verify(mail, id, &code)
            .await
            .expect("the late code still verifies");
    }
    assert_eq!(
        backends.smtp.messages().len(),
        people.len(),
        "each message once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_survives_a_restart_of_the_service() {
    let backends = Backends::start(false).await;
    backends.smtp.stop();
    let app = backends.instance(&[]).await;
    let mail = email("durable");
    let id = app
        .register(&username("durable"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    app.stop().await;
    backends.smtp.restart().await;
    let app = backends.instance(&[]).await;
    let code = backends
        .wait_for_code(&mail, 1, Duration::from_secs(20))
        .await;
    app.verify(&mail, &id, &code).await.unwrap();
}

/// How many dead letters the Redis mail queue holds.
async fn dead_letters(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    redis::cmd("ZCARD")
        .arg("{mail}:dead_at")
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_is_moved_to_the_dead_letters_not_dropped() {
    let backends = Backends::start(false).await;
    backends.smtp.stop();
    let app = backends.instance(&[("MAIL_MAX_ATTEMPTS", "2")]).await;
    let mail = email("dead");
    app.register(&username("dead"), &mail, PASSWORD)
        .await
        .unwrap();
    let client = redis::Client::open(backends.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    eventually(Duration::from_secs(15), "a dead letter", || {
        let mut conn = conn.clone();
        async move { dead_letters(&mut conn).await == 1 }
    })
    .await;
    // Kept for an operator (with when it died, for its expiry), and not sent once SMTP is back.
    backends.smtp.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(backends.mails_to(&mail).is_empty());
    let sealed: Vec<String> = redis::cmd("HKEYS")
        .arg("{mail}:sealed")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1, "the dead letter keeps its message");
    assert_eq!(dead_letters(&mut conn).await, 1);
    let died: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("{mail}:dead_at")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(died[0].0, sealed[0], "the dead letter is the kept message");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert!(
        (now_ms - 60_000.0..=now_ms).contains(&died[0].1),
        "scored by when it died: {}",
        died[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_mail_whose_code_expired_in_the_queue_is_dead_lettered_not_sent() {
    let backends = Backends::start(false).await;
    backends.smtp.stop();
    let app = backends.instance(&[("CODE_TTL", "1s")]).await;
    let mail = email("late");
    app.register(&username("late"), &mail, PASSWORD)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    backends.smtp.restart().await;
    let client = redis::Client::open(backends.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    eventually(Duration::from_secs(15), "a dead letter", || {
        let mut conn = conn.clone();
        async move { dead_letters(&mut conn).await == 1 }
    })
    .await;
    let errors: Vec<String> = redis::cmd("HVALS")
        .arg("{mail}:errors")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        errors.iter().any(|e| e.contains("expired")),
        "dead-lettered because its code expired: {errors:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        backends.mails_to(&mail).is_empty(),
        "a mail with a dead code is never sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_cut_short_by_the_user_store_works_again_with_the_same_code() {
    let backends = Backends::start(true).await;
    let mongo = backends.mongo.as_ref().expect("a server this test owns");
    let app = backends.instance(&[]).await;
    let mail = email("retry");
    let id = app
        .register(&username("retry"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = backends
        .wait_for_code(&mail, 1, Duration::from_secs(15))
        .await;

    // The code is checked (Redis), then the user cannot be created (MongoDB is down).
    mongo.stop();
    let status = app
        .verify(&mail, &id, &code)
        .await
        .expect_err("no user store, no user");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "BACKEND_UNAVAILABLE"),
        "{status:?}"
    );

    // The verified request was kept: the same code finishes the sign-up once MongoDB is back.
    mongo.restart().await;
    let verified = once_available(Duration::from_secs(20), "the same code", || {
        app.verify(&mail, &id, &code)
    })
    .await;
    let user = verified.user.unwrap();
    assert_eq!(user.email, mail);
    assert_eq!(
        app.login(&mail, PASSWORD).await.unwrap().user.unwrap().id,
        user.id
    );
    // Finished now: the request is gone.
    assert_error(
        app.verify(&mail, &id, &code).await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_cut_short_by_the_user_store_works_again_with_the_same_code() {
    let backends = Backends::start(true).await;
    let mongo = backends.mongo.as_ref().expect("a server this test owns");
    let app = backends.instance(&[]).await;
    let mail = email("resetretry");
    let (_, tokens) = backends.signup(&app, &username("resetretry"), &mail).await;
    let reset_id = app.request_reset(&mail).await.unwrap();
    let code = backends
        .wait_for_code(&mail, 2, Duration::from_secs(15))
        .await;
    let new_password = "a reset that had to wait";

    // The code is checked (Redis), then the password cannot be set (MongoDB is down).
    mongo.stop();
    let status = app
        .reset(&mail, &reset_id, &code, new_password)
        .await
        .expect_err("no user store, no new password");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::Unavailable, "BACKEND_UNAVAILABLE"),
        "{status:?}"
    );

    // The verified request was kept: the same code sets the password once MongoDB is back.
    mongo.restart().await;
    let done = once_available(Duration::from_secs(20), "the same reset code", || {
        app.reset(&mail, &reset_id, &code, new_password)
    })
    .await;
    assert_eq!(done.revoked_session_count, 1);
    assert_error(
        app.validate(&tokens.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.login(&mail, new_password).await.unwrap();
    assert_error(
        app.reset(&mail, &reset_id, &code, new_password).await,
        Code::NotFound,
        "RESET_NOT_FOUND",
    );
}
