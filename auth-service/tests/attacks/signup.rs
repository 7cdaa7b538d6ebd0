//! Sign-up and reset codes: taking over someone's pending sign-up, spending the owner's
//! guesses, guessing at scale, flooding, enumerating, and losing a sign-up to an outage.

use std::time::Duration;

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::attacks::arena::{Arena, Backend, from_ip, on_every_backend};
use crate::env::Backends;
use baatcheet_test_support::mail::extract_code;

use crate::helpers::*;

on_every_backend!(
    a_second_registrant_cannot_take_over_a_pending_sign_up,
    an_attackers_wrong_guesses_never_spend_the_owners_attempts,
    guesses_at_an_emails_codes_are_capped_per_day,
    code_requests_are_limited_per_network,
    a_reset_for_an_unknown_email_looks_real_and_stores_only_a_bounded_record,
    with_enumeration_safety_a_taken_email_answers_like_a_new_sign_up,
    code_guesses_spread_over_many_addresses_are_limited_per_network,
    reset_guesses_cost_no_password_hashing,
);

const ATTACKER_PASSWORD: &str = "the attacker's own password";

async fn a_second_registrant_cannot_take_over_a_pending_sign_up(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let app = &arena.app;
    let (victim_mail, victim_name) = (email("victim"), username("victim"));
    let victim = app
        .register(&victim_name, &victim_mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let victims_code = arena.code(&victim_mail, 1).await;
    // Right after the victim, someone registers the same email with their own password.
    let attacker = app
        .client()
        .register(from_ip(
            pb::RegisterRequest {
                username: username("attacker"),
                email: victim_mail.clone(),
                password: ATTACKER_PASSWORD.into(),
                ..Default::default()
            },
            "203.0.113.66",
        ))
        .await
        .unwrap()
        .into_inner()
        .registration_id;
    assert_ne!(attacker, victim);
    // The attacker's code lands in the victim's mailbox; typing that newest code into the
    // victim's own sign-up does not create the attacker's account.
    let newest = arena.code(&victim_mail, 2).await;
    if newest != victims_code {
        assert_error(
            app.verify(&victim_mail, &victim, &newest).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    // The attacker holding the victim's code (shoulder-surfed) cannot use it either.
    if newest != victims_code {
        assert_error(
            app.verify(&victim_mail, &attacker, &victims_code).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    // Nor resend or verify without the victim's id.
    assert_error(
        app.resend(&victim_mail, "AAAAAAAAAAAAAAAAAAAAAA").await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
    let user = app
        .verify(&victim_mail, &victim, &victims_code)
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(user.username, victim_name, "the victim's own sign-up won");
    app.login(&victim_mail, PASSWORD).await.unwrap();
    assert_error(
        app.login(&victim_mail, ATTACKER_PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    // The attacker's pending sign-up is void now, even with its own code.
    assert_error(
        app.verify(&victim_mail, &attacker, &newest).await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
}

async fn an_attackers_wrong_guesses_never_spend_the_owners_attempts(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let app = &arena.app;
    let mail = email("owner");
    let owner = app
        .register(&username("owner"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = arena.code(&mail, 1).await;
    let attacker = app
        .register(&username("attacker"), &mail, ATTACKER_PASSWORD)
        .await
        .unwrap()
        .registration_id;
    // Delivered before the owner's resend is queued, so the mails arrive in this order.
    arena.code(&mail, 2).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_error(
            app.verify(&mail, &attacker, wrong).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    assert_error(
        app.verify(&mail, &attacker, wrong).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
    // The owner's request still has its whole budget, and their code works.
    let status = app.resend(&mail, &owner).await.unwrap();
    assert_eq!(status.attempts_remaining, 5);
    let resent = arena.code(&mail, 3).await;
    app.verify(&mail, &owner, &resent).await.unwrap();

    // The same for password resets: the attacker's own reset request takes the guesses.
    let owners_reset = app.request_reset(&mail).await.unwrap();
    let reset_code = arena.code(&mail, 4).await;
    let attackers_reset = app.request_reset(&mail).await.unwrap();
    let wrong = if reset_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        assert_error(
            app.reset(&mail, &attackers_reset, wrong, "an attacker's choice")
                .await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    app.reset(
        &mail,
        &owners_reset,
        &reset_code,
        "the owner's new password",
    )
    .await
    .unwrap();
    app.login(&mail, "the owner's new password").await.unwrap();
}

async fn guesses_at_an_emails_codes_are_capped_per_day(backend: Backend) {
    let arena = Arena::start(backend, &[]).await;
    let app = &arena.app;
    let mail = email("capped");
    arena.signup(&username("capped"), &mail).await;
    // An attacker starts resets for the victim from several networks (each mails the victim)
    // and guesses at each: 20 wrong guesses in all are evaluated, then none.
    let mut evaluated = 0;
    let mut guesses = (0..).map(|n| format!("{n:06}"));
    let mut sent = vec![arena.code(&mail, 1).await];
    for n in 0..5 {
        let reset_id = app
            .client()
            .request_password_reset(from_ip(
                pb::RequestPasswordResetRequest {
                    email: mail.clone(),
                },
                &format!("198.51.100.{n}"),
            ))
            .await
            .unwrap()
            .into_inner()
            .reset_id;
        // The guesses skip every code really sent, so none can match by luck.
        sent.push(arena.code(&mail, n + 2).await);
        for _ in 0..5 {
            let code = guesses.find(|g| !sent.contains(g)).unwrap();
            match app
                .reset(&mail, &reset_id, &code, "the attacker's choice")
                .await
            {
                Err(s) if reason(&s) == "CODE_INVALID" => evaluated += 1,
                Err(s) if reason(&s) == "TOO_MANY_GUESSES_TODAY" => {
                    assert_eq!(s.code(), Code::ResourceExhausted);
                    let retry = retry_secs(&s).expect("a retry delay");
                    assert!(retry > 23 * 3600 && retry <= 24 * 3600, "{retry}");
                }
                Ok(_) => panic!("a guessed code reset the password"),
                Err(s) => panic!("unexpected {s:?}"),
            }
        }
    }
    assert_eq!(
        evaluated, 20,
        "CODE_MAX_GUESSES_PER_DAY evaluated wrong guesses"
    );
    app.login(&mail, PASSWORD)
        .await
        .expect("the password never changed");
}

async fn code_requests_are_limited_per_network(backend: Backend) {
    let arena = Arena::start(backend, &[("CODE_REQUESTS_PER_IP_PER_HOUR", "5")]).await;
    let app = &arena.app;
    let register = |ip: &'static str| {
        let mut client = app.client();
        async move {
            client
                .register(from_ip(
                    pb::RegisterRequest {
                        username: username("flood"),
                        email: email("flood"),
                        password: PASSWORD.into(),
                        ..Default::default()
                    },
                    ip,
                ))
                .await
        }
    };
    for _ in 0..5 {
        register("192.0.2.10").await.unwrap();
    }
    let status = assert_error(
        register("192.0.2.10").await,
        Code::ResourceExhausted,
        "SIGNUP_RATE_LIMITED",
    );
    let retry = retry_secs(&status).unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    // The same network cannot switch to resets; another network is not held up.
    assert_error(
        app.client()
            .request_password_reset(from_ip(
                pb::RequestPasswordResetRequest {
                    email: email("other"),
                },
                "192.0.2.10",
            ))
            .await,
        Code::ResourceExhausted,
        "RESET_RATE_LIMITED",
    );
    register("192.0.2.11").await.unwrap();
    // One IPv6 subscriber owns a /64: rotating addresses inside it does not help.
    for n in 0..5 {
        let ip: &'static str = Box::leak(format!("2001:db8:7:7::{n:x}").into_boxed_str());
        register(ip).await.unwrap();
    }
    assert_error(
        register("2001:db8:7:7:ffff::1").await,
        Code::ResourceExhausted,
        "SIGNUP_RATE_LIMITED",
    );
    register("2001:db8:7:8::1").await.unwrap();
}

async fn a_reset_for_an_unknown_email_looks_real_and_stores_only_a_bounded_record(
    backend: Backend,
) {
    let arena = Arena::start(backend, &[("CODE_MAX_SENDS_PER_DAY", "10")]).await;
    let app = &arena.app;
    let known = email("known");
    arena.signup(&username("known"), &known).await;
    let ghost = email("ghost");
    let known_reset = app.request_reset(&known).await.unwrap();
    let ghost_reset = app.request_reset(&ghost).await.unwrap();
    assert_eq!(known_reset.len(), ghost_reset.len());
    // A wrong code gets the same answer for both, with the same budget.
    for (mail, id) in [(&known, &known_reset), (&ghost, &ghost_reset)] {
        let status = assert_error(
            app.reset(mail, id, "000001", "a new password 1").await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
        let info = tonic_types::StatusExt::get_error_details(&status)
            .error_info()
            .cloned()
            .unwrap();
        assert_eq!(info.metadata["attempts_remaining"], "4");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(arena.mails_to(&ghost).is_empty(), "nobody is mailed");
    // Storage: one bounded record per unknown email, however many requests.
    let before = arena.stored_records().await;
    let ghosts: Vec<String> = (0..20).map(|_| email("ghost")).collect();
    for ghost in &ghosts {
        app.request_reset(ghost).await.unwrap();
    }
    let per_email = (arena.stored_records().await - before) as f64 / ghosts.len() as f64;
    assert!(per_email <= 2.0, "{per_email} records per unknown email");
    for _ in 0..9 {
        app.request_reset(&ghosts[0]).await.unwrap();
    }
    assert_error(
        app.request_reset(&ghosts[0]).await,
        Code::ResourceExhausted,
        "CODE_DAILY_LIMIT",
    );
    let total = arena.stored_records().await - before;
    assert!(
        total <= 2 * ghosts.len() as u64 + 9,
        "requests for one email are bounded by its daily sends: {total}"
    );
}

async fn with_enumeration_safety_a_taken_email_answers_like_a_new_sign_up(backend: Backend) {
    let arena = Arena::start(backend, &[("SIGNUP_ENUMERATION_SAFE", "true")]).await;
    let app = &arena.app;
    let (owner_mail, owner_name) = (email("owner"), username("owner"));
    arena.signup(&owner_name, &owner_mail).await;
    let fresh = app
        .register(&username("new"), &email("new"), PASSWORD)
        .await
        .unwrap();
    let taken = app
        .register(&username("probe"), &owner_mail, PASSWORD)
        .await
        .expect("a taken email answers like a new one");
    let (a, b) = (fresh.delivery.unwrap(), taken.delivery.clone().unwrap());
    assert_eq!(a.attempts_remaining, b.attempts_remaining);
    assert_eq!(
        a.code_expire_time.unwrap().seconds - a.resend_available_time.unwrap().seconds,
        b.code_expire_time.unwrap().seconds - b.resend_available_time.unwrap().seconds
    );
    assert_eq!(fresh.registration_id.len(), taken.registration_id.len());
    // The owner is told (once an hour), with no code; the probe's request never finishes.
    let notice = loop {
        let mails = arena.mails_to(&owner_mail);
        if mails.len() >= 2 {
            break mails[1].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(notice.subject.contains("tried to sign up"), "{notice:?}");
    assert!(
        extract_code(&notice.text).is_none(),
        "no code in the notice"
    );
    assert_error(
        app.verify(&owner_mail, &taken.registration_id, "123456")
            .await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    app.resend(&owner_mail, &taken.registration_id)
        .await
        .unwrap();
    app.register(&username("probe2"), &owner_mail, PASSWORD)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(arena.mails_to(&owner_mail).len(), 2, "one notice, no codes");
    app.login(&owner_mail, PASSWORD).await.unwrap();
    // Usernames are public: a taken one is still said to be taken.
    assert_error(
        app.register(&owner_name, &email("x"), PASSWORD).await,
        Code::AlreadyExists,
        "USERNAME_TAKEN",
    );
}

/// The user store fails after the code was accepted: the sign-up is kept, and the same code
/// finishes it once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_store_outage_during_verification_loses_no_sign_up() {
    let backends = Backends::start(true).await;
    let app = backends.instance(&[]).await;
    let mail = email("outage");
    let id = app
        .register(&username("outage"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = backends
        .wait_for_code(&mail, 1, Duration::from_secs(20))
        .await;
    let mongo = backends.mongo.as_ref().expect("a MongoDB of this test");
    mongo.stop();
    assert_error(
        app.verify(&mail, &id, &code).await,
        Code::Unavailable,
        "BACKEND_UNAVAILABLE",
    );
    mongo.restart().await;
    let verified = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match app.verify(&mail, &id, &code).await {
                Ok(v) => break v,
                Err(s) if s.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(s) => panic!("the sign-up was lost: {s:?}"),
            }
        }
    })
    .await
    .expect("the store came back");
    assert_eq!(verified.user.unwrap().email, mail);
    app.login(&mail, PASSWORD).await.unwrap();
}

async fn code_guesses_spread_over_many_addresses_are_limited_per_network(backend: Backend) {
    let arena = Arena::start(backend, &[("CODE_GUESSES_PER_IP_PER_HOUR", "5")]).await;
    let app = &arena.app;
    // One network asks for resets of many addresses and tries one code at each.
    let mut victims = Vec::new();
    for _ in 0..6 {
        let mail = email("spread");
        victims.push((mail.clone(), app.request_reset(&mail).await.unwrap()));
    }
    let guess = |mail: String, id: String, ip: &'static str| {
        let mut client = app.client();
        async move {
            client
                .reset_password(from_ip(
                    pb::ResetPasswordRequest {
                        email: mail,
                        reset_id: id,
                        code: "123456".into(),
                        new_password: "the attacker's choice".into(),
                    },
                    ip,
                ))
                .await
        }
    };
    for (mail, id) in &victims[..5] {
        assert_error(
            guess(mail.clone(), id.clone(), "192.0.2.77").await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    let (mail, id) = &victims[5];
    let status = assert_error(
        guess(mail.clone(), id.clone(), "192.0.2.77").await,
        Code::ResourceExhausted,
        "CODE_GUESSES_RATE_LIMITED",
    );
    assert!(retry_secs(&status).unwrap() <= 3600);
    // Another network is not held up.
    assert_error(
        guess(mail.clone(), id.clone(), "192.0.2.78").await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
}

async fn reset_guesses_cost_no_password_hashing(backend: Backend) {
    // One hashing thread and no queue: a reset guess that hashed would crowd out a login.
    let arena = Arena::start(backend, &[("HASH_CONCURRENCY", "1"), ("HASH_QUEUE", "0")]).await;
    let app = &arena.app;
    let mail = email("busy");
    arena.signup(&username("busy"), &mail).await;
    let reset_id = app.request_reset(&mail).await.unwrap();
    let guesses = (0..30).map(|n| {
        let (mut client, mail, reset_id) = (app.client(), mail.clone(), reset_id.clone());
        tokio::spawn(async move {
            client
                .reset_password(pb::ResetPasswordRequest {
                    email: mail,
                    reset_id: if n % 2 == 0 {
                        reset_id
                    } else {
                        "AAAAAAAAAAAAAAAAAAAAAA".into()
                    },
                    code: format!("{:06}", 900_000 + n),
                    new_password: "a long new password".into(),
                })
                .await
        })
    });
    let login = app.login(&mail, PASSWORD);
    let (results, login) = tokio::join!(futures::future::join_all(guesses), login);
    login.expect("the login found the hasher free");
    for r in results {
        let status = r.unwrap().expect_err("no guess matches");
        assert!(
            [
                "CODE_INVALID",
                "RESET_NOT_FOUND",
                "CODE_ATTEMPTS_EXHAUSTED",
                "TOO_MANY_GUESSES_TODAY"
            ]
            .contains(&reason(&status).as_str()),
            "{status:?}"
        );
    }
}
