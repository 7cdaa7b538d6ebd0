//! Starving the mail queue: a flood of sign-ups to random addresses through a slow relay must
//! not delay a real user's code past its life, and a code that expired in the queue is not
//! sent at all.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use futures::future::join_all;

use crate::attacks::arena::{Arena, Backend, on_every_backend};
use crate::helpers::*;
use baatcheet_test_support::smtp_server::SmtpServer;

on_every_backend!(
    a_flood_of_sign_ups_through_a_slow_relay_does_not_starve_a_real_code,
    a_code_that_expired_in_the_queue_is_not_sent,
);

async fn a_flood_of_sign_ups_through_a_slow_relay_does_not_starve_a_real_code(backend: Backend) {
    // 300 ms per message: one message at a time, the flood below would take 30 s to drain,
    // past the code's life.
    let smtp = SmtpServer::start_slow(Duration::from_millis(300)).await;
    let arena = Arena::start_with_smtp(backend, &[("CODE_TTL", "30s")], smtp).await;
    // In waves the hashing queue takes (HASH_QUEUE), as fast as the service accepts them.
    for _ in 0..5 {
        let wave = (0..20).map(|_| {
            let mut client = arena.app.client();
            tokio::spawn(async move {
                client
                    .register(pb::RegisterRequest {
                        username: username("bot"),
                        email: email("random"),
                        password: PASSWORD.into(),
                        ..Default::default()
                    })
                    .await
            })
        });
        for r in join_all(wave).await {
            r.unwrap()
                .expect("the flood is accepted (the per-network limit is raised in tests)");
        }
    }
    // A real user signs up behind the flood and gets a code that still works.
    let mail = email("real");
    let id = arena
        .app
        .register(&username("real"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = arena.code_within(&mail, 1, Duration::from_secs(30)).await;
    arena
        .app
        .verify(&mail, &id, &code)
        .await
        .expect("the code arrived while it was valid");
}

async fn a_code_that_expired_in_the_queue_is_not_sent(backend: Backend) {
    // One message at a time, each taking 2 s, codes living 1 s: only the first code can go.
    let smtp = SmtpServer::start_slow(Duration::from_secs(2)).await;
    let arena = Arena::start_with_smtp(
        backend,
        &[("CODE_TTL", "1s"), ("MAIL_CONCURRENCY", "1")],
        smtp,
    )
    .await;
    let mails: Vec<String> = (0..3).map(|_| email("late")).collect();
    for mail in &mails {
        arena
            .app
            .register(&username("late"), mail, PASSWORD)
            .await
            .unwrap();
    }
    arena
        .code_within(&mails[0], 1, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for late in &mails[1..] {
        assert!(
            arena.mails_to(late).is_empty(),
            "an expired code was mailed to {late}"
        );
    }
}
