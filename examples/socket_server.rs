//! A socket server in miniature: each line of stdin stands for a connection presenting an
//! access token. It is checked offline with `AccessTokenVerifier`; a connection whose session
//! ends later is dropped when the session.revoked event arrives.
//!
//! ```sh
//! SERVICE_TOKEN=... cargo run -p baatcheet-auth-api --features verifier --example socket_server
//! ```
//!
//! Reads AUTH_SERVICE_URL (default http://127.0.0.1:50051), SERVICE_TOKEN (required),
//! JWT_ISSUER (default baatcheet-auth) and JWT_AUDIENCE (default baatcheet). After the end of
//! stdin it keeps its connections until each is dropped; logs go to stderr (RUST_LOG).

use std::{collections::HashSet, env, io::BufRead};

use baatcheet_auth_api::{AccessTokenVerifier, v1::EventType};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tonic::transport::Endpoint;

fn env_or(name: &str, default: &str) -> String {
    env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let url = env_or("AUTH_SERVICE_URL", "http://127.0.0.1:50051");
    let service_token = env::var("SERVICE_TOKEN").map_err(|_| "SERVICE_TOKEN is not set")?;
    let channel = Endpoint::from_shared(url)?.connect_lazy();
    let verifier = AccessTokenVerifier::builder(channel)
        .issuer(env_or("JWT_ISSUER", "baatcheet-auth"))
        .audience(env_or("JWT_AUDIENCE", "baatcheet"))
        .service_token(service_token)
        .build()?;
    let mut events = verifier.subscribe();
    let _follower = verifier.spawn_follower();

    // Blocking stdin on its own thread; each line is one incoming connection.
    let (tx, mut connections) = mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    let mut open: HashSet<String> = HashSet::new();
    let mut stdin_open = true;
    while stdin_open || !open.is_empty() {
        tokio::select! {
            line = connections.recv(), if stdin_open => {
                let Some(line) = line else {
                    stdin_open = false;
                    continue;
                };
                let token = line.trim();
                if token.is_empty() {
                    continue;
                }
                match verifier.verify(token).await {
                    Ok(t) => {
                        println!("accepted user={} session={}", t.user_id, t.session_id);
                        open.insert(t.session_id);
                    }
                    Err(e) => println!("refused: {e}"),
                }
            }
            event = events.recv() => match event {
                Ok(event) if event.r#type() == EventType::SessionRevoked => {
                    if open.remove(&event.session_id) {
                        let reason = event.reason().as_str_name();
                        let reason = reason.strip_prefix("SESSION_REVOKE_REASON_").unwrap_or(reason);
                        println!("dropped session={} reason={reason}", event.session_id);
                    }
                }
                Ok(_) => {}
                // Some events were missed: look the open sessions up instead.
                Err(RecvError::Lagged(_)) => open.retain(|sid| {
                    let revoked = verifier.is_revoked(sid);
                    if revoked {
                        println!("dropped session={sid} reason=unknown");
                    }
                    !revoked
                }),
                Err(RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}
