//! The gRPC surface around the RPCs: health, reflection, request ids, limits on input,
//! persistence across a restart.

use baatcheet_auth_api::v1 as pb;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

async fn channel(app: &TestApp) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_reports_serving() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(channel(&app).await);
    for service in ["", "baatcheet.auth.v1.AuthService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn reflection_lists_the_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = spawn_app().await;
    let mut client = ServerReflectionClient::new(channel(&app).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"baatcheet.auth.v1.AuthService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_request_id_is_echoed_or_made() {
    let app = spawn_app().await;
    let mut request = tonic::Request::new(pb::GetJwksRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "req-abc-123".parse().unwrap());
    let response = app.client().get_jwks(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "req-abc-123"
    );
    let response = app.client().get_jwks(pb::GetJwksRequest {}).await.unwrap();
    let made = response
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let huge = "x".repeat(200 * 1024);
    let status = app
        .register("huge", &email("huge"), &huge)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    app.client()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("still serving");
}

#[tokio::test]
async fn users_and_sessions_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("auth.sqlite3").display().to_string();
    let overrides = [("SQLITE_PATH", db.as_str())];
    let app = spawn_in(data, &overrides).await;
    let mail = email("keep");
    let (user, tokens) = app.signup(&username("keep"), &mail).await;
    let data = app.stop().await;
    assert!(
        data.path().join("jwt-ed25519.pem").exists(),
        "the development key is kept in the data folder"
    );

    let app = spawn_in(data, &overrides).await;
    assert_eq!(
        app.validate(&tokens.access_token).await.unwrap().sub,
        user.id,
        "same key, same session"
    );
    let next = app.refresh(&tokens.refresh_token).await.unwrap();
    assert_eq!(next.session_id, tokens.session_id);
    assert_eq!(
        app.login(&mail, PASSWORD).await.unwrap().user.unwrap().id,
        user.id
    );
}

/// A raw HTTP/1.1 request on the gRPC port (gRPC-Web is served there); the response head.
async fn http1(addr: std::net::SocketAddr, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).to_lowercase()
}

#[tokio::test]
async fn grpc_web_cors_answers_listed_origins_only() {
    let app = spawn_app_with(&[(
        "GRPC_WEB_CORS_ORIGINS",
        "http://app.example.test, https://other.example.test",
    )])
    .await;
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /baatcheet.auth.v1.AuthService/GetJwks HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web,authorization\r\n\r\n",
            app.addr
        )
    };
    let allowed = http1(app.addr, preflight("http://app.example.test")).await;
    assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
    assert!(
        allowed.contains("access-control-allow-origin: http://app.example.test"),
        "{allowed}"
    );
    assert!(
        allowed.contains("authorization"),
        "the bearer header may be sent: {allowed}"
    );
    let refused = http1(app.addr, preflight("http://evil.example.test")).await;
    assert!(
        !refused.contains("access-control-allow-origin"),
        "{refused}"
    );

    // Without the variable, no CORS headers at all.
    let plain = spawn_app().await;
    let none = http1(
        plain.addr,
        preflight("http://app.example.test")
            .replace(&app.addr.to_string(), &plain.addr.to_string()),
    )
    .await;
    assert!(!none.contains("access-control-allow-origin"), "{none}");
    // gRPC-Web itself still works cross-origin for listed origins (a real call, HTTP/1.1).
    let call = format!(
        "POST /baatcheet.auth.v1.AuthService/GetJwks HTTP/1.1\r\nHost: {}\r\nOrigin: http://app.example.test\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0",
        app.addr
    );
    let answer = http1(app.addr, call).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("access-control-allow-origin: http://app.example.test"),
        "{answer}"
    );
    assert!(answer.contains("access-control-expose-headers"), "{answer}");
}

/// GRPC_MAX_IN_FLIGHT: with its one place taken by a sign-in that waits (the account is being
/// guessed at, so each attempt is slowed down), any other call is refused at once with
/// RESOURCE_EXHAUSTED SERVER_BUSY, not queued behind it; the health check still answers; and
/// the place comes back when the sign-in ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_in_flight_a_call_is_refused_at_once_not_queued() {
    let app = spawn_app_with(&[
        ("GRPC_MAX_IN_FLIGHT", "1"),
        ("LOGIN_SLOWDOWN_AFTER", "1"),
        ("LOGIN_SLOWDOWN_MAX", "2s"),
    ])
    .await;
    let mail = email("inflight");
    app.signup(&username("inflight"), &mail).await;
    app.login(&mail, "a wrong password").await.unwrap_err();
    // From now on every attempt on this account waits 500 ms first.
    let slow = {
        let mut c = app.client();
        let mail = mail.clone();
        tokio::spawn(async move {
            c.login(pb::LoginRequest {
                identifier: mail,
                password: PASSWORD.into(),
            })
            .await
        })
    };
    let started = std::time::Instant::now();
    let refused = loop {
        match app.client().get_jwks(pb::GetJwksRequest {}).await {
            Err(s) => break s,
            Ok(_) => {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(2),
                    "never refused"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    assert!(!slow.is_finished(), "refused while the sign-in still waits");
    assert_eq!(
        (refused.code(), reason(&refused).as_str()),
        (Code::ResourceExhausted, "SERVER_BUSY")
    );
    assert_eq!(retry_secs(&refused), Some(1));
    let mut health = HealthClient::new(channel(&app).await);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is never refused")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    slow.await.unwrap().expect("the slowed sign-in succeeds");
    app.client()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("the place came back");
}
