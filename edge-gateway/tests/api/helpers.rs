//! `spawn_app()` starts an auth service and a gateway on random ports with a fresh data folder
//! and returns a [`TestApp`] that speaks HTTP to the gateway. Cookies are handled explicitly (no
//! cookie store) so tests can assert every attribute. Codes are read from the .eml files the
//! development mailer writes, as a person would.

// `Application::build` and `run_until_stopped` are the `Service` methods `main` runs too.
use baatcheet_runtime::cli::Service as _;
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use baatcheet_test_support::mail::wait_for_code;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The origin the gateways of these tests allow (CORS_ORIGINS).
pub const ALLOWED_ORIGIN: &str = "http://app.test:5173";
pub const PASSWORD: &str = "correct horse battery";
pub const USER_AGENT: &str = "gateway-tests/1.0";

pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub base: String,
    /// `http://<METRICS_ADDR>` when the gateway serves /metrics on a listener of its own.
    pub metrics_base: Option<String>,
    pub grpc_addr: SocketAddr,
    pub mail_dir: PathBuf,
    pub client: reqwest::Client,
    mails_read: Mutex<HashMap<String, usize>>,
    /// The pending-request cookies (`registrationId`, `resetId`, prefixed or not) this
    /// "browser" holds: [`TestApp::post_json`] sends them and keeps what the gateway sets, as a
    /// browser would. Token cookies are handled explicitly through [`Session`].
    pending: Mutex<HashMap<String, String>>,
    stops: Vec<oneshot::Sender<()>>,
    _data: Option<tempfile::TempDir>,
}

