//! Sign-up: Register and VerifyRegistration with the mailed code, every invalid field named,
//! taken emails and usernames, the first verified sign-up of an email winning, guess budgets,
//! resends and their cooldown, daily and per-network code limits, expired and unknown requests,
//! and the enumeration-safe mode.

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use baatcheet_test_support::mail::{extract_code, read_mails};

use crate::helpers::*;

#[tokio::test]
async fn register_mails_a_code_and_verify_creates_the_user_with_a_session() {
    let app = spawn_app().await;
    let email = email("ana");
    let name = username("ana");
    let response = app
        .register(
            &format!("  {name} "),
            &format!(" {} ", email.to_uppercase()),
            PASSWORD,
        )
        .await
        .unwrap();
    let id = response.registration_id.clone();
    assert_eq!(id.len(), 22, "128 random bits, base64url: {id}");
    let delivery = response.delivery.unwrap();
    assert_eq!(delivery.email, email, "email is trimmed and lowercased");
    assert_eq!(delivery.attempts_remaining, 5);
    let expires = delivery.code_expire_time.unwrap().seconds
        - delivery.resend_available_time.unwrap().seconds;
    assert!(
        (295..=305).contains(&expires),
        "code lives 300 s, resend after 0 s in tests: {expires}"
    );

    // Not a user until verified.
    assert_error(
        app.login(&email, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );

    let code = app.wait_for_code(&email, 1).await;
    let mail = &read_mails(&app.mail_dir)[0];
    assert!(
        mail.html.contains(&code),
        "the HTML part carries the code too"
    );
    assert!(mail.subject.contains("verification"));
    let verified = app.verify(&email, &id, &code).await.unwrap();
    let user = verified.user.unwrap();
    let tokens = verified.tokens.unwrap();
    assert_eq!(
        (user.username.as_str(), user.email.as_str()),
        (name.as_str(), email.as_str())
    );
    assert_eq!(user.status, pb::UserStatus::Online as i32);
    assert!(user.last_seen_time.is_some());
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(app.me(&tokens.access_token).await.unwrap().id, user.id);

    // The code is used up.
    assert_error(
        app.verify(&email, &id, &code).await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
}

#[tokio::test]
async fn every_invalid_field_is_named() {
    let app = spawn_app().await;
    let status = app
        .client()
        .register(pb::RegisterRequest {
            username: "a!".into(),
            email: "not-an-email".into(),
            password: "short".into(),
            bio: "b".repeat(151),
            avatar_url: "javascript:alert(1)".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        ["avatar_url", "bio", "email", "password", "username"]
    );

    let long = "x".repeat(129);
    let status = app
        .register(&username("u"), &email("u"), &long)
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["password"]);
    assert!(
        read_mails(&app.mail_dir).is_empty(),
        "nothing was sent for invalid requests"
    );
}

#[tokio::test]
async fn taken_email_and_username_are_refused() {
    let app = spawn_app().await;
    let (mail, name) = (email("taken"), username("Taken"));
    app.signup(&name, &mail).await;
    let status = assert_error(
        app.register(&username("other"), &mail, PASSWORD).await,
        Code::AlreadyExists,
        "EMAIL_TAKEN",
    );
    assert_eq!(violated_fields(&status), ["email"]);
    let status = assert_error(
        app.register(&name.to_lowercase(), &email("other"), PASSWORD)
            .await,
        Code::AlreadyExists,
        "USERNAME_TAKEN",
    );
    assert_eq!(violated_fields(&status), ["username"]);
}

#[tokio::test]
async fn wrong_codes_count_and_the_sixth_guess_is_refused_even_when_right() {
    let app = spawn_app().await;
    let mail = email("guess");
    let id = app
        .register(&username("guess"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = app.wait_for_code(&mail, 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for remaining in (0..5).rev() {
        let status = assert_error(
            app.verify(&mail, &id, wrong).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
        assert_eq!(violated_fields(&status), ["code"]);
        let info = tonic_types::StatusExt::get_error_details(&status)
            .error_info()
            .cloned()
            .unwrap();
        assert_eq!(info.metadata["attempts_remaining"], remaining.to_string());
    }
    let status = assert_error(
        app.verify(&mail, &id, &code).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
    assert_eq!(
        retry_secs(&status),
        None,
        "waiting does not help a void request: start again"
    );
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    // The void request cannot be revived by a resend either.
    assert_error(
        app.resend(&mail, &id).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
    // A new sign-up is a new request with a budget of its own.
    let again = app
        .register(&username("guess2"), &mail, PASSWORD)
        .await
        .unwrap();
    assert_eq!(again.delivery.unwrap().attempts_remaining, 5);
    let code = app.wait_for_code(&mail, 2).await;
    app.verify(&mail, &again.registration_id, &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_resend_keeps_the_wrong_guess_budget_and_voids_the_old_code() {
    let app = spawn_app().await;
    let mail = email("resend");
    let id = app
        .register(&username("resend"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let first = app.wait_for_code(&mail, 1).await;
    let wrong = |c: &str| {
        if c == "999999" {
            "999998".to_string()
        } else {
            "999999".to_string()
        }
    };
    for _ in 0..3 {
        assert_error(
            app.verify(&mail, &id, &wrong(&first)).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    let resent = app.resend(&mail, &id).await.unwrap();
    assert_eq!(
        resent.attempts_remaining, 2,
        "the budget is shared across resends"
    );
    let second = app.wait_for_code(&mail, 2).await;
    let stale = if second != first {
        first.clone()
    } else {
        wrong(&second)
    };
    assert_error(
        app.verify(&mail, &id, &stale).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    assert_error(
        app.verify(&mail, &id, &wrong(&second)).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    // Five wrong guesses in all: the request is void, even for the right code.
    assert_error(
        app.verify(&mail, &id, &second).await,
        Code::ResourceExhausted,
        "CODE_ATTEMPTS_EXHAUSTED",
    );
}

#[tokio::test]
async fn resend_cooldown_answers_resource_exhausted_with_a_retry_delay() {
    let app = spawn_app_with(&[("CODE_RESEND_COOLDOWN", "60s")]).await;
    let mail = email("cool");
    let registered = app
        .register(&username("cool"), &mail, PASSWORD)
        .await
        .unwrap();
    let id = registered.registration_id;
    let first = registered.delivery.unwrap();
    let resend_after = first.resend_available_time.unwrap().seconds
        - first.code_expire_time.unwrap().seconds
        + 300;
    assert!((59..=61).contains(&resend_after), "{resend_after}");
    let status = assert_error(
        app.resend(&mail, &id).await,
        Code::ResourceExhausted,
        "RESEND_COOLDOWN",
    );
    let retry = retry_secs(&status).unwrap();
    assert!((55..=60).contains(&retry), "retry delay {retry}");
    app.wait_for_code(&mail, 1).await;
    assert_eq!(app.mails_to(&mail).len(), 1, "one code mail only");
    // The cooldown is the request's: another sign-up of the email (say, the owner's own,
    // right after someone else's) is not held up by it.
    app.register(&username("cool2"), &mail, PASSWORD)
        .await
        .unwrap();
    app.wait_for_code(&mail, 2).await;
}

#[tokio::test]
async fn the_daily_code_limit_stops_mail_bombing() {
    let app = spawn_app_with(&[("CODE_MAX_SENDS_PER_DAY", "3")]).await;
    let mail = email("bomb");
    let id = app
        .register(&username("bomb"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    app.resend(&mail, &id).await.unwrap();
    app.resend(&mail, &id).await.unwrap();
    let status = assert_error(
        app.resend(&mail, &id).await,
        Code::ResourceExhausted,
        "CODE_DAILY_LIMIT",
    );
    assert!(retry_secs(&status).unwrap() > 3600);
    // New sign-ups of the email share the day's budget.
    assert_error(
        app.register(&username("bomb2"), &mail, PASSWORD).await,
        Code::ResourceExhausted,
        "CODE_DAILY_LIMIT",
    );
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = spawn_app_with(&[("CODE_TTL", "1s")]).await;
    let mail = email("exp");
    let id = app
        .register(&username("exp"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = app.wait_for_code(&mail, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_error(
        app.verify(&mail, &id, &code).await,
        Code::FailedPrecondition,
        "CODE_EXPIRED",
    );
    // A resend gives a working code.
    app.resend(&mail, &id).await.unwrap();
    let fresh = app.wait_for_code(&mail, 2).await;
    app.verify(&mail, &id, &fresh).await.unwrap();
}

#[tokio::test]
async fn unknown_registrations_are_not_found() {
    let app = spawn_app().await;
    let unknown_id = "AAAAAAAAAAAAAAAAAAAAAA";
    assert_error(
        app.verify(&email("nobody"), unknown_id, "123456").await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
    assert_error(
        app.resend(&email("nobody"), unknown_id).await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
    let status = assert_error(
        app.verify("bad", "not an id", "12x").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["code", "email", "registration_id"]);
    let status = assert_error(
        app.verify(&email("noid"), "", "123456").await,
        Code::InvalidArgument,
        "REGISTRATION_ID_REQUIRED",
    );
    assert_eq!(violated_fields(&status), ["registration_id"]);
    assert_error(
        app.resend(&email("noid"), " ").await,
        Code::InvalidArgument,
        "REGISTRATION_ID_REQUIRED",
    );
}

#[tokio::test]
async fn the_first_verified_sign_up_of_an_email_creates_the_user_and_voids_the_others() {
    let app = spawn_app().await;
    let mail = email("twice");
    let (mine, theirs) = (username("mine"), username("theirs"));
    let squatter = app
        .register(&theirs, &mail, "someone else's password")
        .await
        .unwrap()
        .registration_id;
    let squatter_code = app.wait_for_code(&mail, 1).await;
    let own = app
        .register(&mine, &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let own_code = app.wait_for_code(&mail, 2).await;
    assert_ne!(squatter, own);
    // Each code belongs to its own request: the id of one and the code of the other fail.
    if squatter_code != own_code {
        assert_error(
            app.verify(&mail, &own, &squatter_code).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    let user = app
        .verify(&mail, &own, &own_code)
        .await
        .unwrap()
        .user
        .unwrap();
    assert_eq!(user.username, mine);
    // The email belongs to a user now: the other pending sign-up is void.
    assert_error(
        app.verify(&mail, &squatter, &squatter_code).await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
    assert_error(
        app.resend(&mail, &squatter).await,
        Code::NotFound,
        "REGISTRATION_NOT_FOUND",
    );
    assert_error(
        app.login(&theirs, "someone else's password").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    app.login(&mail, PASSWORD).await.unwrap();
}

#[tokio::test]
async fn wrong_codes_per_email_per_day_are_bounded_over_all_its_sign_ups() {
    let app = spawn_app_with(&[("CODE_MAX_GUESSES_PER_DAY", "7")]).await;
    let mail = email("daily");
    let first = app
        .register(&username("daily1"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let first_code = app.wait_for_code(&mail, 1).await;
    let wrong = if first_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        app.verify(&mail, &first, wrong).await.unwrap_err();
    }
    // A new sign-up has a fresh budget of five, but the email has two guesses left today.
    let second = app
        .register(&username("daily2"), &mail, PASSWORD)
        .await
        .unwrap()
        .registration_id;
    let code = app.wait_for_code(&mail, 2).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for remaining in [4, 3] {
        let status = assert_error(
            app.verify(&mail, &second, wrong).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
        let info = tonic_types::StatusExt::get_error_details(&status)
            .error_info()
            .cloned()
            .unwrap();
        assert_eq!(info.metadata["attempts_remaining"], remaining.to_string());
    }
    // Nothing is evaluated past the day's budget, not even the right code.
    for guess in [wrong, code.as_str()] {
        let status = assert_error(
            app.verify(&mail, &second, guess).await,
            Code::ResourceExhausted,
            "TOO_MANY_GUESSES_TODAY",
        );
        let retry = retry_secs(&status).unwrap();
        assert!((3600..=86_400).contains(&retry), "{retry}");
    }
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
}

/// Register from `ip`, as the gateway forwards it (loopback peers are trusted proxies).
async fn register_from(
    app: &TestApp,
    ip: &str,
    email: &str,
) -> Result<pb::RegisterResponse, tonic::Status> {
    let mut request = tonic::Request::new(pb::RegisterRequest {
        username: username("net"),
        email: email.into(),
        password: PASSWORD.into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-client-ip", ip.parse().unwrap());
    app.client().register(request).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn code_requests_per_network_are_limited() {
    let app = spawn_app_with(&[("CODE_REQUESTS_PER_IP_PER_HOUR", "3")]).await;
    let busy = "198.51.100.9";
    let mail = email("net");
    let id = register_from(&app, busy, &mail)
        .await
        .unwrap()
        .registration_id;
    register_from(&app, busy, &email("net")).await.unwrap();
    // A resend counts too.
    let mut resend = tonic::Request::new(pb::ResendVerificationCodeRequest {
        email: mail.clone(),
        registration_id: id,
    });
    resend
        .metadata_mut()
        .insert("x-client-ip", busy.parse().unwrap());
    app.client().resend_verification_code(resend).await.unwrap();
    let status = assert_error(
        register_from(&app, busy, &email("net")).await,
        Code::ResourceExhausted,
        "SIGNUP_RATE_LIMITED",
    );
    let retry = retry_secs(&status).unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    // Password resets share the network's budget.
    let mut reset = tonic::Request::new(pb::RequestPasswordResetRequest {
        email: email("net"),
    });
    reset
        .metadata_mut()
        .insert("x-client-ip", busy.parse().unwrap());
    assert_error(
        app.client().request_password_reset(reset).await,
        Code::ResourceExhausted,
        "RESET_RATE_LIMITED",
    );
    // Other networks are not held up.
    register_from(&app, "198.51.100.10", &email("net"))
        .await
        .unwrap();
    app.register(&username("local"), &email("local"), PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_enumeration_safe_sign_up_for_a_taken_email_looks_new_and_tells_the_owner() {
    let app = spawn_app_with(&[("SIGNUP_ENUMERATION_SAFE", "true")]).await;
    let mail = email("owner");
    let owner = username("owner");
    app.signup(&owner, &mail).await;
    let answer = app
        .register(&username("intruder"), &mail, "intruder password")
        .await
        .expect("answered like a new sign-up");
    assert_eq!(answer.registration_id.len(), 22);
    assert_eq!(answer.delivery.unwrap().attempts_remaining, 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.mails_to(&mail).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no notice to the owner"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let notice = app.mails_to(&mail).pop().unwrap();
    let (subject, text) = (notice.subject, notice.text);
    assert!(subject.contains("tried to sign up"), "{subject}");
    assert!(text.contains(&owner));
    assert_eq!(extract_code(&text), None, "a notice, not a code");
    // No code finishes the decoy, and the owner's account is untouched.
    assert_error(
        app.verify(&mail, &answer.registration_id, "123456").await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    app.login(&mail, PASSWORD).await.unwrap();
    // Usernames are public, so a taken one is still refused.
    assert_error(
        app.register(&owner, &email("other"), PASSWORD).await,
        Code::AlreadyExists,
        "USERNAME_TAKEN",
    );
}
