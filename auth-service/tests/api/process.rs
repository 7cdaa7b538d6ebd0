//! The real binary as a process: its logs never hold a secret, bad config stops it with the
//! variable named, and SIGTERM stops it cleanly.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use baatcheet_auth_api::v1::{self as pb, auth_service_client::AuthServiceClient};

use baatcheet_test_support::mail::wait_for_code;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn logs_hold_no_password_code_or_token_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_path = dir.path().join("service.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", dir.path())
        .env("CODE_RESEND_COOLDOWN", "0s")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "trace,h2=info,hyper=info,tower=info")
        .current_dir(dir.path())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        match AuthServiceClient::connect(format!("http://127.0.0.1:{port}")).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("service did not start: {e}"),
        }
    };

    let mail = email("logs");
    let password = "a-very-secret-passphrase";
    let registration_id = client
        .register(pb::RegisterRequest {
            username: username("logs"),
            email: mail.clone(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .registration_id;
    let mail_dir = dir.path().join("mail");
    let wait_code = |n: usize| wait_for_code(mail_dir.as_path(), &mail, n, Duration::from_secs(10));
    let code = wait_code(1).await;
    let verified = client
        .verify_registration(pb::VerifyRegistrationRequest {
            email: mail.clone(),
            code: code.clone(),
            registration_id: registration_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let tokens = verified.tokens.unwrap();
    let refreshed = client
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    client
        .login(pb::LoginRequest {
            identifier: mail.clone(),
            password: "wrong-secret-guess".into(),
        })
        .await
        .unwrap_err();
    let reset_id = client
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: mail.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .reset_id;
    let reset_code = wait_code(2).await;
    client
        .reset_password(pb::ResetPasswordRequest {
            email: mail.clone(),
            code: reset_code.clone(),
            new_password: "another-secret-passphrase".into(),
            reset_id: reset_id.clone(),
        })
        .await
        .unwrap();

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("auth-service listening"),
        "the log was captured"
    );
    assert!(logs.contains("user verified and created"));
    assert!(logs.contains("stopped"));
    let refresh_secret = |t: &str| t.split_once('.').unwrap().1.to_owned();
    for (what, secret) in [
        ("password", password.to_owned()),
        ("wrong password", "wrong-secret-guess".to_owned()),
        ("new password", "another-secret-passphrase".to_owned()),
        ("code", code),
        ("reset code", reset_code),
        ("registration id", registration_id),
        ("reset id", reset_id),
        ("access token", tokens.access_token.clone()),
        ("refreshed access token", refreshed.access_token.clone()),
        ("refresh token", refresh_secret(&tokens.refresh_token)),
        (
            "new refresh token",
            refresh_secret(&refreshed.refresh_token),
        ),
    ] {
        assert!(!logs.contains(&secret), "the {what} appears in the logs");
    }
    // Spans name the email by a keyed tag (12 hex digits), never by the address itself.
    assert!(
        !logs.to_lowercase().contains(&mail.to_lowercase()),
        "the email address appears in the logs"
    );
    let local_part = mail.split('@').next().unwrap();
    assert!(
        !logs.contains(local_part),
        "the email's local part appears in the logs"
    );
    let tags: std::collections::BTreeSet<&str> = logs
        .match_indices("\"email\":\"")
        .map(|(i, m)| &logs[i + m.len()..])
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(tags.len(), 1, "one email, one tag: {tags:?}");
    let tag = tags.first().unwrap();
    assert!(
        tag.len() == 12
            && tag
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "email={tag} is not a 12-hex-digit tag"
    );
}

#[test]
fn a_bad_variable_stops_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("ACCESS_TOKEN_EXPIRY", "forever"),
        ("GRPC_ADDR", "nowhere:x"),
        ("AUTH_SECRET", "c2hvcnQ="),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        // Retired: a request is void after CODE_MAX_ATTEMPTS wrong codes instead.
        ("CODE_LOCKOUT", "15m"),
    ] {
        let out = refused_startup(dir.path(), var, value);
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var} named in: {stderr}");
    }
}

/// Runs the binary with `var=value` and waits (bounded) for it to exit. A service that
/// starts instead is killed, and the test fails naming the variable rather than hanging.
fn refused_startup(dir: &std::path::Path, var: &str, value: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("DATA_DIR", dir)
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env(var, value)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the service started with {var}={value} instead of refusing it: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
