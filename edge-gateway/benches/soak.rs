//! Soak: two auth services and two gateways, each a process of its own (the release binaries),
//! on one Redis Cluster (three masters, three replicas), one SecantusDB (MongoDB wire protocol)
//! and one aiosmtpd relay, under SOAK_SECONDS (default 60) of mixed traffic from SOAK_USERS
//! (default 16) simulated people. Run it with `scripts/soak`, which builds the binaries first.
//!
//! Each simulated person, again and again until the time is up, over both gateways in turn:
//! signs up (the code read from the mail the relay received), checks `/me`, refreshes with two
//! tabs racing (the same refresh cookie sent to both gateways at once), signs in on a second
//! device, ends that device's session from the first, checks that the ended session is refused
//! at once (refresh and `/me`), and signs out and checks that too.
//!
//! A SERVER_BUSY answer (the hashing queue is full) is counted, and the same request is sent
//! again after its Retry-After, as a client should. It counts every request and every answer
//! that breaks the rules: a false 401 (a live session
//! refused), a 5xx, a dead session accepted, any other unexpected answer, and lost mails (a
//! sign-up whose code did not arrive within 30 s). It prints the resident memory (RSS) of the
//! four processes at start, after a warm-up (SOAK_WARMUP, default 10 s), and at the end; the
//! growth is measured from the warm-up, once the caches and pools have filled. It exits
//! non-zero when a rule was broken.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use baatcheet_test_support::{
    mail::{extract_code, parse_mail},
    mongo_server::{SecantusServer, Storage},
    process::free_port,
    redis_server::RedisCluster,
    smtp_server::SmtpServer,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process, killed when dropped.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, bin: &Path, env: &[(&str, String)], dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The codes the relay received, by address: a task reads each new message once.
#[derive(Clone, Default)]
struct Mailbox(Arc<Mutex<HashMap<String, Vec<String>>>>);

