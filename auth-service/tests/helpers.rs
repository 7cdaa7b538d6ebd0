//! Spawns the real service on a random port with a fresh data folder and talks real gRPC to it.
//! Codes are read from the .eml files the development mailer writes, like a person would.

// `Application::build` and `run_until_stopped` are the `Service` methods `main` runs too.
use baatcheet_runtime::cli::Service as _;
use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use auth_service::{config::Config, startup::Application};
use baatcheet_auth_api::v1::{self as pb, auth_service_client::AuthServiceClient};
use baatcheet_test_support::mail::{Mail, Mailbox, wait_for_code};
use tokio::sync::oneshot;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: AuthServiceClient<Channel>,
    pub data_dir: tempfile::TempDir,
    pub mail_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The service with test-friendly defaults (short cooldown, in-memory SQLite).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// The service with some variables overridden.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    spawn_in(data_dir, overrides).await
}

/// The service on an existing data folder (for restart tests).
pub async fn spawn_in(data_dir: tempfile::TempDir, overrides: &[(&str, &str)]) -> TestApp {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("GRPC_ADDR".into(), "127.0.0.1:0".into()),
        ("DATA_DIR".into(), data_dir.path().display().to_string()),
        ("SQLITE_PATH".into(), ":memory:".into()),
        ("CODE_RESEND_COOLDOWN".into(), "0s".into()),
        // Every test client is 127.0.0.1; the per-network limit has tests of its own.
        ("CODE_REQUESTS_PER_IP_PER_HOUR".into(), "100000".into()),
        // The tests share a loaded machine, where a hash can take ten times its usual time:
        // a burst of sign-ups must queue, not be refused. The overload tests set their own.
        ("HASH_MAX_WAIT".into(), "10s".into()),
    ]);
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(&move |k| vars.get(k).cloned()).expect("config");
    let mail_dir = config.mail.dir.clone();
    let app = Application::build(config).await.expect("service builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    let client = AuthServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    TestApp {
        addr,
        client,
        data_dir,
        mail_dir,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the server gracefully and hands back its data folder.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(15), server)
                .await
                .expect("stops in time")
                .expect("no panic");
        }
        std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("temp dir"))
    }

    pub fn client(&self) -> AuthServiceClient<Channel> {
        self.client.clone()
    }

    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<pb::RegisterResponse, Status> {
        self.client()
            .register(pb::RegisterRequest {
                username: username.into(),
                email: email.into(),
                password: password.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// VerifyRegistration of the pending registration `registration_id`.
    pub async fn verify(
        &self,
        email: &str,
        registration_id: &str,
        code: &str,
    ) -> Result<pb::VerifyRegistrationResponse, Status> {
        self.client()
            .verify_registration(pb::VerifyRegistrationRequest {
                email: email.into(),
                code: code.into(),
                registration_id: registration_id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// ResendVerificationCode for the pending registration `registration_id`.
    pub async fn resend(
        &self,
        email: &str,
        registration_id: &str,
    ) -> Result<pb::CodeDelivery, Status> {
        self.client()
            .resend_verification_code(pb::ResendVerificationCodeRequest {
                email: email.into(),
                registration_id: registration_id.into(),
            })
            .await
            .map(|r| r.into_inner().delivery.expect("delivery"))
    }

    /// RequestPasswordReset: the reset id it answers with.
    pub async fn request_reset(&self, email: &str) -> Result<String, Status> {
        self.client()
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: email.into(),
            })
            .await
            .map(|r| r.into_inner().reset_id)
    }

    /// ResetPassword with the code of reset `reset_id`.
    pub async fn reset(
        &self,
        email: &str,
        reset_id: &str,
        code: &str,
        new_password: &str,
    ) -> Result<pb::ResetPasswordResponse, Status> {
        self.client()
            .reset_password(pb::ResetPasswordRequest {
                email: email.into(),
                code: code.into(),
                new_password: new_password.into(),
                reset_id: reset_id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
    ) -> Result<pb::LoginResponse, Status> {
        self.client()
            .login(pb::LoginRequest {
                identifier: identifier.into(),
                password: password.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::TokenPair, Status> {
        self.client()
            .refresh_session(pb::RefreshSessionRequest {
                refresh_token: refresh_token.into(),
            })
            .await
            .map(|r| r.into_inner().tokens.expect("tokens"))
    }

    pub async fn validate(&self, access_token: &str) -> Result<pb::AccessTokenClaims, Status> {
        self.client()
            .validate_access_token(pb::ValidateAccessTokenRequest {
                access_token: access_token.into(),
            })
            .await
            .map(|r| r.into_inner().claims.expect("claims"))
    }

    pub async fn me(&self, access_token: &str) -> Result<pb::User, Status> {
        self.client()
            .get_current_user(authed(pb::GetCurrentUserRequest {}, access_token))
            .await
            .map(|r| r.into_inner().user.expect("user"))
    }

    pub async fn sessions(&self, access_token: &str) -> Result<Vec<pb::Session>, Status> {
        self.client()
            .list_sessions(authed(pb::ListSessionsRequest {}, access_token))
            .await
            .map(|r| r.into_inner().sessions)
    }

    /// The ids of the caller's live sessions, sorted (order-free comparisons).
    pub async fn session_ids(&self, access_token: &str) -> Vec<String> {
        let sessions = self.sessions(access_token).await.expect("ListSessions");
        let mut ids: Vec<String> = sessions.into_iter().map(|s| s.id).collect();
        ids.sort();
        ids
    }

    /// Registers, reads the code from the mail, verifies: a signed-up user and its tokens.
    pub async fn signup(&self, username: &str, email: &str) -> (pb::User, pb::TokenPair) {
        let mail_dir = self.mail_dir.as_path();
        self.signup_via(mail_dir, username, email, Duration::from_secs(10))
            .await
    }

    /// Registers, reads the code from `mailbox` as a person would (waiting up to `within`),
    /// verifies: a signed-up user and its tokens.
    pub async fn signup_via(
        &self,
        mailbox: &(impl Mailbox + ?Sized),
        username: &str,
        email: &str,
        within: Duration,
    ) -> (pb::User, pb::TokenPair) {
        let before = mailbox.mails_to(email).len();
        let id = self
            .register(username, email, PASSWORD)
            .await
            .expect("register")
            .registration_id;
        let code = wait_for_code(mailbox, email, before + 1, within).await;
        let verified = self.verify(email, &id, &code).await.expect("verify");
        (
            verified.user.expect("user"),
            verified.tokens.expect("tokens"),
        )
    }

    /// Every mail sent to `email` so far, oldest first.
    pub fn mails_to(&self, email: &str) -> Vec<Mail> {
        self.mail_dir.mails_to(email)
    }

    /// Waits (bounded) until `email` has at least `nth` mails and returns the code of the nth.
    pub async fn wait_for_code(&self, email: &str, nth: usize) -> String {
        wait_for_code(self.mail_dir.as_path(), email, nth, Duration::from_secs(10)).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A request with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

/// The ErrorInfo reason of a status.
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Asserts code and reason together, printing the status when they differ.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    expected_reason: &str,
) -> Status {
    let status = result.expect_err("expected an error");
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (code, expected_reason),
        "{status:?}"
    );
    status
}

/// Field names of the BadRequest violations of a status.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The RetryInfo delay of a status, in whole seconds.
pub fn retry_secs(status: &Status) -> Option<u64> {
    status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.as_secs())
}

/// A unique email per call, so tests never collide.
pub fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", &uuid_like()[..8])
}

pub fn username(tag: &str) -> String {
    format!("{tag}_{}", &uuid_like()[..8])
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:08x}{:04x}", t ^ (std::process::id() << 8), n)
}
