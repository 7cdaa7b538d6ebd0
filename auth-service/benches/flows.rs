//! Throughput and latency of the main RPCs over real gRPC on loopback, printed as a table.
//!
//!     cargo bench -p auth-service --bench flows
//!
//! The service runs in this process on an on-disk SQLite file (or on MONGODB_URI / REDIS_URL
//! when those are set in the environment). BENCH_SECONDS (default 5) and BENCH_CLIENTS
//! (default 16) tune the run. Client and server share the machine's cores.
//!
//! "CompleteMfaChallenge (TOTP)" completes one waiting sign-in challenge of each of
//! BENCH_MFA_USERS (default 300) users with TOTP on (a code is accepted once per user and
//! step, so each user completes once); its req/s is over the time those take.
//! "FinishPasskeyLogin" signs each of BENCH_PASSKEY_USERS (default 300) users in once with a
//! passkey of its own (a software authenticator; an assertion's counter must go up, so one
//! authenticator signs in one at a time): StartPasskeyLogin and the assertions are made before
//! the clock starts.
//!
//! The line under the argon2id cost times the password policy's rating (zxcvbn) of the same
//! password, as Register runs it, and gives it as a share of one hash.
//!
//! The rows above run with HASH_MAX_WAIT 10 s (unless it is set), so that the sign-in rows
//! measure throughput, not refusals. The overload table after them runs a second service
//! with the default HASH_MAX_WAIT (or the one set) and logs one user in: from one client
//! (unloaded), from as many clients as hashing threads (the sustainable rate), at three times
//! that rate in an open loop (a new call every 1/(3 × rate) s, whatever the answers; the calls
//! started in its first second, the burst that fills the queue, are counted apart from the
//! steady state after it), and from 200 clients that call again at once when refused. Refused means RESOURCE_EXHAUSTED. It runs
//! twice: with that HASH_MAX_WAIT, and with HASH_MAX_WAIT set to one hash (as measured above).
//!
//! The internal API's rows (BatchGetUsers and GetPresence of 100 users) run against 100
//! signed-up users; "AccessTokenVerifier (local)" verifies the same token as the
//! ValidateAccessToken row, in this process on one task, with the `verifier` library.

// `Application::build` and `run_until_stopped` are the `Service` methods `main` runs too.
use baatcheet_runtime::cli::Service as _;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use auth_service::{
    config::Config,
    crypto::{HashSettings, PasswordHasher},
    domain::Password,
    startup::Application,
};
use baatcheet_auth_api::{
    AccessTokenVerifier, json,
    v1::{
        self as pb, auth_service_client::AuthServiceClient,
        internal_auth_service_client::InternalAuthServiceClient,
    },
};
use baatcheet_test_support::passkey::SoftAuthenticator;
use tonic::transport::Channel;

const PASSWORD: &str = "correct horse battery";

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    name: &'static str,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Row {
    fn print(&self) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        println!(
            "| {:<28} | {:>9.0} | {:>8.2} | {:>8.2} | {:>8.2} | {:>6} | {:>13.0} |",
            self.name,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            l.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            self.errors,
            peak_rss_mib()
        );
    }
}

/// Runs `call` from `clients` concurrent tasks for `seconds`.
async fn measure<F, Fut>(name: &'static str, clients: usize, seconds: u64, call: F) -> Row
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let call = call.clone();
            tokio::spawn(async move {
                let (mut ok, mut errors, mut latencies, mut i) = (0u64, 0u64, Vec::new(), 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if call(c, i).await {
                        ok += 1
                    } else {
                        errors += 1
                    }
                    latencies.push(t.elapsed());
                    i += 1;
                }
                (ok, errors, latencies)
            })
        })
        .collect();
    gather(name, start, tasks).await
}

/// What one client task counted: successes, errors, each call's latency.
type Counted = (u64, u64, Vec<Duration>);

/// The row of `tasks` started at `start`.
async fn gather(
    name: &'static str,
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<Counted>>,
) -> Row {
    let mut row = Row {
        name,
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (ok, errors, lat) = t.await.expect("bench task");
        row.ok += ok;
        row.errors += errors;
        row.latencies.extend(lat);
    }
    row.elapsed = start.elapsed();
    row
}

