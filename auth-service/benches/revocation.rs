//! Revocation propagation: from a Logout returning to `AccessTokenVerifier` (in this process)
//! refusing that session's token, with the service in processes of its own.
//!
//!     cargo bench -p auth-service --bench revocation
//!
//! Two rows: the embedded default (one instance: the logout and the watch on it), and Redis
//! with two instances sharing a redis-server this bench starts (the logout goes to A, the
//! verifier follows B). BENCH_SESSIONS (default 1000) sessions are signed in first and
//! logged out one at a time.

use std::{
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use baatcheet_auth_api::{
    AccessTokenVerifier,
    v1::{self as pb, auth_service_client::AuthServiceClient},
    verifier::VerifyError,
};
use baatcheet_test_support::{mail::wait_for_code, process::free_port, redis_server::RedisServer};
use tonic::transport::Channel;

const PASSWORD: &str = "correct horse battery";

/// An auth-service process, killed on drop.
struct Instance {
    child: Child,
    channel: Channel,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The child is killed and waited for when its `Instance` drops.
#[allow(clippy::zombie_processes)]
async fn start(data_dir: &Path, env: &[(&str, &str)]) -> Instance {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "error")
        .env("MAX_SESSIONS_PER_USER", "10000")
        .env("CODE_REQUESTS_PER_IP_PER_HOUR", "1000000")
        .envs(env.iter().copied())
        .spawn()
        .expect("auth-service starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await {
            return Instance { child, channel };
        }
        assert!(Instant::now() < deadline, "auth-service did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs up one user and signs in `n` sessions: their (access, refresh) tokens.
async fn sessions(app: &Instance, mail_dir: &Path, n: usize) -> Vec<(String, String)> {
    let mut client = AuthServiceClient::new(app.channel.clone());
    let email = "revocation@example.com";
    let id = client
        .register(pb::RegisterRequest {
            username: "revocation".into(),
            email: email.into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("register")
        .into_inner()
        .registration_id;
    let code = wait_for_code(mail_dir, email, 1, Duration::from_secs(30)).await;
    client
        .verify_registration(pb::VerifyRegistrationRequest {
            email: email.into(),
            code,
            registration_id: id,
        })
        .await
        .expect("verify");
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let batch = (all.len()..n.min(all.len() + 16)).map(|_| {
            let mut c = client.clone();
            async move {
                let t = c
                    .login(pb::LoginRequest {
                        identifier: email.into(),
                        password: PASSWORD.into(),
                    })
                    .await
                    .expect("login")
                    .into_inner()
                    .tokens
                    .unwrap();
                (t.access_token, t.refresh_token)
            }
        });
        all.extend(futures::future::join_all(batch).await);
    }
    all
}

/// Logs each session out on `revoking` and times until the verifier following `followed`
/// refuses its token.
async fn measure(
    name: &str,
    revoking: &Instance,
    followed: &Instance,
    token: &str,
    tokens: Vec<(String, String)>,
) {
    let verifier = AccessTokenVerifier::builder(followed.channel.clone())
        .issuer("baatcheet-auth")
        .audience("baatcheet")
        .service_token(token)
        .build()
        .expect("verifier");
    let follower = verifier.spawn_follower();
    while !verifier.is_following() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    verifier.verify(&tokens[0].0).await.expect("keys fetched");
    let mut events = verifier.subscribe();
    let mut client = AuthServiceClient::new(revoking.channel.clone());
    let mut latencies = Vec::with_capacity(tokens.len());
    for (access, refresh) in &tokens {
        assert!(verifier.verify_cached(access).is_ok());
        client
            .logout(pb::LogoutRequest {
                refresh_token: refresh.clone(),
            })
            .await
            .expect("logout");
        let returned = Instant::now();
        loop {
            if matches!(verifier.verify_cached(access), Err(VerifyError::Revoked)) {
                break;
            }
            let wait = tokio::time::timeout(Duration::from_secs(10), events.recv()).await;
            assert!(wait.is_ok(), "no revocation within 10 s");
        }
        latencies.push(returned.elapsed());
    }
    follower.abort();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "| {:<34} | {:>8} | {:>8.2} | {:>8.2} | {:>8.2} |",
        name,
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (token, line) = auth_service::crypto::mint_service_token("bench").unwrap();
    println!(
        "\nRevocation propagation: Logout returned → the verifier refuses the token ({n} sessions, one at a time)\n"
    );
    println!(
        "| {:<34} | {:>8} | {:>8} | {:>8} | {:>8} |",
        "deployment", "sessions", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "|{:-<36}|{:->10}|{:->10}|{:->10}|{:->10}|",
        "", "", "", "", ""
    );

    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &[("SERVICE_TOKENS", &line)]).await;
    let tokens = sessions(&app, &dir.path().join("mail"), n).await;
    measure("SQLite, one instance", &app, &app, &token, tokens).await;
    drop(app);

    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.sqlite3");
    let env = [
        ("SERVICE_TOKENS", line.as_str()),
        ("REDIS_URL", &redis.url()),
        ("SQLITE_PATH", users.to_str().unwrap()),
    ];
    let a = start(dir.path(), &env).await;
    // B starts once A has written the shared key and secret into the data folder.
    let b = start(dir.path(), &env).await;
    let tokens = sessions(&a, &dir.path().join("mail"), n).await;
    measure("Redis, logout on A, verifier on B", &a, &b, &token, tokens).await;
}
