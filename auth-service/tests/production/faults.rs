//! A backend stopped mid-run: RPCs that need it fail fast with UNAVAILABLE, the process stays
//! up, readiness says NOT_SERVING, and service resumes by itself when the backend is back.

use std::time::{Duration, Instant};

use baatcheet_auth_api::v1 as pb;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::env::{Backends, eventually};
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
    for (name, mail) in &people {
        app.register(name, mail, PASSWORD)
            .await
            .expect("sign-up succeeds while SMTP is down");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(backends.smtp.messages().is_empty());
    backends.smtp.restart().await;
    for (_, mail) in &people {
        let code = backends
            .wait_for_code(mail, 1, Duration::from_secs(20))
            .await;
        app.verify(mail, &code)
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
    app.register(&username("durable"), &mail, PASSWORD)
        .await
        .unwrap();
    app.stop().await;
    backends.smtp.restart().await;
    let app = backends.instance(&[]).await;
    let code = backends
        .wait_for_code(&mail, 1, Duration::from_secs(20))
        .await;
    app.verify(&mail, &code).await.unwrap();
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
        async move {
            let n: u64 = redis::cmd("SCARD")
                .arg("{mail}:dead")
                .query_async(&mut conn)
                .await
                .unwrap();
            n == 1
        }
    })
    .await;
    // Kept for an operator, and not sent once SMTP is back.
    backends.smtp.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(backends.mails_to(&mail).is_empty());
    let sealed: Vec<String> = redis::cmd("HKEYS")
        .arg("{mail}:sealed")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1, "the dead letter keeps its message");
    let dead: u64 = redis::cmd("SCARD")
        .arg("{mail}:dead")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 1);
}