/// Runs `call` once per item from `clients` concurrent tasks, until the items run out.
async fn measure_each<T, F, Fut>(name: &'static str, clients: usize, items: Vec<T>, call: F) -> Row
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let queue = std::sync::Arc::new(std::sync::Mutex::new(items));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (call, queue) = (call.clone(), queue.clone());
            tokio::spawn(async move {
                let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
                loop {
                    let Some(item) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let t = Instant::now();
                    if call(item).await {
                        ok += 1
                    } else {
                        errors += 1
                    }
                    latencies.push(t.elapsed());
                }
                (ok, errors, latencies)
            })
        })
        .collect();
    gather(name, start, tasks).await
}

/// The TOTP code of `secret` (base32) for the step after the current one: a step the service
/// has not accepted for this user yet.
fn next_totp_code(secret: &str) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret).expect("base32");
    let totp = totp_rs::Builder::new()
        .with_secret(bytes.as_bytes().to_vec())
        .build_noncompliant();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now + 30).to_string()
}

/// Registers `name` (`<name>@example.com`), reads the code from the mail folder and verifies.
async fn sign_up(
    c: &mut AuthServiceClient<Channel>,
    mail_dir: &std::path::Path,
    name: &str,
) -> pb::VerifyRegistrationResponse {
    let email = format!("{name}@example.com");
    let registration_id = c
        .register(pb::RegisterRequest {
            username: name.into(),
            email: email.clone(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect("register")
        .into_inner()
        .registration_id;
    let code =
        baatcheet_test_support::mail::wait_for_code(mail_dir, &email, 1, Duration::from_secs(60))
            .await;
    c.verify_registration(pb::VerifyRegistrationRequest {
        email,
        code,
        registration_id,
    })
    .await
    .expect("verify")
    .into_inner()
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let clients: usize = env_or("BENCH_CLIENTS", 16);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.insert("GRPC_ADDR".into(), "127.0.0.1:0".into());
    vars.insert("DATA_DIR".into(), dir.path().display().to_string());
    vars.insert("CODE_RESEND_COOLDOWN".into(), "0s".into());
    // Every client here is 127.0.0.1, and the Register row signs up thousands of emails.
    vars.insert("CODE_REQUESTS_PER_IP_PER_HOUR".into(), "1000000".into());
    vars.insert("CODE_GUESSES_PER_IP_PER_HOUR".into(), "1000000".into());
    vars.insert("PASSKEY_LOGINS_PER_IP_PER_HOUR".into(), "1000000".into());
    let overload_vars = vars.clone();
    vars.entry("HASH_MAX_WAIT".into()).or_insert("10s".into());
    let (service_token, service_line) =
        auth_service::crypto::mint_service_token("bench").expect("a service token");
    vars.insert("SERVICE_TOKENS".into(), service_line);
    let config = Config::from_lookup(&move |k| vars.get(k).cloned()).expect("config");
    let (memory_kib, iterations) = (config.hashing.memory_kib, config.hashing.iterations);
    let mail_dir = config.mail.dir.clone();
    let app = Application::build(config).await.expect("service");
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    // Raw argon2id cost, one at a time, for reference.
    let hasher = PasswordHasher::new(&HashSettings {
        memory_kib,
        iterations,
        parallelism: 1,
        concurrency: 1,
        queue: 0,
        max_wait: Duration::ZERO,
    })
    .unwrap();
    let pw = Password::parse(PASSWORD).unwrap();
    let t = Instant::now();
    for _ in 0..20 {
        hasher.hash(&pw).await.unwrap();
    }
    let hash_ms = t.elapsed().as_secs_f64() * 1e3 / 20.0;
    // The password policy's rating (zxcvbn) of the same password, as Register runs it.
    let rules = auth_service::domain::PasswordRules { min_score: 3 };
    rules.check(&pw, "bench_user", "bench@example.com").unwrap();
    let t = Instant::now();
    for n in 0..200 {
        rules
            .check(&pw, &format!("b{n}_x"), &format!("b{n}_x@example.com"))
            .unwrap();
    }
    let rating_ms = t.elapsed().as_secs_f64() * 1e3 / 200.0;

    let channel = Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let client = AuthServiceClient::new(channel.clone());

    // One user, signed up through the real flow (code read from the mail). Every row that
    // signs in uses it: only wrong passwords count against the login limits, and beyond
    // MAX_SESSIONS_PER_USER each login ends the least recently used session, as in production.
    let email = "bench@example.com";
    let signed = sign_up(&mut client.clone(), &mail_dir, "bench").await;
    let access = signed.tokens.unwrap().access_token;

    // 100 more users, signed up through the flow, for the directory and presence rows.
    let mut directory_ids = Vec::new();
    for chunk in (0..100).collect::<Vec<_>>().chunks(16) {
        let signups = chunk.iter().map(|n| {
            let (mut c, mail_dir) = (client.clone(), mail_dir.clone());
            async move {
                let signed = sign_up(&mut c, &mail_dir, &format!("dir{n}")).await;
                signed.user.unwrap().id
            }
        });
        directory_ids.extend(futures::future::join_all(signups).await);
    }
    // Users with TOTP on, each with a challenge waiting (a step is accepted once per user, so
    // the CompleteMfaChallenge row completes each once).
    let mfa_users: usize = env_or("BENCH_MFA_USERS", 300);
    let mut challenges = Vec::new();
    for chunk in (0..mfa_users).collect::<Vec<_>>().chunks(16) {
        let enrolled = chunk.iter().map(|n| {
            let (mut c, mail_dir) = (client.clone(), mail_dir.clone());
            async move {
                let email = format!("mfa{n}@example.com");
                let signed = sign_up(&mut c, &mail_dir, &format!("mfa{n}")).await;
                let access = signed.tokens.unwrap().access_token;
                let secret = c
                    .start_totp_enrollment(with_token(pb::StartTotpEnrollmentRequest {}, &access))
                    .await
                    .expect("start")
                    .into_inner()
                    .secret;
                let bytes = totp_rs::Secret::try_from_base32(&secret).unwrap();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let first = totp_rs::Builder::new()
                    .with_secret(bytes.as_bytes().to_vec())
                    .build_noncompliant()
                    .generate(now)
                    .to_string();
                c.confirm_totp_enrollment(with_token(
                    pb::ConfirmTotpEnrollmentRequest {
                        code: first,
                        current_password: PASSWORD.into(),
                    },
                    &access,
                ))
                .await
                .expect("confirm");
                let challenge = c
                    .login(pb::LoginRequest {
                        identifier: email,
                        password: PASSWORD.into(),
                    })
                    .await
                    .expect("login")
                    .into_inner()
                    .mfa_challenge
                    .expect("a challenge")
                    .challenge_id;
                (challenge, secret)
            }
        });
        challenges.extend(futures::future::join_all(enrolled).await);
    }
    // Users with a passkey (and no TOTP), each signing in once with it in the
    // FinishPasskeyLogin row.
    let passkey_users: usize = env_or("BENCH_PASSKEY_USERS", 300);
    let mut passkeys = Vec::new();
    for chunk in (0..passkey_users).collect::<Vec<_>>().chunks(16) {
        let added = chunk.iter().map(|n| {
            let (mut c, mail_dir) = (client.clone(), mail_dir.clone());
            async move {
                let signed = sign_up(&mut c, &mail_dir, &format!("pk{n}")).await;
                let access = signed.tokens.unwrap().access_token;
                let mut passkey = SoftAuthenticator::new("http://localhost:8080");
                let options = c
                    .start_passkey_registration(with_token(
                        pb::StartPasskeyRegistrationRequest {},
                        &access,
                    ))
                    .await
                    .expect("start a passkey")
                    .into_inner()
                    .creation_options
                    .unwrap();
                let credential = passkey.register(json::from_struct(options));
                c.finish_passkey_registration(with_token(
                    pb::FinishPasskeyRegistrationRequest {
                        credential: json::to_struct(credential),
                        name: "Bench".into(),
                        current_password: PASSWORD.into(),
                    },
                    &access,
                ))
                .await
                .expect("add a passkey");
                passkey
            }
        });
        passkeys.extend(futures::future::join_all(added).await);
    }

    let internal = InternalAuthServiceClient::new(channel.clone());
    fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }
    let verifier = AccessTokenVerifier::builder(channel.clone())
        .issuer("baatcheet-auth")
        .audience("baatcheet")
        .service_token("unused-here")
        .build()
        .expect("verifier");
    verifier
        .verify(&access)
        .await
        .expect("the verifier accepts the token");

    println!(
        "\nauth-service over gRPC on loopback: {clients} concurrent clients, {seconds} s per row, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "argon2id m={memory_kib} KiB t={iterations} p=1: {hash_ms:.1} ms per hash (one at a time)"
    );
    println!(
        "password rating (zxcvbn, PASSWORD_MIN_SCORE 3): {rating_ms:.3} ms per check = {:.2} % of a hash\n",
        rating_ms / hash_ms * 100.0
    );
    println!(
        "| {:<28} | {:>9} | {:>8} | {:>8} | {:>8} | {:>6} | {:>13} |",
        "rpc", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "peak RSS MiB"
    );
    println!(
        "|{:-<30}|{:->11}|{:->10}|{:->10}|{:->10}|{:->8}|{:->15}|",
        "", "", "", "", "", "", ""
    );

    let c = client.clone();
    measure("GetJwks (baseline)", clients, seconds, move |_, _| {
        let mut c = c.clone();
        async move { c.get_jwks(pb::GetJwksRequest {}).await.is_ok() }
    })
    .await
    .print();

    let (c, token) = (client.clone(), access.clone());
    measure("ValidateAccessToken", clients, seconds, move |_, _| {
        let (mut c, token) = (c.clone(), token.clone());
        async move {
            c.validate_access_token(pb::ValidateAccessTokenRequest {
                access_token: token,
            })
            .await
            .is_ok()
        }
    })
    .await
    .print();

    let verifying = verifier.clone();
    let token = access.clone();
    measure("AccessTokenVerifier (local)", 1, seconds, move |_, _| {
        let ok = verifying.verify_cached(&token).is_ok();
        async move { ok }
    })
    .await
    .print();

    let (c, ids, token) = (
        internal.clone(),
        directory_ids.clone(),
        service_token.clone(),
    );
    measure("BatchGetUsers (100)", clients, seconds, move |_, _| {
        let (mut c, request) = (
            c.clone(),
            with_token(
                pb::BatchGetUsersRequest {
                    user_ids: ids.clone(),
                },
                &token,
            ),
        );
        async move {
            c.batch_get_users(request)
                .await
                .is_ok_and(|r| r.into_inner().users.len() == 100)
        }
    })
    .await
    .print();

    let (c, ids, token) = (
        internal.clone(),
        directory_ids.clone(),
        service_token.clone(),
    );
    measure("GetPresence (100)", clients, seconds, move |_, _| {
        let (mut c, request) = (
            c.clone(),
            with_token(
                pb::GetPresenceRequest {
                    user_ids: ids.clone(),
                },
                &token,
            ),
        );
        async move {
            c.get_presence(request)
                .await
                .is_ok_and(|r| r.into_inner().presences.len() == 100)
        }
    })
    .await
    .print();

    let c = client.clone();
    measure("Login", clients, seconds, move |_, _| {
        let mut c = c.clone();
        async move {
            c.login(pb::LoginRequest {
                identifier: email.into(),
                password: PASSWORD.into(),
            })
            .await
            .is_ok()
        }
    })
    .await
    .print();

    // The user's security log now holds an entry per sign-in above: a page of 50 of them.
    let reader = client
        .clone()
        .login(pb::LoginRequest {
            identifier: email.into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("a login")
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token;
    let c = client.clone();
    measure("ListSecurityEvents (50)", clients, seconds, move |_, _| {
        let (mut c, token) = (c.clone(), reader.clone());
        async move {
            let mut request = tonic::Request::new(pb::ListSecurityEventsRequest {
                page_size: 50,
                page_token: String::new(),
            });
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            c.list_security_events(request)
                .await
                .is_ok_and(|r| r.into_inner().events.len() == 50)
        }
    })
    .await
    .print();

    let c = client.clone();
    measure_each(
        "CompleteMfaChallenge (TOTP)",
        clients,
        challenges,
        move |(challenge_id, secret)| {
            let mut c = c.clone();
            async move {
                c.complete_mfa_challenge(pb::CompleteMfaChallengeRequest {
                    challenge_id,
                    factor: Some(pb::complete_mfa_challenge_request::Factor::TotpCode(
                        next_totp_code(&secret),
                    )),
                })
                .await
                .is_ok()
            }
        },
    )
    .await
    .print();

    // One passwordless sign-in of each user, its assertion made before the clock starts.
    let mut assertions = Vec::new();
    for mut passkey in passkeys {
        let started = client
            .clone()
            .start_passkey_login(pb::StartPasskeyLoginRequest {})
            .await
            .expect("start a passkey sign-in")
            .into_inner();
        let assertion = passkey.assert(json::from_struct(started.request_options.unwrap()));
        assertions.push((started.login_id, json::to_struct(assertion)));
    }
    let c = client.clone();
    measure_each(
        "FinishPasskeyLogin",
        clients,
        assertions,
        move |(login_id, credential)| {
            let mut c = c.clone();
            async move {
                c.finish_passkey_login(pb::FinishPasskeyLoginRequest {
                    login_id,
                    credential,
                })
                .await
                .is_ok()
            }
        },
    )
    .await
    .print();

    // Each client refreshes its own session's chain.
    let mut chains = Vec::new();
    for _ in 0..clients {
        let t = client
            .clone()
            .login(pb::LoginRequest {
                identifier: email.into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap()
            .into_inner();
        chains.push(std::sync::Arc::new(tokio::sync::Mutex::new(
            t.tokens.unwrap().refresh_token,
        )));
    }
    let c = client.clone();
    measure(
        "RefreshSession (rotation)",
        clients,
        seconds,
        move |i, _| {
            let (mut c, chain) = (c.clone(), chains[i].clone());
            async move {
                let mut token = chain.lock().await;
                match c
                    .refresh_session(pb::RefreshSessionRequest {
                        refresh_token: token.clone(),
                    })
                    .await
                {
                    Ok(r) => {
                        *token = r.into_inner().tokens.unwrap().refresh_token;
                        true
                    }
                    Err(_) => false,
                }
            }
        },
    )
    .await
    .print();

    let c = client.clone();
    measure(
        "Register (hash + queue mail)",
        clients,
        seconds,
        move |i, n| {
            let mut c = c.clone();
            async move {
                c.register(pb::RegisterRequest {
                    username: format!("b{i}_{n}"),
                    email: format!("b{i}_{n}@example.com"),
                    password: PASSWORD.into(),
                    ..Default::default()
                })
                .await
                .is_ok()
            }
        },
    )
    .await
    .print();

    overload(overload_vars.clone(), seconds).await;
    // The same with a wait of one hash at most: the tighter bound's latency and refusals.
    let mut one_hash = overload_vars;
    one_hash.insert("HASH_MAX_WAIT".into(), format!("{}ms", hash_ms.ceil()));
    overload(one_hash, seconds).await;

    println!(
        "\npeak RSS of this process (service + clients): {:.1} MiB",
        peak_rss_mib()
    );
}

/// Logins of one load: admitted and refused apart.
struct Overload {
    name: String,
    elapsed: Duration,
    admitted: Vec<Duration>,
    refused: Vec<Duration>,
    other_errors: u64,
}

impl Overload {
    fn new(name: String) -> Self {
        Self {
            name,
            elapsed: Duration::ZERO,
            admitted: Vec::new(),
            refused: Vec::new(),
            other_errors: 0,
        }
    }

    fn count(&mut self, answer: Result<(), tonic::Code>, took: Duration) {
        match answer {
            Ok(()) => self.admitted.push(took),
            Err(tonic::Code::ResourceExhausted) => self.refused.push(took),
            Err(_) => self.other_errors += 1,
        }
    }

    fn rate(&self) -> f64 {
        self.admitted.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn ms(list: &[Duration], p: f64) -> f64 {
        let mut l = list.to_vec();
        l.sort();
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    fn print(&self, sustainable: f64, unloaded_p99: f64) {
        let p99 = Self::ms(&self.admitted, 0.99);
        println!(
            "| {:<34} | {:>10.0} | {:>7.2} | {:>7.1} | {:>7.1} | {:>7.2} | {:>7} | {:>11.3} | {:>11.3} | {:>5} |",
            self.name,
            self.rate(),
            self.rate() / sustainable,
            Self::ms(&self.admitted, 0.50),
            p99,
            p99 / unloaded_p99,
            self.refused.len(),
            Self::ms(&self.refused, 0.50),
            Self::ms(&self.refused, 0.99),
            self.other_errors,
        );
    }
}

async fn login_once(mut c: AuthServiceClient<Channel>, email: String) -> Result<(), tonic::Code> {
    c.login(pb::LoginRequest {
        identifier: email,
        password: PASSWORD.into(),
    })
    .await
    .map(|_| ())
    .map_err(|s| s.code())
}

/// Logins from `clients` tasks in a closed loop for `seconds` (a refused one calls again at
/// once).
async fn closed_loop(
    name: String,
    c: &AuthServiceClient<Channel>,
    email: &str,
    clients: usize,
    seconds: u64,
) -> Overload {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (c, email) = (c.clone(), email.to_owned());
            tokio::spawn(async move {
                let mut row = Overload::new(String::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let answer = login_once(c.clone(), email.clone()).await;
                    row.count(answer, t.elapsed());
                }
                row
            })
        })
        .collect();
    let mut row = Overload::new(name);
    for t in tasks {
        let part = t.await.expect("bench task");
        row.admitted.extend(part.admitted);
        row.refused.extend(part.refused);
        row.other_errors += part.other_errors;
    }
    row.elapsed = start.elapsed();
    row
}

/// Logins started at `rate` per second for one second and then `seconds` more, whatever the
/// answers (an open loop): the calls started in the first second (the burst that fills the
/// queue, and whatever standing queue it leaves), and those started after it (the steady state).
async fn open_loop(
    name: &str,
    c: &AuthServiceClient<Channel>,
    email: &str,
    rate: f64,
    seconds: u64,
) -> (Overload, Overload) {
    let start = Instant::now();
    let first_second = Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    let mut calls = Vec::new();
    while start.elapsed() < first_second + Duration::from_secs(seconds) {
        tick.tick().await;
        let (c, email) = (c.clone(), email.to_owned());
        let started = start.elapsed();
        calls.push(tokio::spawn(async move {
            let t = Instant::now();
            let answer = login_once(c, email).await;
            (started, answer, t.elapsed())
        }));
    }
    let mut first = Overload::new(format!("{name}, 1st second"));
    let mut then = Overload::new(format!("{name}, after it"));
    for call in calls {
        let (started, answer, took) = call.await.expect("bench task");
        let row = if started < first_second {
            &mut first
        } else {
            &mut then
        };
        row.count(answer, took);
    }
    first.elapsed = first_second;
    then.elapsed = Duration::from_secs(seconds);
    (first, then)
}

/// The overload table: a service of its own, with the default HASH_MAX_WAIT unless set.
async fn overload(mut vars: HashMap<String, String>, seconds: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    vars.insert("DATA_DIR".into(), dir.path().display().to_string());
    let config = Config::from_lookup(&move |k| vars.get(k).cloned()).expect("config");
    let (threads, queue, max_wait) = (
        config.hashing.concurrency,
        config.hashing.queue,
        config.hashing.max_wait,
    );
    let mail_dir = config.mail.dir.clone();
    let app = Application::build(config).await.expect("service");
    let url = format!("http://{}", app.local_addr());
    // Stopped at the end, so that the next table's service does not share the process with it.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = AuthServiceClient::new(channel);
    let name = format!("overload{}", std::process::id());
    sign_up(&mut client, &mail_dir, &name).await;
    let email = format!("{name}@example.com");

    let unloaded = closed_loop("1 client (unloaded)".into(), &client, &email, 1, seconds).await;
    let sustained = closed_loop(
        format!("{threads} clients (= hashing threads)"),
        &client,
        &email,
        threads,
        seconds,
    )
    .await;
    let (rate, unloaded_p99) = (sustained.rate(), Overload::ms(&unloaded.admitted, 0.99));
    let (open_start, open) = open_loop(
        &format!("open loop {:.0}/s (3×)", 3.0 * rate),
        &client,
        &email,
        3.0 * rate,
        seconds,
    )
    .await;
    let storm = closed_loop(
        "200 clients, calling again at once".into(),
        &client,
        &email,
        200,
        seconds,
    )
    .await;

    println!(
        "\nLogin under overload: HASH_CONCURRENCY {threads}, HASH_QUEUE {queue}, HASH_MAX_WAIT {} ms; \
         × = admitted rate ÷ the sustainable rate, p99 × = ÷ the unloaded p99",
        max_wait.as_millis()
    );
    println!(
        "| {:<34} | {:>10} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {:>11} | {:>11} | {:>5} |",
        "load",
        "admitted/s",
        "×",
        "p50 ms",
        "p99 ms",
        "p99 ×",
        "refused",
        "refusal p50",
        "refusal p99",
        "other"
    );
    println!(
        "|{:-<36}|{:->12}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|{:->13}|{:->13}|{:->7}|",
        "", "", "", "", "", "", "", "", "", ""
    );
    for row in [&unloaded, &sustained, &open_start, &open, &storm] {
        row.print(rate, unloaded_p99);
    }
    drop(client);
    let _ = stop.send(());
    let _ = server.await;
}
