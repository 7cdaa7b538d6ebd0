//! What the edge does by itself: error shapes of malformed requests, CORS, CSRF, security
//! headers, request ids, the per-IP limit, proxies, readiness, metrics, OpenAPI, JWKS, the page,
//! and the mapping of an unreachable or slow auth service.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    for path in ["/api/auth/nope", "/nope", "/api/auth/sessions/a/b"] {
        let (status, body) = read(app.request(Method::GET, path).send().await.unwrap()).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    let (status, body) = read(
        app.request(Method::PUT, "/api/auth/login")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_415_413() {
    let app = spawn_app().await;
    let post = |body: &'static str, content_type: &'static str| {
        app.request(Method::POST, "/api/auth/register")
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let (status, body) = read(post("{\"email\": ", "application/json").await.unwrap()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "MALFORMED_JSON");

    let (status, body) = read(post("{\"email\": 42}", "application/json").await.unwrap()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "INVALID_BODY");

    let (status, body) = read(
        post("email=a@b.c", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    );

    let big = json!({ "email": "a@b.c", "bio": "x".repeat(17 * 1024) });
    let (status, body) = read(app.post_json("/api/auth/register", big).await).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    );
}

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin() {
    let app = spawn_app().await;
    let response = app
        .request(Method::OPTIONS, "/api/auth/login")
        .header(header::ORIGIN, ALLOWED_ORIGIN)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let h = response.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], ALLOWED_ORIGIN);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    let methods = h[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
    assert!(headers.contains("content-type"), "{headers}");

    // The actual request gets the headers too, error answers included.
    let response = app
        .request(Method::GET, "/api/auth/me")
        .header(header::ORIGIN, ALLOWED_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        ALLOWED_ORIGIN
    );
    let exposed = response.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("retry-after"), "{exposed}");
}

