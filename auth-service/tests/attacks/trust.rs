//! Posing as another client: `x-client-ip` / `x-client-user-agent` are believed only from a
//! trusted proxy, so an ordinary caller can neither forge the address a session records nor
//! escape the per-network limits by inventing addresses.

use baatcheet_auth_api::v1 as pb;
use tonic::Code;

use crate::attacks::arena::{Arena, Backend, on_every_backend};
use crate::helpers::*;

on_every_backend!(
    forwarded_client_metadata_from_an_untrusted_peer_is_ignored,
    forwarded_client_metadata_from_a_trusted_proxy_is_recorded,
);

fn spoofed<T>(message: T, ip: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("x-client-ip", ip.parse().unwrap());
    metadata.insert("x-client-user-agent", "Forged/1.0".parse().unwrap());
    request
}

async fn forwarded_client_metadata_from_an_untrusted_peer_is_ignored(backend: Backend) {
    // This test's client (127.0.0.1) is not a trusted proxy here.
    let arena = Arena::start(
        backend,
        &[
            ("TRUSTED_PROXIES", "10.0.0.0/8"),
            ("CODE_REQUESTS_PER_IP_PER_HOUR", "3"),
        ],
    )
    .await;
    let app = &arena.app;
    let mail = email("spoof");
    arena.signup(&username("spoof"), &mail).await;
    let login = app
        .client()
        .login(spoofed(
            pb::LoginRequest {
                identifier: mail.clone(),
                password: PASSWORD.into(),
            },
            "192.0.2.99",
        ))
        .await
        .unwrap()
        .into_inner();
    let access = login.tokens.unwrap().access_token;
    let sessions = app.sessions(&access).await.unwrap();
    let current = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(
        current.client_ip, "127.0.0.1",
        "the TCP peer, not the header"
    );
    assert_ne!(current.user_agent, "Forged/1.0");
    // Inventing a new address per request does not buy more sign-up codes.
    for n in 0..2 {
        app.client()
            .register(spoofed(
                pb::RegisterRequest {
                    username: username("spoof"),
                    email: email("spoof"),
                    password: PASSWORD.into(),
                    ..Default::default()
                },
                &format!("198.51.100.{n}"),
            ))
            .await
            .unwrap();
    }
    assert_error(
        app.client()
            .register(spoofed(
                pb::RegisterRequest {
                    username: username("spoof"),
                    email: email("spoof"),
                    password: PASSWORD.into(),
                    ..Default::default()
                },
                "198.51.100.200",
            ))
            .await,
        Code::ResourceExhausted,
        "SIGNUP_RATE_LIMITED",
    );
}

async fn forwarded_client_metadata_from_a_trusted_proxy_is_recorded(backend: Backend) {
    // Loopback is trusted by default, as a gateway on the same host would be.
    let arena = Arena::start(backend, &[]).await;
    let app = &arena.app;
    let mail = email("proxied");
    arena.signup(&username("proxied"), &mail).await;
    let login = app
        .client()
        .login(spoofed(
            pb::LoginRequest {
                identifier: mail,
                password: PASSWORD.into(),
            },
            "192.0.2.99",
        ))
        .await
        .unwrap()
        .into_inner();
    let sessions = app
        .sessions(&login.tokens.unwrap().access_token)
        .await
        .unwrap();
    let current = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(
        (current.client_ip.as_str(), current.user_agent.as_str()),
        ("192.0.2.99", "Forged/1.0")
    );
}
