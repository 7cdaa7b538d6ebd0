//! Wiring: config in, a bound server out. `main` and the tests both use [`Application::build`];
//! tests pass port 0 and read [`Application::local_addr`].

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use baatcheet_auth_api::{FILE_DESCRIPTOR_SET, v1::auth_service_server::AuthServiceServer};
use http::HeaderName;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnFailure, TraceLayer},
};

use crate::backends::{self, BackendError};
use crate::config::{Config, ConfigError};
use crate::crypto::{AccessTokens, CodeHasher, EmailTagger, HashSettings, PasswordHasher, Sealer};
use crate::flows::{AuthCore, LoginPolicy, Policy};
use crate::grpc::AuthGrpc;
use crate::keys;
use crate::mail::{MailWorker, Mailer, Outbox, RetryPolicy, Templates};
use crate::store::{CodePolicy, Stores, sqlite::SqliteStore};

/// Largest request message accepted, far above any legitimate auth request, and above the
/// largest token worth refusing politely (a 100 KB "token" is ACCESS_TOKEN_INVALID, not a
/// transport error); larger messages are OUT_OF_RANGE.
const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// Largest header block (all metadata of one request) accepted. A larger one is refused on its
/// own stream; it never takes down the connection other requests share. The gateway refuses
/// tokens over 4 KiB before they get here.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open {0}")]
    Backend(#[from] BackendError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    #[error("server error: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built service with its listener bound, ready to run.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    core: Arc<AuthCore>,
    mailer: Arc<dyn Mailer>,
    config: Config,
    stores: Stores,
    sealer: Arc<Sealer>,
    sqlite: Option<Arc<SqliteStore>>,
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let signing_key = keys::signing_key(&config)?;
        let secret = keys::server_secret(&config)?;
        let backends = backends::open(&config).await?;
        tracing::info!(backends = %backends.description, "backends chosen");
        let (stores, sqlite, mailer) = (backends.stores, backends.sqlite, backends.mailer);
        let hasher = PasswordHasher::new(&HashSettings {
            memory_kib: config.argon2_memory_kib,
            iterations: config.argon2_iterations,
            parallelism: config.argon2_parallelism,
            concurrency: config.hash_concurrency,
            queue: config.hash_queue,
        })
        .map_err(|e| StartupError::Other(e.to_string()))?;
        let sealer = Arc::new(Sealer::for_mail(&secret));
        let outbox = Outbox::new(stores.mail.clone(), sealer.clone());
        tracing::info!(kid = signing_key.kid(), "access tokens signed with EdDSA");
        let core = Arc::new(AuthCore {
            stores: stores.clone(),
            hasher,
            tokens: AccessTokens::new(
                signing_key,
                config.jwt_issuer.clone(),
                config.jwt_audience.clone(),
                ms(config.access_token_ttl),
            ),
            codes: CodeHasher::new(&secret),
            refresh_sealer: Sealer::for_refresh_tokens(&secret),
            email_tags: EmailTagger::new(&secret),
            outbox,
            templates: Templates {
                app_name: config.app_name.clone(),
            },
            policy: Policy {
                code: CodePolicy {
                    ttl_ms: ms(config.code_ttl),
                    cooldown_ms: ms(config.code_resend_cooldown),
                    max_attempts: config.code_max_attempts,
                    max_sends_per_day: config.code_max_sends_per_day,
                    max_guesses_per_day: config.code_max_guesses_per_day,
                    pending_ttl_ms: ms(config.code_request_ttl),
                },
                code_ttl: config.code_ttl,
                code_requests_per_ip_per_hour: config.code_requests_per_ip_per_hour,
                code_guesses_per_ip_per_hour: config.code_guesses_per_ip_per_hour,
                signup_enumeration_safe: config.signup_enumeration_safe,
                refresh_ttl_ms: ms(config.refresh_token_ttl),
                refresh_grace_ms: ms(config.refresh_reuse_grace),
                max_sessions_per_user: config.max_sessions_per_user,
                login: LoginPolicy {
                    max_attempts: config.login_max_attempts,
                    window_ms: ms(config.login_window),
                    max_failures_per_ip: config.login_max_failures_per_ip,
                    slowdown_after: config.login_slowdown_after,
                    slowdown_max: config.login_slowdown_max,
                },
            },
        });
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.grpc_addr,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        Ok(Self {
            listener,
            addr,
            core,
            mailer,
            config,
            stores,
            sealer,
            sqlite,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then drains in-flight calls and the mail worker.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = MailWorker::new(
            &self.core.outbox,
            self.stores.mail.clone(),
            self.sealer.clone(),
            self.mailer.clone(),
            RetryPolicy {
                max_attempts: self.config.mail_max_attempts,
                base_delay: self.config.mail_retry_base_delay,
                max_delay: self.config.mail_retry_max_delay,
                lease: Duration::from_secs(60),
                concurrency: self.config.mail_concurrency,
                dead_letter_ttl: self.config.mail_dead_letter_ttl,
            },
        );
        let worker = tokio::spawn(worker.run(stop_rx.clone()));
        let sweeper = self
            .sqlite
            .as_ref()
            .map(|s| s.spawn_sweeper(Duration::from_secs(60)));

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AuthServiceServer<AuthGrpc>>().await;
        let watcher = tokio::spawn(watch_backends(
            health.clone(),
            self.stores.clone(),
            stop_rx.clone(),
        ));

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error detail types, so reflection clients can describe them.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error detail types, so reflection clients can describe them.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let trusted_proxies = self.config.trusted_proxies.clone().into();
        let auth = AuthServiceServer::new(AuthGrpc::new(self.core.clone(), trusted_proxies))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);

        let request_id = HeaderName::from_static("x-request-id");
        let layers = tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_grpc()
                    .make_span_with(|req: &http::Request<_>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!("grpc", method = %req.uri().path(), request_id = %id)
                    })
                    // Refusals (a wrong code, a bad token) are answers, not server failures: flows
                    // log what matters, and INTERNAL is logged where it is mapped.
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            .into_inner();

        tracing::info!(addr = %self.addr, "auth-service listening (gRPC, gRPC-Web, reflection, health)");
        let grace = self.config.shutdown_grace;
        // Small gRPC frames must not wait for Nagle's algorithm (40 ms delayed-ACK stalls).
        let incoming = TcpIncoming::from(self.listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let result = Server::builder()
            .accept_http1(true)
            .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
            .timeout(Duration::from_secs(30))
            .layer(layers)
            // CORS answers preflights before gRPC-Web translation sees them.
            .layer(tower::util::option_layer(grpc_web_cors(
                &self.config.grpc_web_cors_origins,
            )))
            .layer(tonic_web::GrpcWebLayer::new())
            // Innermost, so gRPC-Web answers are rewritten too.
            .layer(tower::util::MapResponseLayer::new(
                crate::grpc::malformed::as_invalid_argument::<tonic::body::Body>,
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(auth)
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                tracing::info!("shutting down: finishing in-flight calls");
                health
                    .set_not_serving::<AuthServiceServer<AuthGrpc>>()
                    .await;
            })
            .await;
        let _ = stop_tx.send(true);
        if tokio::time::timeout(grace, worker).await.is_err() {
            tracing::warn!("mail worker did not stop in time; unsent mail stays queued");
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        watcher.abort();
        tracing::info!("stopped");
        result.map_err(StartupError::from)
    }
}

/// CORS for browsers calling gRPC-Web from the listed origins (none: no CORS headers, so only
/// same-origin pages and non-browser clients). Bearer tokens travel in `authorization`, so no
/// credentials (cookies) are allowed.
fn grpc_web_cors(origins: &[http::HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let header = |name: &'static str| HeaderName::from_static(name);
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([http::Method::POST])
            .allow_headers([
                header("content-type"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("authorization"),
                header("x-request-id"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Flips the health status with the backends: NOT_SERVING while one does not answer.
async fn watch_backends(
    health: tonic_health::server::HealthReporter,
    stores: Stores,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = ServingStatus::Serving;
    loop {
        let mut status = ServingStatus::Serving;
        for backend in &stores.health {
            let ping = tokio::time::timeout(Duration::from_secs(2), backend.ping()).await;
            if !matches!(ping, Ok(Ok(()))) {
                status = ServingStatus::NotServing;
            }
        }
        if status != last {
            tracing::warn!(?status, "backend health changed");
            health.set_service_status("", status).await;
            health
                .set_service_status(
                    baatcheet_auth_api::v1::auth_service_server::SERVICE_NAME,
                    status,
                )
                .await;
            last = status;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub use baatcheet_runtime::shutdown::signal as shutdown_signal;