impl Mailbox {
    fn watch(&self, maildir: PathBuf) {
        let codes = self.0.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            loop {
                for sub in ["new", "cur"] {
                    let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
                        continue;
                    };
                    for path in entries.flatten().map(|e| e.path()) {
                        let name = path.file_name().map(|n| n.to_owned());
                        if name.as_ref().is_none_or(|n| seen.contains(n)) {
                            continue;
                        }
                        let Some(mail) = std::fs::read(&path).ok().and_then(|b| parse_mail(&b))
                        else {
                            continue; // still being written: the next look reads it
                        };
                        seen.extend(name);
                        if let Some(code) = extract_code(&mail.text) {
                            let mut codes = codes.lock().unwrap();
                            codes
                                .entry(mail.to.to_ascii_lowercase())
                                .or_default()
                                .push(code);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    async fn code_for(&self, email: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(code) = self.0.lock().unwrap().get(email).and_then(|c| c.last()) {
                return Some(code.clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    /// SERVER_BUSY answers, each followed by the same request after its Retry-After.
    busy: AtomicU64,
    sign_ups: AtomicU64,
    /// Refreshes by two racing tabs that both kept the session.
    races: AtomicU64,
    /// Second devices ended from the first and refused at once.
    revocations: AtomicU64,
    /// Lives from sign-up to a checked sign-out.
    lives: AtomicU64,
    false_401: AtomicU64,
    server_errors: AtomicU64,
    dead_accepted: AtomicU64,
    unexpected: AtomicU64,
    lost_mails: AtomicU64,
    /// The first few broken rules, for the report.
    examples: Mutex<Vec<String>>,
}

impl Counts {
    fn note(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 10 {
            examples.push(what);
        }
    }
}

/// What an answer must be.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// 2xx: the session is live.
    Live,
    /// 401: the session was ended.
    Ended,
}

struct Answer {
    status: StatusCode,
    body: Value,
    cookies: HashMap<String, String>,
}

#[derive(Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

struct Person {
    id: usize,
    http: reqwest::Client,
    gateways: Arc<Vec<String>>,
    counts: Arc<Counts>,
    mail: Mailbox,
}

impl Person {
    fn gateway(&self, turn: usize) -> &str {
        &self.gateways[(self.id + turn) % self.gateways.len()]
    }

    /// GET /api/auth/me with `access`.
    async fn me(&self, turn: usize, access: &str, expect: Expect) -> Option<Answer> {
        let cookie = format!("accessToken={access}");
        self.call(
            turn,
            Method::GET,
            "/api/auth/me",
            None,
            Some(cookie),
            expect,
        )
        .await
    }

    /// POST /api/auth/refresh with `refresh`.
    async fn refresh(&self, turn: usize, refresh: &str, expect: Expect) -> Option<Answer> {
        let cookie = format!("refreshToken={refresh}");
        self.call(
            turn,
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(cookie),
            expect,
        )
        .await
    }

    async fn call(
        &self,
        turn: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
        cookie: Option<String>,
        expect: Expect,
    ) -> Option<Answer> {
        let url = format!("{}{path}", self.gateway(turn));
        let what = format!("{method} {url}");
        // SERVER_BUSY (a full hashing queue, or MAX_IN_FLIGHT) is an answer the rules allow:
        // the person waits the Retry-After it names and sends the same request again.
        let mut tries = 0;
        let response = loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Some(cookie) = &cookie {
                request = request.header(header::COOKIE, cookie);
            }
            self.counts.requests.fetch_add(1, Ordering::Relaxed);
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.counts
                        .note(&self.counts.unexpected, format!("{what}: {e}"));
                    return None;
                }
            };
            let busy = matches!(
                response.status(),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) && tries < 30;
            if !busy {
                break response;
            }
            let wait = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(1);
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if body["error"]["code"] != "SERVER_BUSY" {
                let c = &self.counts;
                c.note(&c.unexpected, format!("{what}: {body}"));
                return None;
            }
            self.counts.busy.fetch_add(1, Ordering::Relaxed);
            tries += 1;
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        let status = response.status();
        let cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                let pair = v.split(';').next()?;
                let (name, value) = pair.split_once('=')?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let c = &self.counts;
        match (expect, status) {
            (_, s) if s.is_server_error() => {
                c.note(&c.server_errors, format!("{what}: {s} {body}"))
            }
            (Expect::Live, s) if s.is_success() => {}
            (Expect::Live, StatusCode::UNAUTHORIZED) => c.note(
                &c.false_401,
                format!("{what}: a live session refused: {body}"),
            ),
            (Expect::Ended, StatusCode::UNAUTHORIZED) => {}
            (Expect::Ended, s) if s.is_success() => c.note(
                &c.dead_accepted,
                format!("{what}: an ended session accepted"),
            ),
            (_, s) => c.note(&c.unexpected, format!("{what}: {s} {body}")),
        }
        Some(Answer {
            status,
            body,
            cookies,
        })
    }

    /// The new cookies of a successful answer (a refused one clears them: empty values).
    fn tokens(answer: &Answer) -> Option<Tokens> {
        let get = |name: &str| {
            answer
                .cookies
                .get(name)
                .filter(|v| !v.is_empty() && answer.status.is_success())
                .cloned()
        };
        Some(Tokens {
            access: get("accessToken")?,
            refresh: get("refreshToken")?,
        })
    }

    /// A step a life could not take (an answer without what it needs): counted, so that a
    /// soak that skipped its checks cannot pass.
    fn stuck(&self, what: &str) -> Option<()> {
        let c = &self.counts;
        c.note(&c.unexpected, format!("person {}: {what}", self.id));
        None
    }

    /// One life: sign-up, use, a second device ended from the first, sign-out.
    async fn live(&self, n: usize, deadline: Instant) -> Option<()> {
        let email = format!("soak{}_{n}@example.com", self.id);
        let username = format!("soak_{}_{n}", self.id);
        let registered = self
            .call(
                n,
                Method::POST,
                "/api/auth/register",
                Some(json!({"username": username, "email": email, "password": PASSWORD})),
                None,
                Expect::Live,
            )
            .await
            .filter(|a| a.status.is_success())?;
        let pending = registered
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let Some(code) = self.mail.code_for(&email, Duration::from_secs(30)).await else {
            let c = &self.counts;
            c.note(&c.lost_mails, format!("no code for {email} within 30 s"));
            return None;
        };
        let verified = self
            .call(
                n + 1,
                Method::POST,
                "/api/auth/verify-otp",
                Some(json!({"email": email, "otp": code})),
                Some(pending),
                Expect::Live,
            )
            .await
            .filter(|a| a.status.is_success())?;
        self.counts.sign_ups.fetch_add(1, Ordering::Relaxed);
        let Some(mut first) = Self::tokens(&verified) else {
            return self.stuck("verify-otp set no token cookies");
        };

        for turn in 0..4 {
            if Instant::now() > deadline {
                break;
            }
            self.me(turn, &first.access, Expect::Live).await?;
            // Two tabs refresh with the same cookie at once, one through each gateway.
            let (a, b) = tokio::join!(
                self.refresh(turn, &first.refresh, Expect::Live),
                self.refresh(turn + 1, &first.refresh, Expect::Live),
            );
            let (a, b) = (a?, b?);
            // The tab that came second gets the same successor, within the grace window.
            match (Self::tokens(&a), Self::tokens(&b)) {
                (Some(ta), Some(tb)) if ta.refresh == tb.refresh => first = ta,
                (Some(_), Some(_)) => return self.stuck("the racing tabs got two refresh tokens"),
                _ => return None, // a refusal, counted by `call`
            }
            self.counts.races.fetch_add(1, Ordering::Relaxed);
            self.me(turn + 1, &first.access, Expect::Live).await?;
        }

        // A second device, ended from the first: refused at once, through either gateway.
        let second = self
            .call(
                n,
                Method::POST,
                "/api/auth/login",
                Some(json!({"identifier": email, "password": PASSWORD})),
                None,
                Expect::Live,
            )
            .await?;
        let Some(second) = Self::tokens(&second) else {
            return None; // a refusal, counted by `call`
        };
        let cookie = format!("accessToken={}", first.access);
        let sessions = self
            .call(
                n + 1,
                Method::GET,
                "/api/auth/sessions",
                None,
                Some(cookie.clone()),
                Expect::Live,
            )
            .await?;
        let other = sessions.body["data"]["sessions"]
            .as_array()
            .and_then(|list| list.iter().find(|s| s["current"] == false))
            .and_then(|s| s["id"].as_str())
            .map(str::to_owned);
        let Some(other) = other else {
            return self.stuck("the second device's session is not listed");
        };
        self.call(
            n,
            Method::DELETE,
            &format!("/api/auth/sessions/{other}"),
            None,
            Some(cookie.clone()),
            Expect::Live,
        )
        .await?;
        self.me(n + 1, &second.access, Expect::Ended).await?;
        self.refresh(n, &second.refresh, Expect::Ended).await?;
        self.counts.revocations.fetch_add(1, Ordering::Relaxed);

        // Sign-out, then the access token is refused at once.
        self.call(
            n + 1,
            Method::POST,
            "/api/auth/logout",
            None,
            Some(cookie),
            Expect::Live,
        )
        .await?;
        self.me(n, &first.access, Expect::Ended).await?;
        self.counts.lives.fetch_add(1, Ordering::Relaxed);
        Some(())
    }
}

fn bin(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    std::env::var(&var).map(PathBuf::from).unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        Path::new(&target).join("release").join(name)
    })
}

async fn wait_ready(http: &reqwest::Client, base: &str, procs: &mut [Proc]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        for p in procs.iter_mut() {
            if !p.alive() {
                panic!(
                    "{} exited:\n{}",
                    p.name,
                    std::fs::read_to_string(&p.log).unwrap_or_default()
                );
            }
        }
        assert!(Instant::now() < deadline, "{base} not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = env_or("SOAK_SECONDS", 60);
    let warmup: u64 = env_or("SOAK_WARMUP", 10).min(seconds);
    let people: usize = env_or("SOAK_USERS", 16);
    let (service_bin, gateway_bin) = (bin("auth-service"), bin("edge-gateway"));
    for b in [&service_bin, &gateway_bin] {
        assert!(b.exists(), "{} is missing: run scripts/soak", b.display());
    }

    eprintln!("starting a Redis Cluster, SecantusDB and aiosmtpd ...");
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("cluster");
    let mongo = SecantusServer::start(Storage::Memory).await;
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let auth_secret = STANDARD.encode(auth_service::crypto::ServerSecret::generate());
    let signing_key = auth_service::crypto::SigningKey::generate_pem().expect("a key");
    let (service_token, service_line) =
        auth_service::crypto::mint_service_token("gateway").expect("a service token");

    let mut procs = Vec::new();
    let mut gateways = Vec::new();
    for i in 0..2 {
        let grpc = free_port();
        let data = dir.path().join(format!("service-{i}"));
        std::fs::create_dir_all(&data).unwrap();
        procs.push(Proc::spawn(
            &format!("auth-service-{i}"),
            &service_bin,
            &[
                ("GRPC_ADDR", format!("127.0.0.1:{grpc}")),
                ("DATA_DIR", data.display().to_string()),
                ("MONGODB_URI", mongo.uri()),
                ("DB_NAME", "soak".into()),
                ("REDIS_URL", cluster.url()),
                ("SMTP_HOST", "127.0.0.1".into()),
                ("SMTP_PORT", smtp.port().to_string()),
                ("SMTP_TLS", "none".into()),
                ("AUTH_SECRET", auth_secret.clone()),
                ("JWT_PRIVATE_KEY", signing_key.clone()),
                ("SERVICE_TOKENS", service_line.clone()),
                // Every simulated person is 127.0.0.1.
                ("CODE_REQUESTS_PER_IP_PER_HOUR", "1000000".into()),
                ("CODE_GUESSES_PER_IP_PER_HOUR", "1000000".into()),
            ],
            dir.path(),
        ));
        let port = free_port();
        procs.push(Proc::spawn(
            &format!("edge-gateway-{i}"),
            &gateway_bin,
            &[
                ("PORT", port.to_string()),
                ("HTTP_HOST", "127.0.0.1".into()),
                ("AUTH_SERVICE_URL", format!("http://127.0.0.1:{grpc}")),
                ("AUTH_SERVICE_TOKEN", service_token.clone()),
                ("RATE_LIMIT_PER_SECOND", "1000000".into()),
                ("RATE_LIMIT_BURST", "1000000".into()),
            ],
            dir.path(),
        ));
        gateways.push(format!("http://127.0.0.1:{port}"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    for g in &gateways {
        wait_ready(&http, g, &mut procs).await;
    }
    let mail = Mailbox::default();
    mail.watch(smtp.maildir());

    let rss_start: Vec<f64> = procs.iter().map(Proc::rss_mib).collect();
    let counts = Arc::new(Counts::default());
    let gateways = Arc::new(gateways);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    eprintln!(
        "{people} people for {seconds} s over {} gateways ...",
        gateways.len()
    );
    let tasks: Vec<_> = (0..people)
        .map(|id| {
            let person = Person {
                id,
                http: http.clone(),
                gateways: gateways.clone(),
                counts: counts.clone(),
                mail: mail.clone(),
            };
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < deadline {
                    let _ = person.live(n, deadline).await;
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let rss_warm: Vec<f64> = procs.iter().map(Proc::rss_mib).collect();
    for t in tasks {
        t.await.expect("a person");
    }
    let elapsed = start.elapsed();
    let rss_end: Vec<f64> = procs.iter().map(Proc::rss_mib).collect();
    let mut exited = Vec::new();
    for p in procs.iter_mut() {
        if !p.alive() {
            exited.push(p.name.clone());
        }
    }

    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "\nsoak: 2 auth services + 2 gateways on a Redis Cluster (3 masters + 3 replicas), \
         SecantusDB and aiosmtpd; {people} people, {:.0} s, {} cores\n",
        elapsed.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| {:<36} | {:>9} |", "count", "value");
    println!("|{:-<38}|{:->11}|", "", "");
    let rows = [
        ("requests", get(&counts.requests)),
        ("sign-ups completed", get(&counts.sign_ups)),
        ("racing refreshes (both tabs kept)", get(&counts.races)),
        ("ended sessions checked refused", get(&counts.revocations)),
        ("lives to a checked sign-out", get(&counts.lives)),
        ("SERVER_BUSY, retried after 1 s", get(&counts.busy)),
        (
            "false 401s (a live session refused)",
            get(&counts.false_401),
        ),
        ("5xx", get(&counts.server_errors)),
        ("ended sessions accepted", get(&counts.dead_accepted)),
        ("other unexpected answers", get(&counts.unexpected)),
        ("lost mails", get(&counts.lost_mails)),
    ];
    for (name, value) in rows {
        println!("| {name:<36} | {value:>9} |");
    }
    println!(
        "| {:<36} | {:>9.0} |",
        "requests per second",
        get(&counts.requests) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "\n| {:<16} | {:>9} | {:>15} | {:>7} | {:>21} |",
        "process", "RSS start", "after warm-up", "RSS end", "growth from warm-up"
    );
    println!(
        "|{:-<18}|{:->11}|{:->17}|{:->9}|{:->23}|",
        "", "", "", "", ""
    );
    let mut worst_growth: f64 = 0.0;
    for (i, p) in procs.iter().enumerate() {
        let growth = (rss_end[i] / rss_warm[i] - 1.0) * 100.0;
        worst_growth = worst_growth.max(growth);
        println!(
            "| {:<16} | {:>5.1} MiB | {:>11.1} MiB | {:>7.1} | {:>20.1} % |",
            p.name, rss_start[i], rss_warm[i], rss_end[i], growth
        );
    }
    for e in counts.examples.lock().unwrap().iter() {
        println!("  example: {e}");
    }
    let broken = get(&counts.false_401)
        + get(&counts.server_errors)
        + get(&counts.dead_accepted)
        + get(&counts.unexpected)
        + get(&counts.lost_mails);
    if !exited.is_empty() {
        println!("exited during the soak: {exited:?}");
    }
    drop(procs);
    drop((cluster, mongo, smtp));
    let idle = get(&counts.lives) == 0 || get(&counts.revocations) == 0 || get(&counts.races) == 0;
    if broken > 0 || !exited.is_empty() || worst_growth >= 20.0 || idle {
        println!("\nsoak: FAILED");
        std::process::exit(1);
    }
    println!("\nsoak: passed (no rule broken, RSS growth {worst_growth:.1} % < 20 %)");
}
