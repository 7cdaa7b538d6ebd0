//! Second factors over gRPC, with codes from pyotp (an authenticator nobody here wrote):
//! enrollment (a code and the password turn TOTP on, recovery codes shown once), the challenge
//! a sign-in gets instead of tokens, each code accepted once, recovery codes, the guess
//! budgets, and turning TOTP off. Every attack named in the flows is one test here.

use baatcheet_auth_api::v1 as pb;
use baatcheet_test_support::totp;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::*;

const TOTP: i32 = pb::AuthMethod::Totp as i32;
const RECOVERY: i32 = pb::AuthMethod::RecoveryCode as i32;
const PASSWORD_METHOD: i32 = pb::AuthMethod::Password as i32;

/// A signed-up user with TOTP on: (email, tokens, base32 secret, recovery codes).
pub struct Enrolled {
    pub email: String,
    pub tokens: pb::TokenPair,
    pub secret: String,
    pub recovery: Vec<String>,
}

pub async fn start(app: &TestApp, token: &str) -> Result<pb::StartTotpEnrollmentResponse, Status> {
    app.client()
        .start_totp_enrollment(authed(pb::StartTotpEnrollmentRequest {}, token))
        .await
        .map(|r| r.into_inner())
}

pub async fn confirm(
    app: &TestApp,
    token: &str,
    code: &str,
    password: &str,
) -> Result<Vec<String>, Status> {
    app.client()
        .confirm_totp_enrollment(authed(
            pb::ConfirmTotpEnrollmentRequest {
                code: code.into(),
                current_password: password.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().recovery_codes)
}

pub async fn enrolled(app: &TestApp, tag: &str) -> Enrolled {
    let mail = email(tag);
    let (_, tokens) = app.signup(&username(tag), &mail).await;
    let secret = start(app, &tokens.access_token).await.unwrap().secret;
    let recovery = confirm(
        app,
        &tokens.access_token,
        &totp::code_now(&secret),
        PASSWORD,
    )
    .await
    .unwrap();
    // Its notice is in, so tests that count mails count from here.
    wait_for_notice(app, &mail, "Two-factor sign-in is on").await;
    Enrolled {
        email: mail,
        tokens,
        secret,
        recovery,
    }
}

/// Login that must answer a challenge: its id.
pub async fn challenge(app: &TestApp, identifier: &str) -> pb::MfaChallenge {
    let reply = app.login(identifier, PASSWORD).await.unwrap();
    assert!(reply.tokens.is_none() && reply.user.is_none(), "{reply:?}");
    reply.mfa_challenge.expect("a challenge")
}

pub async fn complete(
    app: &TestApp,
    challenge_id: &str,
    factor: pb::complete_mfa_challenge_request::Factor,
) -> Result<pb::CompleteMfaChallengeResponse, Status> {
    app.client()
        .complete_mfa_challenge(pb::CompleteMfaChallengeRequest {
            challenge_id: challenge_id.into(),
            factor: Some(factor),
        })
        .await
        .map(|r| r.into_inner())
}

/// Waits (up to 10 s) for a mail to `email` whose subject holds `subject`: a notice, no code.
pub async fn wait_for_notice(app: &TestApp, email: &str, subject: &str) {
    for _ in 0..400 {
        if let Some(mail) = app
            .mails_to(email)
            .into_iter()
            .find(|m| m.subject.contains(subject))
        {
            assert_eq!(baatcheet_test_support::mail::extract_code(&mail.text), None);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no notice {subject:?} to {email}");
}

fn totp_code(code: String) -> pb::complete_mfa_challenge_request::Factor {
    pb::complete_mfa_challenge_request::Factor::TotpCode(code)
}

/// The app's code of the step after the current one: one the service has not accepted yet.
fn next_app_code(secret: &str) -> pb::complete_mfa_challenge_request::Factor {
    totp_code(totp::code_next(secret))
}

fn recovery_code(code: &str) -> pb::complete_mfa_challenge_request::Factor {
    pb::complete_mfa_challenge_request::Factor::RecoveryCode(code.into())
}

/// A code of `secret` that is certainly wrong now (none of the three accepted steps).
fn wrong_code(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let accepted: Vec<_> = (-2..=2)
        .map(|k| totp::code_at(secret, now + 30 * k))
        .collect();
    (0..)
        .map(|n| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !accepted.contains(c))
        .unwrap()
}

async fn disable(
    app: &TestApp,
    token: &str,
    proof: Option<pb::disable_totp_request::Proof>,
) -> Result<i32, Status> {
    app.client()
        .disable_totp(authed(pb::DisableTotpRequest { proof }, token))
        .await
        .map(|r| r.into_inner().revoked_session_count)
}

#[tokio::test]
async fn enrolling_needs_a_valid_code_and_the_password_and_then_sign_in_needs_the_app() {
    let app = spawn_app().await;
    let mail = email("totp");
    let (_, tokens) = app.signup(&username("totp"), &mail).await;
    let token = &tokens.access_token;
    let me = app.me(token).await.unwrap();
    assert!(me.second_factors.is_empty());

    let enrollment = start(&app, token).await.unwrap();
    let secret = enrollment.secret.clone();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let uri = &enrollment.otpauth_uri;
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains(&mail.replace('@', "%40")), "{uri}");
    // Nothing is on before the confirmation: the password alone signs in (a second device).
    let before = app.login(&mail, PASSWORD).await.unwrap().tokens.unwrap();

    // A wrong code, and a stolen access token without the password, turn nothing on.
    let status = assert_error(
        confirm(&app, token, &wrong_code(&secret), PASSWORD).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    assert_eq!(violated_fields(&status), ["code"]);
    assert_error(
        confirm(&app, token, &totp::code_now(&secret), "not the password").await,
        Code::InvalidArgument,
        "WRONG_PASSWORD",
    );
    let recovery = confirm(&app, token, &totp::code_now(&secret), PASSWORD)
        .await
        .unwrap();
    assert_eq!(recovery.len(), 10);
    // The session that signed in without the factor ended; this one goes on.
    assert_error(
        app.validate(&before.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.validate(token).await.unwrap();
    assert!(
        recovery
            .iter()
            .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'),
        "{recovery:?}"
    );
    let me = app.me(token).await.unwrap();
    assert_eq!(
        (me.second_factors, me.recovery_codes_remaining),
        (vec![TOTP], 10)
    );
    // The owner is told, so a change they did not make is seen.
    wait_for_notice(&app, &mail, "Two-factor sign-in is on").await;
    // On once: a second enrollment is refused until it is turned off.
    assert_error(
        start(&app, token).await,
        Code::FailedPrecondition,
        "TOTP_ALREADY_ENABLED",
    );

    // The password alone no longer signs in: no tokens, a challenge.
    let first = challenge(&app, &mail).await;
    assert_eq!(first.factors, [TOTP, RECOVERY]);
    assert_eq!(first.challenge_id.len(), 22);
    let status = assert_error(
        complete(&app, &first.challenge_id, totp_code(wrong_code(&secret))).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    assert_eq!(violated_fields(&status), ["totp_code"]);
    let signed = complete(&app, &first.challenge_id, next_app_code(&secret))
        .await
        .unwrap();
    let new_tokens = signed.tokens.unwrap();
    assert_eq!(signed.user.unwrap().email, mail);
    let sessions = app.sessions(&new_tokens.access_token).await.unwrap();
    let this = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(this.auth_methods, [PASSWORD_METHOD, TOTP]);

    // The challenge is used up, and the same code does not work twice.
    assert_error(
        complete(&app, &first.challenge_id, next_app_code(&secret)).await,
        Code::NotFound,
        "MFA_CHALLENGE_NOT_FOUND",
    );
    let again = challenge(&app, &mail).await;
    let status = assert_error(
        complete(&app, &again.challenge_id, next_app_code(&secret)).await,
        Code::InvalidArgument,
        "TOTP_REPLAYED",
    );
    assert_eq!(violated_fields(&status), ["totp_code"]);
}

#[tokio::test]
async fn recovery_codes_sign_in_once_each_and_can_be_replaced() {
    let app = spawn_app().await;
    let user = enrolled(&app, "rec").await;
    let first = &user.recovery[0];
    let c = challenge(&app, &user.email).await;
    // Typed without the dash, in capitals: still the code.
    let typed = first.replace('-', " ").to_uppercase();
    let signed = complete(&app, &c.challenge_id, recovery_code(&typed))
        .await
        .unwrap();
    let token = signed.tokens.unwrap().access_token;
    let sessions = app.sessions(&token).await.unwrap();
    let this = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(this.auth_methods, [PASSWORD_METHOD, RECOVERY]);
    assert_eq!(app.me(&token).await.unwrap().recovery_codes_remaining, 9);

    let c = challenge(&app, &user.email).await;
    assert_error(
        complete(&app, &c.challenge_id, recovery_code(first)).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    // Another user's code is no code here.
    let other = enrolled(&app, "rec2").await;
    assert_error(
        complete(&app, &c.challenge_id, recovery_code(&other.recovery[0])).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );

    // New codes need the factor itself (the password is no proof here); the old ones stop
    // working.
    let regenerate = |proof| {
        let mut client = app.client();
        let request = authed(pb::RegenerateRecoveryCodesRequest { proof }, &token);
        async move { client.regenerate_recovery_codes(request).await }
    };
    assert_error(
        regenerate(None).await,
        Code::InvalidArgument,
        "MFA_REQUIRED",
    );
    use pb::regenerate_recovery_codes_request::Proof;
    let fresh = regenerate(Some(Proof::TotpCode(totp::code_next(&user.secret))))
        .await
        .unwrap()
        .into_inner()
        .recovery_codes;
    assert_eq!(fresh.len(), 10);
    assert!(!fresh.contains(&user.recovery[1]));
    wait_for_notice(&app, &user.email, "New recovery codes").await;
    assert_error(
        complete(&app, &c.challenge_id, recovery_code(&user.recovery[1])).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    complete(&app, &c.challenge_id, recovery_code(&fresh[0]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_challenge_takes_five_wrong_codes_then_refuses_even_the_right_one() {
    let app = spawn_app().await;
    let user = enrolled(&app, "five").await;
    let c = challenge(&app, &user.email).await;
    let wrong = wrong_code(&user.secret);
    for left in (0..5).rev() {
        let status = assert_error(
            complete(&app, &c.challenge_id, totp_code(wrong.clone())).await,
            Code::InvalidArgument,
            "MFA_CODE_INVALID",
        );
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(
            info.metadata.get("attempts_remaining").map(String::as_str),
            Some(left.to_string().as_str())
        );
    }
    let status = assert_error(
        complete(&app, &c.challenge_id, next_app_code(&user.secret)).await,
        Code::ResourceExhausted,
        "MFA_RATE_LIMITED",
    );
    assert!(retry_secs(&status).is_some_and(|s| s > 0));
    // A new sign-in is a new challenge (the day's budget still has room).
    let c = challenge(&app, &user.email).await;
    complete(&app, &c.challenge_id, next_app_code(&user.secret))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_daily_budget_spans_challenges_and_a_password_reset_gives_the_owner_it_back() {
    let app = spawn_app_with(&[("MFA_MAX_GUESSES_PER_DAY", "6")]).await;
    let user = enrolled(&app, "daily").await;
    let wrong = wrong_code(&user.secret);
    // Someone who knows the password spends the day's budget over several challenges.
    for _ in 0..2 {
        let c = challenge(&app, &user.email).await;
        for _ in 0..3 {
            assert_error(
                complete(&app, &c.challenge_id, totp_code(wrong.clone())).await,
                Code::InvalidArgument,
                "MFA_CODE_INVALID",
            );
        }
    }
    let c = challenge(&app, &user.email).await;
    assert_error(
        complete(&app, &c.challenge_id, next_app_code(&user.secret)).await,
        Code::ResourceExhausted,
        "MFA_RATE_LIMITED",
    );
    // The owner resets the password by emailed code: the other person's password is gone,
    // and so is the budget they spent.
    let n = app.mails_to(&user.email).len();
    let id = app.request_reset(&user.email).await.unwrap();
    let code = app.wait_for_code(&user.email, n + 1).await;
    let new_password = "the owner's new passphrase";
    app.reset(&user.email, &id, &code, new_password)
        .await
        .unwrap();
    let reply = app.login(&user.email, new_password).await.unwrap();
    let c = reply.mfa_challenge.expect("still a second factor");
    complete(&app, &c.challenge_id, next_app_code(&user.secret))
        .await
        .unwrap();

    // A thief of the mailbox who resets again and again gets no more guesses: the budget comes
    // back once a day.
    for _ in 0..2 {
        let reply = app.login(&user.email, new_password).await.unwrap();
        let c = reply.mfa_challenge.expect("a challenge");
        for _ in 0..3 {
            assert_error(
                complete(&app, &c.challenge_id, totp_code(wrong.clone())).await,
                Code::InvalidArgument,
                "MFA_CODE_INVALID",
            );
        }
    }
    let n = app.mails_to(&user.email).len();
    let id = app.request_reset(&user.email).await.unwrap();
    let code = app.wait_for_code(&user.email, n + 1).await;
    app.reset(&user.email, &id, &code, PASSWORD).await.unwrap();
    let c = challenge(&app, &user.email).await;
    assert_error(
        complete(&app, &c.challenge_id, recovery_code(&user.recovery[0])).await,
        Code::ResourceExhausted,
        "MFA_RATE_LIMITED",
    );
}

#[tokio::test]
async fn a_challenge_is_its_holders_and_a_password_change_voids_it() {
    let app = spawn_app().await;
    let user = enrolled(&app, "bound").await;
    // An id nobody was given, and one that is not an id at all.
    let forged = "AAAAAAAAAAAAAAAAAAAAAA";
    assert_error(
        complete(&app, forged, next_app_code(&user.secret)).await,
        Code::NotFound,
        "MFA_CHALLENGE_NOT_FOUND",
    );
    let status = assert_error(
        complete(&app, "../../etc", totp_code("123456".into())).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["challenge_id"]);
    let status = assert_error(
        app.client()
            .complete_mfa_challenge(pb::CompleteMfaChallengeRequest {
                challenge_id: forged.into(),
                factor: None,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(violated_fields(&status), ["totp_code"]);

    // A challenge from before a password change does not complete after it.
    let c = challenge(&app, &user.email).await;
    app.client()
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "another fine passphrase".into(),
            },
            &user.tokens.access_token,
        ))
        .await
        .unwrap();
    assert_error(
        complete(&app, &c.challenge_id, next_app_code(&user.secret)).await,
        Code::NotFound,
        "MFA_CHALLENGE_NOT_FOUND",
    );
}

#[tokio::test]
async fn right_codes_racing_for_one_challenge_start_one_session() {
    let app = spawn_app().await;
    let user = enrolled(&app, "race").await;
    let c = challenge(&app, &user.email).await;
    let code = totp::code_next(&user.secret);
    let before = app.sessions(&user.tokens.access_token).await.unwrap().len();
    let results = futures::future::join_all(
        (0..8).map(|_| complete(&app, &c.challenge_id, totp_code(code.clone()))),
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            [
                "TOTP_REPLAYED",
                "MFA_CHALLENGE_NOT_FOUND",
                "MFA_RATE_LIMITED"
            ]
            .contains(&reason(r).as_str()),
            "{r:?}"
        );
    }
    let after = app.sessions(&user.tokens.access_token).await.unwrap().len();
    assert_eq!(after, before + 1);
}

#[tokio::test]
async fn turning_totp_off_needs_a_proof_and_ends_the_other_sessions() {
    let app = spawn_app().await;
    let user = enrolled(&app, "off").await;
    let token = &user.tokens.access_token;
    let c = challenge(&app, &user.email).await;
    // The exact code, so that the replay below is of its step even across a step boundary.
    let signed_in_with = totp::code_next(&user.secret);
    let other = complete(&app, &c.challenge_id, totp_code(signed_in_with.clone()))
        .await
        .unwrap()
        .tokens
        .unwrap();
    use pb::disable_totp_request::Proof;
    assert_error(
        disable(&app, token, None).await,
        Code::InvalidArgument,
        "MFA_REQUIRED",
    );
    assert_error(
        disable(&app, token, Some(Proof::Password("wrong password".into()))).await,
        Code::InvalidArgument,
        "WRONG_PASSWORD",
    );
    assert_error(
        disable(&app, token, Some(Proof::TotpCode(wrong_code(&user.secret)))).await,
        Code::InvalidArgument,
        "MFA_CODE_INVALID",
    );
    // The code that signed the other session in is spent.
    let ended = disable(&app, token, Some(Proof::TotpCode(signed_in_with))).await;
    // The same step as the sign-in above: a replay, refused.
    assert_error(ended, Code::InvalidArgument, "TOTP_REPLAYED");
    let ended = disable(
        &app,
        token,
        Some(Proof::RecoveryCode(user.recovery[3].clone())),
    )
    .await
    .unwrap();
    assert_eq!(ended, 1);
    assert_error(
        app.validate(&other.access_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    app.validate(token).await.unwrap();
    let me = app.me(token).await.unwrap();
    assert!(me.second_factors.is_empty() && me.recovery_codes_remaining == 0);
    wait_for_notice(&app, &user.email, "Two-factor sign-in is off").await;
    assert_error(
        disable(&app, token, Some(Proof::Password(PASSWORD.into()))).await,
        Code::FailedPrecondition,
        "TOTP_NOT_ENABLED",
    );
    // The password alone signs in again.
    assert!(
        app.login(&user.email, PASSWORD)
            .await
            .unwrap()
            .tokens
            .is_some()
    );
}