/// Environment of both processes; the defaults keep tests fast and out of each other's way.
pub struct Env {
    pub service: Vec<(&'static str, String)>,
    pub gateway: Vec<(&'static str, String)>,
}

impl Default for Env {
    fn default() -> Self {
        Self {
            service: vec![],
            gateway: vec![
                ("CORS_ORIGINS", ALLOWED_ORIGIN.to_owned()),
                ("RATE_LIMIT_PER_SECOND", "10000".to_owned()),
                ("RATE_LIMIT_BURST", "10000".to_owned()),
            ],
        }
    }
}

impl Env {
    pub fn service(mut self, key: &'static str, value: &str) -> Self {
        self.service.push((key, value.to_owned()));
        self
    }

    pub fn gateway(mut self, key: &'static str, value: &str) -> Self {
        self.gateway.retain(|(k, _)| *k != key);
        self.gateway.push((key, value.to_owned()));
        self
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Env::default()).await
}

pub async fn spawn_app_with(env: Env) -> TestApp {
    let data = tempfile::tempdir().expect("tempdir");
    let mail_dir = data.path().join("mail");
    let service = start_service(data.path(), "127.0.0.1:0", env.service).await;
    let mut app = spawn_gateway(&format!("http://{}", service.addr), env.gateway).await;
    app.grpc_addr = service.addr;
    app.mail_dir = mail_dir;
    app.stops.push(service.stop);
    app._data = Some(data);
    app
}

/// An auth service running in this process.
pub struct RunningService {
    pub addr: SocketAddr,
    pub stop: oneshot::Sender<()>,
    /// Ends once the service has stopped and closed its connections.
    pub stopped: tokio::task::JoinHandle<()>,
}

/// Starts an auth service on `grpc_addr` (port 0 picks one) with its data in `data_dir`.
pub async fn start_service(
    data_dir: &std::path::Path,
    grpc_addr: &str,
    env: Vec<(&'static str, String)>,
) -> RunningService {
    let mut service_env: HashMap<String, String> = [
        ("GRPC_ADDR", grpc_addr.to_owned()),
        ("DATA_DIR", data_dir.display().to_string()),
        ("SQLITE_PATH", ":memory:".to_owned()),
        // Every test client is 127.0.0.1; the per-network limit has tests of its own.
        ("CODE_REQUESTS_PER_IP_PER_HOUR", "100000".to_owned()),
        // A loaded test machine must not turn a burst of sign-ups into SERVER_BUSY.
        ("HASH_MAX_WAIT", "10s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    service_env.extend(env.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let config = auth_service::config::Config::from_lookup(&|k| service_env.get(k).cloned())
        .expect("service config");
    let service = auth_service::startup::Application::build(config)
        .await
        .expect("auth service");
    let addr = service.local_addr();
    let (stop, stop_signal) = oneshot::channel::<()>();
    let stopped = tokio::spawn(async move {
        let _ = service
            .run_until_stopped(async {
                let _ = stop_signal.await;
            })
            .await;
    });
    RunningService {
        addr,
        stop,
        stopped,
    }
}

/// A gateway alone, pointed at `auth_service_url` (which may be closed).
pub async fn spawn_gateway(auth_service_url: &str, env: Vec<(&'static str, String)>) -> TestApp {
    let mut gateway_env: HashMap<String, String> = [
        ("PORT", "0".to_owned()),
        ("HTTP_HOST", "127.0.0.1".to_owned()),
        ("AUTH_SERVICE_URL", auth_service_url.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    gateway_env.extend(env.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let config = edge_gateway::config::Config::from_lookup(&|k| gateway_env.get(k).cloned())
        .expect("gateway config");
    let gateway = edge_gateway::startup::Application::build(config)
        .await
        .expect("gateway");
    let base = format!("http://{}", gateway.local_addr());
    let metrics_base = gateway.metrics_addr().map(|addr| format!("http://{addr}"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(gateway.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        base,
        metrics_base,
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        mail_dir: PathBuf::new(),
        client,
        mails_read: Mutex::new(HashMap::new()),
        pending: Mutex::new(HashMap::new()),
        stops: vec![stop],
        _data: None,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// The token cookies of one signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    /// `__Host-` when the gateway set prefixed cookies (Secure, no COOKIE_DOMAIN), else empty.
    pub prefix: &'static str,
}

impl Session {
    /// A `Cookie` header as a browser would send it to /api/auth.
    pub fn cookie_header(&self) -> String {
        let p = self.prefix;
        format!(
            "{p}accessToken={}; {p}refreshToken={}",
            self.access, self.refresh
        )
    }
}

/// One `Set-Cookie` of a response, parsed.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub raw: String,
    pub cookie: cookie::Cookie<'static>,
}

/// The `Set-Cookie` headers of a response by cookie name.
pub fn set_cookies(response: &Response) -> HashMap<String, SetCookie> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| {
            let raw = v.to_str().expect("ascii set-cookie").to_owned();
            let cookie = cookie::Cookie::parse(raw.clone()).expect("valid set-cookie");
            (cookie.name().to_owned(), SetCookie { raw, cookie })
        })
        .collect()
}

/// The session whose cookies a sign-in response set (with or without the `__Host-` prefix).
pub fn session_from(response: &Response) -> Session {
    let cookies = set_cookies(response);
    let prefix = if cookies.contains_key("__Host-accessToken") {
        "__Host-"
    } else {
        ""
    };
    let value = |name: &str| {
        let name = format!("{prefix}{name}");
        cookies
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", response.headers()))
            .cookie
            .value()
            .to_owned()
    };
    Session {
        access: value("accessToken"),
        refresh: value("refreshToken"),
        prefix,
    }
}

/// Status and body of a response.
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

/// Asserts the error shape, the HTTP status and the code; returns the body.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (expected, Some(code)),
        "{body:#}"
    );
    assert_eq!(body["statusCode"], expected.as_u16(), "{body:#}");
    assert_eq!(body["success"], false, "{body:#}");
    assert!(body["error"]["message"].is_string(), "{body:#}");
    assert!(body["error"]["details"].is_array(), "{body:#}");
}

/// The JSON field names in an error's details.
pub fn detail_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("field").to_owned())
        .collect()
}

static NEXT_USER: AtomicUsize = AtomicUsize::new(0);

/// A fresh username and email.
pub fn new_identity() -> (String, String) {
    let n = NEXT_USER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let username = format!("user_{n}_{nanos}");
    let email = format!("{username}@example.com");
    (username, email)
}

/// A token no other test uses, of letters and digits only (fits a method name or a path).
pub fn unique_tag() -> String {
    let n = NEXT_USER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("Q{n}Z{nanos}")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// POST with a JSON body and this browser's pending-request cookies (no token cookie);
    /// keeps the pending-request cookies the answer sets or clears.
    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        let mut request = self.request(Method::POST, path).json(&body);
        let jar = self.pending_cookie_header();
        if !jar.is_empty() {
            request = request.header(header::COOKIE, jar);
        }
        let response = request.send().await.expect("request");
        let mut pending = self.pending.lock().expect("lock");
        for (name, set) in set_cookies(&response) {
            let pending_kind = [
                "registrationId",
                "resetId",
                "loginId",
                "mfaChallenge",
                "passkeyLogin",
            ];
            if pending_kind.iter().any(|kind| name.ends_with(kind)) {
                if set.cookie.value().is_empty() {
                    pending.remove(&name);
                } else {
                    pending.insert(name, set.cookie.value().to_owned());
                }
            }
        }
        response
    }

    /// POST with a JSON body from another browser: no cookie at all.
    pub async fn post_json_elsewhere(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// The `Cookie` header of this browser's pending-request cookies (empty when none).
    pub fn pending_cookie_header(&self) -> String {
        let pending = self.pending.lock().expect("lock");
        let mut pairs: Vec<String> = pending.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        pairs.join("; ")
    }

    /// A request carrying the session's cookies.
    pub fn with_session(&self, method: Method, path: &str, session: &Session) -> RequestBuilder {
        self.request(method, path)
            .header(header::COOKIE, session.cookie_header())
    }

    pub async fn get_me(&self, session: &Session) -> (StatusCode, Value) {
        read(
            self.with_session(Method::GET, "/api/auth/me", session)
                .send()
                .await
                .expect("me"),
        )
        .await
    }

    pub async fn register(&self, username: &str, email: &str) -> (StatusCode, Value) {
        read(
            self.post_json(
                "/api/auth/register",
                json!({ "username": username, "email": email, "password": PASSWORD }),
            )
            .await,
        )
        .await
    }

    /// Registers, reads the code from the mail folder, verifies: a signed-in new user.
    pub async fn signed_up_user(&self) -> (String, String, Session) {
        let (username, email) = new_identity();
        let (status, body) = self.register(&username, &email).await;
        assert_eq!(status, StatusCode::CREATED, "{body:#}");
        let code = self.next_code(&email).await;
        let response = self
            .post_json(
                "/api/auth/verify-otp",
                json!({ "email": email, "otp": code }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let session = session_from(&response);
        (username, email, session)
    }

    /// Signs in again as an existing user: a second browser.
    pub async fn login(&self, identifier: &str, password: &str) -> Session {
        let response = self
            .post_json(
                "/api/auth/login",
                json!({ "identifier": identifier, "password": password }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        session_from(&response)
    }

    /// The code of the next mail to `email` not read yet, waiting up to 10 s for it to be written.
    pub async fn next_code(&self, email: &str) -> String {
        let nth = {
            let mut read = self.mails_read.lock().expect("lock");
            let n = read.entry(email.to_owned()).or_default();
            *n += 1;
            *n
        };
        wait_for_code(self.mail_dir.as_path(), email, nth, Duration::from_secs(10)).await
    }
}