#[tokio::test]
async fn cors_gives_an_origin_not_on_the_list_nothing() {
    let app = spawn_app().await;
    let response = app
        .request(Method::OPTIONS, "/api/auth/login")
        .header(header::ORIGIN, "http://evil.test")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_ALLOW_METHODS,
    ] {
        assert!(!response.headers().contains_key(&name), "{name}");
    }
    let response = app
        .request(Method::GET, "/api/auth/me")
        .header(header::ORIGIN, "http://evil.test")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn cookie_requests_from_other_origins_are_refused() {
    let app = spawn_app().await;
    let (_, _, session) = app.signed_up_user().await;
    let logout = |origin: Option<&'static str>, fetch_site: Option<&'static str>| {
        let mut request = app.with_session(Method::POST, "/api/auth/logout", &session);
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        request.send()
    };
    for (origin, site) in [
        (Some("http://evil.test"), Some("cross-site")),
        (Some("null"), None),
        (None, Some("cross-site")),
        (None, Some("same-site")),
    ] {
        let (status, body) = read(logout(origin, site).await.unwrap()).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "CSRF_REJECTED");
    }
    // GET logout changes state too.
    let (status, body) = read(
        app.with_session(Method::GET, "/api/auth/logout", &session)
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "CSRF_REJECTED");
    let (status, _) = app.get_me(&session).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refused requests changed nothing"
    );

    // Without cookies there is nothing ambient to abuse: the service decides.
    let (status, body) = read(
        app.request(Method::POST, "/api/auth/logout")
            .header(header::ORIGIN, "http://evil.test")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    // The same origin and the allowed origin may act.
    let own = app.base.clone();
    let (status, body) = read(
        app.with_session(Method::GET, "/api/auth/sessions", &session)
            .header(header::ORIGIN, own)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (status, body) = read(
        logout(Some(ALLOWED_ORIGIN), Some("same-site"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
}

#[tokio::test]
async fn security_headers_request_ids_and_no_store() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/api/auth/me")
        .send()
        .await
        .unwrap();
    let h = response.headers();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("x-xss-protection", "0"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(h[name], value, "{name}");
    }
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(
        !h.contains_key("strict-transport-security"),
        "not over http"
    );
    let id = h["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");

    let response = app
        .request(Method::GET, "/healthz")
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["status"], "ok");
}

#[tokio::test]
async fn the_per_ip_limit_answers_429_with_retry_after() {
    let app = spawn_app_with(
        Env::default()
            .gateway("RATE_LIMIT_PER_SECOND", "1")
            .gateway("RATE_LIMIT_BURST", "3"),
    )
    .await;
    let mut limited = None;
    for _ in 0..10 {
        let response = app
            .request(Method::GET, "/api/auth/me")
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("no 429 within 10 requests at 1/s, burst 3");
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let (status, body) = read(response).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    // Probes are not limited.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    for (trust, expected) in [("off", "127.0.0.1"), ("1", "203.0.113.7")] {
        let app = spawn_app_with(Env::default().gateway("TRUST_PROXY", trust)).await;
        let (username, _, _) = app.signed_up_user().await;
        let response = app
            .request(Method::POST, "/api/auth/login")
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({ "identifier": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let session = session_from(&response);
        let (_, body) = read(
            app.with_session(Method::GET, "/api/auth/sessions", &session)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let current = body["data"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == true)
            .cloned()
            .unwrap();
        assert_eq!(current["clientIp"], expected, "TRUST_PROXY={trust}");
    }
}

#[tokio::test]
async fn readiness_follows_the_auth_service() {
    let app = spawn_app().await;
    let (status, body) = read(app.request(Method::GET, "/readyz").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["authService"], "SERVING");

    // A gateway whose auth service is not there: alive, not ready, and every call is 503.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let lonely = spawn_gateway(&url, Env::default().gateway).await;
    let (status, _) = read(
        lonely
            .request(Method::GET, "/healthz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = read(lonely.request(Method::GET, "/readyz").send().await.unwrap()).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
    );
    let (status, body) = read(
        lonely
            .post_json(
                "/api/auth/login",
                json!({ "identifier": "a", "password": "b" }),
            )
            .await,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
    );
    let text = body.to_string();
    let port = url.rsplit(':').next().unwrap();
    assert!(!text.contains(port) && !text.contains("tcp"), "{text}");
}

#[tokio::test]
async fn a_slow_auth_service_is_503() {
    // Register hashes the password (milliseconds of argon2): far over a 1 ms deadline.
    let app = spawn_app_with(Env::default().gateway("GRPC_TIMEOUT", "1ms")).await;
    let (username, email) = new_identity();
    let (status, body) = app.register(&username, &email).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:#}");
    let code = body["error"]["code"].as_str().unwrap();
    assert!(
        ["DEADLINE_EXCEEDED", "UNAVAILABLE"].contains(&code),
        "{body:#}"
    );
}

#[tokio::test]
async fn metrics_count_requests_and_grpc_calls() {
    let app = spawn_app().await;
    app.request(Method::GET, "/api/auth/me")
        .send()
        .await
        .unwrap();
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for needle in [
        "gateway_http_requests_total{",
        "route=\"/api/auth/me\"",
        "gateway_grpc_calls_total{",
        "rpc=\"GetCurrentUser\"",
        "gateway_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = spawn_app().await;
    let (status, doc): (StatusCode, Value) = read(
        app.request(Method::GET, "/openapi.json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{doc:#}"
    );
    let routes = [
        ("post", "/api/auth/register"),
        ("post", "/api/auth/verify-otp"),
        ("post", "/api/auth/resend-otp"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/refresh"),
        ("post", "/api/auth/logout"),
        ("get", "/api/auth/logout"),
        ("post", "/api/auth/logout-all"),
        ("get", "/api/auth/me"),
        ("get", "/api/auth/sessions"),
        ("delete", "/api/auth/sessions/{id}"),
        ("post", "/api/auth/password/forgot"),
        ("post", "/api/auth/password/reset"),
        ("post", "/api/auth/password/change"),
        ("post", "/api/auth/login/passkey/start"),
        ("post", "/api/auth/login/passkey"),
        ("post", "/api/auth/passkeys/register/start"),
        ("post", "/api/auth/passkeys/register/finish"),
        ("get", "/api/auth/passkeys"),
        ("post", "/api/auth/passkeys/delete"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    for (method, path) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().expect("operationId"))
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds are unique");
    // The edge's own answers are documented too.
    let register = &doc["paths"]["/api/auth/register"]["post"]["responses"];
    for status in ["400", "403", "413", "415", "422", "429", "503"] {
        assert!(register[status].is_object(), "register documents {status}");
    }
    let schemas = &doc["components"]["schemas"];
    for name in ["RegisterBody", "LoginBody", "ErrorBody", "UserView"] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    // Request bodies are derived from the structs: camelCase fields.
    assert!(schemas["ResetPasswordBody"]["properties"]["newPassword"].is_object());
}

#[tokio::test]
async fn jwks_is_served_and_cacheable() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=300"
    );
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK);
    let key = &body["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("EdDSA"))
    );
}

/// A service that rotates its keys often says how long a copy may be kept, and the gateway's
/// Cache-Control follows: half the pre-publish time, so a cached JWKS never misses the key of
/// the next token.
#[tokio::test]
async fn the_jwks_cache_time_stays_below_the_services_prepublish_time() {
    let app = spawn_app_with(
        Env::default()
            .service("JWT_KEY_ROTATION_INTERVAL", "1h")
            .service("JWKS_PREPUBLISH", "4m"),
    )
    .await;
    let response = app
        .request(Method::GET, "/.well-known/jwks.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=120"
    );
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/openapi.json")
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn the_page_is_served_in_development_only() {
    let app = spawn_app().await;
    let response = app.request(Method::GET, "/").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("app.js"));
    let response = app.request(Method::GET, "/app.js").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let production = spawn_app_with(Env::default().gateway("NODE_ENV", "production")).await;
    let (status, body) = read(production.request(Method::GET, "/").send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn cookie_attributes_follow_the_environment() {
    let app = spawn_app_with(
        Env::default()
            .gateway("NODE_ENV", "production")
            .gateway("COOKIE_SAMESITE", "None")
            .gateway("COOKIE_DOMAIN", "example.com"),
    )
    .await;
    let (username, email) = new_identity();
    app.register(&username, &email).await;
    let code = app.next_code(&email).await;
    let response = app
        .post_json(
            "/api/auth/verify-otp",
            json!({ "email": email, "otp": code }),
        )
        .await;
    assert!(response.headers().contains_key("strict-transport-security"));
    let cookies = set_cookies(&response);
    for name in ["accessToken", "refreshToken"] {
        let c = &cookies[name].cookie;
        assert_eq!(
            c.same_site(),
            Some(cookie::SameSite::None),
            "{}",
            cookies[name].raw
        );
        assert_eq!(c.secure(), Some(true), "{}", cookies[name].raw);
        assert_eq!(c.domain(), Some("example.com"));
        assert_eq!(c.http_only(), Some(true));
    }
}

#[tokio::test]
async fn a_request_over_the_edge_deadline_is_504() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(
        Env::default()
            .gateway("REQUEST_TIMEOUT", "300ms")
            .gateway("GRPC_TIMEOUT", "300ms"),
    )
    .await;
    // A client that announces a body and never sends it.
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("an answer")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("\"code\":\"GATEWAY_TIMEOUT\""), "{answer}");
}

#[tokio::test]
async fn the_healthcheck_subcommand_answers_with_its_exit_code() {
    let app = spawn_app().await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let run = |port: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_edge-gateway"))
            .arg("healthcheck")
            .env_clear()
            .env("HTTP_HOST", "0.0.0.0")
            .env("PORT", port)
            .output()
            .unwrap()
    };
    let up = tokio::task::spawn_blocking(move || run(&port))
        .await
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let down = tokio::task::spawn_blocking(move || run(&closed))
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot connect"));
}
