//! Login by email or username: sessions and presence, unknown accounts answered like wrong
//! passwords, and the limits on wrong passwords (per identifier and network, per network, IPv6
//! by /64, a slowdown across networks that never locks the owner out).

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn login_by_email_or_username_starts_a_session_and_sets_presence() {
    let app = spawn_app().await;
    let (mail, name) = (email("log"), username("Log"));
    let (user, _) = app.signup(&name, &mail).await;
    for identifier in [
        mail.to_uppercase(),
        name.to_lowercase(),
        format!(" {name} "),
    ] {
        let signed_in = app.login(&identifier, PASSWORD).await.unwrap();
        let u = signed_in.user.unwrap();
        assert_eq!(u.id, user.id);
        assert_eq!(u.status, pb::UserStatus::Online as i32);
        let tokens = signed_in.tokens.unwrap();
        assert_eq!(
            app.validate(&tokens.access_token).await.unwrap().sub,
            user.id
        );
    }
    assert_eq!(
        app.sessions(
            &app.login(&mail, PASSWORD)
                .await
                .unwrap()
                .tokens
                .unwrap()
                .access_token
        )
        .await
        .unwrap()
        .len(),
        5
    );
}

#[tokio::test]
async fn unknown_account_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    let mail = email("same");
    app.signup(&username("same"), &mail).await;
    let wrong = assert_error(
        app.login(&mail, "wrong password!").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    let unknown = assert_error(
        app.login(&email("ghost"), PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    let unknown_name = assert_error(
        app.login("ghost_user", PASSWORD).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(wrong.message(), unknown_name.message());
}

/// Login as a browser behind the gateway at `ip` (loopback peers are trusted proxies).
async fn login_from(
    app: &TestApp,
    ip: &str,
    identifier: &str,
    password: &str,
) -> Result<pb::LoginResponse, tonic::Status> {
    let mut request = tonic::Request::new(pb::LoginRequest {
        identifier: identifier.into(),
        password: password.into(),
    });
    request
        .metadata_mut()
        .insert("x-client-ip", ip.parse().unwrap());
    app.client().login(request).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn wrong_passwords_per_account_and_network_are_limited_and_a_success_resets_them() {
    let app = spawn_app_with(&[("LOGIN_MAX_ATTEMPTS", "3"), ("LOGIN_WINDOW", "10m")]).await;
    let mail = email("limit");
    app.signup(&username("limit"), &mail).await;
    app.login(&mail, "wrong password 1").await.unwrap_err();
    app.login(&mail, "wrong password 2").await.unwrap_err();
    app.login(&mail, PASSWORD)
        .await
        .expect("third attempt is within the limit and resets it");
    for _ in 0..3 {
        assert_error(
            app.login(&mail, "wrong password").await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    // Over the limit, even the right password is refused from this network.
    let status = assert_error(
        app.login(&mail, PASSWORD).await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
    let retry = retry_secs(&status).unwrap();
    assert!((500..=600).contains(&retry), "{retry}");
    // The limit is this network's on this account only: the owner elsewhere signs in.
    login_from(&app, "198.51.100.20", &mail, PASSWORD)
        .await
        .expect("another network is not locked out");
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
}

#[tokio::test]
async fn one_network_guessing_many_accounts_is_limited() {
    let app = spawn_app_with(&[
        ("LOGIN_MAX_ATTEMPTS", "100"),
        ("LOGIN_MAX_FAILURES_PER_IP", "3"),
        ("LOGIN_WINDOW", "10m"),
    ])
    .await;
    let accounts: Vec<String> = (0..3).map(|i| email(&format!("spray{i}"))).collect();
    for (i, mail) in accounts.iter().enumerate() {
        app.signup(&username(&format!("spray{i}")), mail).await;
    }
    let attacker = "203.0.113.66";
    for mail in &accounts {
        assert_error(
            login_from(&app, attacker, mail, "a guessed password").await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    // Three wrong passwords from that network, one per account: it is refused everywhere.
    for mail in &accounts {
        assert_error(
            login_from(&app, attacker, mail, PASSWORD).await,
            Code::ResourceExhausted,
            "LOGIN_RATE_LIMITED",
        );
    }
    // Nobody else is.
    for mail in &accounts {
        app.login(mail, PASSWORD).await.unwrap();
    }
}

#[tokio::test]
async fn an_ipv6_slash_64_is_one_network() {
    let app = spawn_app_with(&[("LOGIN_MAX_ATTEMPTS", "2"), ("LOGIN_WINDOW", "10m")]).await;
    let mail = email("six");
    app.signup(&username("six"), &mail).await;
    // One subscriber holds a whole /64 and can rotate addresses inside it.
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"] {
        assert_error(
            login_from(&app, ip, &mail, "wrong password").await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    assert_error(
        login_from(&app, "2001:db8:1:2::3", &mail, PASSWORD).await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
    login_from(&app, "2001:db8:1:3::1", &mail, PASSWORD)
        .await
        .expect("the next /64 is another network");
}

#[tokio::test]
async fn guesses_from_many_networks_slow_an_account_down_but_never_lock_the_owner_out() {
    let app = spawn_app_with(&[
        ("LOGIN_MAX_ATTEMPTS", "2"),
        ("LOGIN_SLOWDOWN_AFTER", "3"),
        ("LOGIN_SLOWDOWN_MAX", "200ms"),
        ("LOGIN_WINDOW", "10m"),
    ])
    .await;
    let mail = email("botnet");
    app.signup(&username("botnet"), &mail).await;
    // Two wrong passwords from each of five networks: each pair is at its limit, the account
    // is past its slowdown threshold.
    for n in 0..5 {
        let ip = format!("192.0.2.{}", 10 + n);
        for _ in 0..2 {
            assert_error(
                login_from(&app, &ip, &mail, "wrong password").await,
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            );
        }
        assert_error(
            login_from(&app, &ip, &mail, PASSWORD).await,
            Code::ResourceExhausted,
            "LOGIN_RATE_LIMITED",
        );
    }
    let signed_in = app
        .login(&mail, PASSWORD)
        .await
        .expect("the owner's own network is never refused");
    assert_eq!(signed_in.user.unwrap().email, mail);
}

#[tokio::test]
async fn login_names_missing_fields() {
    let app = spawn_app().await;
    let status = assert_error(
        app.login("  ", "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["identifier", "password"]);
    let status = app.login("someone", &"p".repeat(129)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["password"]);
}

#[tokio::test]
async fn each_identifier_has_its_own_budget_per_network() {
    let app = spawn_app_with(&[("LOGIN_MAX_ATTEMPTS", "3"), ("LOGIN_WINDOW", "10m")]).await;
    let (mail, name) = (email("alt"), username("alt"));
    app.signup(&name, &mail).await;
    for _ in 0..3 {
        assert_error(
            app.login(&mail, "wrong password").await,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    assert_error(
        app.login(&mail, PASSWORD).await,
        Code::ResourceExhausted,
        "LOGIN_RATE_LIMITED",
    );
    // The username is counted apart: keyed by the account, the two counters would tell
    // anyone which email belongs to a (public) username.
    app.login(&name, PASSWORD)
        .await
        .expect("the username has a budget of its own");
}
