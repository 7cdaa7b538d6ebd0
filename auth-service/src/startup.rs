//! Wiring: config in, a bound server out. `main` and the tests both use [`Application::build`];
//! tests pass port 0 and read [`Application::local_addr`]. [`Application::run_until_stopped`]
//! serves, and at shutdown cancels one token every background task watches.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use baatcheet_auth_api::{
    FILE_DESCRIPTOR_SET,
    v1::{
        auth_service_server::{AuthServiceServer, SERVICE_NAME},
        internal_auth_service_server::InternalAuthServiceServer,
    },
};
use http::HeaderName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};
use tonic_reflection::server::Builder as ReflectionBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnFailure, TraceLayer},
};

use crate::backends::{self, BackendError, Maintenance};
use crate::config::{Config, ConfigError, LogFormat};
use crate::crypto::{AccessTokens, CodeHasher, EmailTagger, PasswordHasher, Sealer};
use crate::flows::AuthCore;
use crate::grpc::{
    AuthGrpc,
    internal::{InternalGrpc, ServiceAuth},
};
use crate::keys::{self, rotation::Rotator};
use crate::mail::{MailWorker, Templates};
use crate::store::Stores;

/// Largest request message accepted, far above any legitimate auth request, and above the
/// largest token worth refusing politely (a 100 KB "token" is ACCESS_TOKEN_INVALID, not a
/// transport error); larger messages are OUT_OF_RANGE.
const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// Largest header block (all metadata of one request) accepted. A larger one is refused on its
/// own stream; it never takes down the connection other requests share. The gateway refuses
/// tokens over 4 KiB before they get here.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Longest a call may run; far above the slowest (a login slowed by LOGIN_SLOWDOWN_MAX).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Concurrent HTTP/2 streams (calls) one connection may open: one client cannot take every
/// place of GRPC_MAX_IN_FLIGHT (4096) by itself. A gateway's MAX_IN_FLIGHT (1024) fits on one
/// connection, so its calls never wait for a stream however they are spread.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// TCP keepalive, so connections to vanished peers are closed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// How often the backends are pinged for the health service, and how long a ping may take.
const HEALTH_POLL: Duration = Duration::from_secs(2);

/// Descriptors served by reflection: the API, health, and the google.rpc error details, so
/// reflection clients can describe every message the service sends.
const DESCRIPTOR_SETS: [&[u8]; 3] = [
    FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_types::pb::FILE_DESCRIPTOR_SET,
];

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
    mail_worker: MailWorker,
    maintenance: Maintenance,
    /// The automatic rotation of signing keys, when configured.
    rotator: Option<Rotator>,
    config: Config,
}

impl Application {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Built from the config and served until a signal: what the binary's `main` runs
/// (`baatcheet_runtime::cli::main`) and the tests start.
impl baatcheet_runtime::cli::Service for Application {
    const NAME: &'static str = "auth-service";
    const LOG_FILTER: &'static str = "info,h2=warn,tower=warn,hyper=warn";
    type Config = Config;
    type Error = StartupError;

    fn log_format(config: &Config) -> LogFormat {
        config.server.log_format
    }

    async fn healthcheck(config: &Config) -> Result<(), String> {
        crate::healthcheck::check(config.server.grpc_addr).await
    }

    async fn build(config: Config) -> Result<Self, StartupError> {
        let data_dir = &config.storage.data_dir;
        let configured = keys::configured_keys(&config.keys, data_dir)?;
        let secret = keys::server_secret(&config.keys, data_dir)?;
        let backends = backends::open(&config.storage, &config.mail, &config.events).await?;
        tracing::info!(backends = %backends.description, "backends chosen");
        let (issuer, audience) = (&config.tokens.issuer, &config.tokens.audience);
        let access_ttl_ms = crate::config::millis(config.tokens.access_ttl);
        let mut tokens = match configured {
            Some((signing_key, verifying_keys)) => {
                let kept: Vec<&str> = verifying_keys.iter().map(|k| k.kid()).collect();
                tracing::info!(configured_kid = signing_key.kid(), also_verifying = ?kept, "configured signing keys");
                AccessTokens::new(signing_key, issuer.clone(), audience.clone(), access_ttl_ms)
                    .with_verifying_keys(verifying_keys)
            }
            None => AccessTokens::rotating_only(issuer.clone(), audience.clone(), access_ttl_ms),
        };
        let rotator = match config.keys.rotation {
            None => None,
            Some(rotation) => {
                // Copies of the JWKS are kept well below the pre-publish time, so a key is in
                // every copy before it signs.
                tokens = tokens
                    .with_jwks_max_age(crate::crypto::JWKS_MAX_AGE.min(rotation.prepublish / 2));
                let rotator = Rotator::new(
                    backends.stores.keys.clone(),
                    Sealer::for_signing_keys(&secret),
                    rotation,
                    config.tokens.access_ttl,
                    tokens.signing_kid(crate::domain::now_ms()).is_some(),
                );
                rotator
                    .sync(&tokens, crate::domain::now_ms())
                    .await
                    .map_err(|e| StartupError::Other(format!("signing keys: {e}")))?;
                if tokens.signing_kid(crate::domain::now_ms()).is_none() {
                    return Err(StartupError::Other(
                        "signing keys: the ring holds no key to sign with".into(),
                    ));
                }
                Some(rotator)
            }
        };
        tracing::info!(
            kid = tokens.signing_kid(crate::domain::now_ms()),
            rotating = rotator.is_some(),
            "access tokens signed with EdDSA"
        );
        let outbox = crate::mail::Outbox::new(
            backends.stores.mail.clone(),
            Arc::new(Sealer::for_mail(&secret)),
        );
        let mail_worker = outbox.worker(backends.mailer, config.mail.delivery.clone());
        let core = Arc::new(AuthCore {
            stores: backends.stores,
            hasher: PasswordHasher::new(&config.hashing)
                .map_err(|e| StartupError::Other(e.to_string()))?,
            tokens,
            codes: CodeHasher::new(&secret),
            refresh_sealer: Sealer::for_refresh_tokens(&secret),
            totp_sealer: Sealer::for_totp(&secret),
            passkeys: crate::crypto::RelyingParty::new(&config.passkeys, &config.mail.app_name)
                .map_err(StartupError::Other)?,
            email_tags: EmailTagger::new(&secret),
            outbox,
            templates: Templates {
                app_name: config.mail.app_name.clone(),
            },
            policy: config.policy.clone(),
        });
        let addr = config.server.grpc_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        Ok(Self {
            listener,
            addr,
            core,
            mail_worker,
            maintenance: backends.maintenance,
            rotator,
            config,
        })
    }

    /// Serves until `shutdown` completes, then drains in-flight calls and the mail worker.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let stop = CancellationToken::new();
        // Dropped without a signal (a test that ends), the tasks stop too.
        let _stop_when_dropped = stop.clone().drop_guard();
        let mail_worker = tokio::spawn(self.mail_worker.run(stop.clone()));
        let maintenance = self.maintenance.spawn(stop.clone());
        let rotation = self
            .rotator
            .map(|rotator| tokio::spawn(rotator.run(self.core.clone(), stop.clone())));
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AuthServiceServer<AuthGrpc>>().await;
        let stop_streams = stop.clone();
        // Often enough that a run-out heartbeat is reported within a quarter of its life.
        let sweep_every = (self.core.presence_ttl() / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(15));
        let presence_sweep =
            tokio::spawn(self.core.clone().sweep_presence(sweep_every, stop.clone()));
        // The event log is also capped in count (the Redis stream on every append too).
        let (events, max_events) = (
            self.core.stores.events.clone(),
            self.config.events.max_events,
        );
        let event_trim = tokio::spawn(trim_past_retention(
            "event log",
            self.config.events.retention,
            stop.clone(),
            move |before| {
                let events = events.clone();
                async move { events.trim(before, max_events).await }
            },
        ));
        // On MongoDB the TTL index removes old entries too.
        let security = self.core.stores.security.clone();
        let security_trim = tokio::spawn(trim_past_retention(
            "security log",
            self.config.events.audit_retention,
            stop.clone(),
            move |before| {
                let security = security.clone();
                async move { security.trim_security_events(before).await }
            },
        ));
        let watcher = tokio::spawn(watch_backends(
            health.clone(),
            self.core.stores.clone(),
            stop.clone(),
        ));

        // A request id on every call (taken from `x-request-id` or made up, and sent back), and
        // a span per call that carries it.
        let request_id = HeaderName::from_static("x-request-id");
        let request_layers = tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_grpc()
                    .make_span_with(|req: &http::Request<_>| {
                        let id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!(
                            "grpc",
                            method = %req.uri().path(),
                            request_id = %id,
                            service = tracing::field::Empty,
                        )
                    })
                    // Refusals (a wrong code, a bad token) are answers, not server failures:
                    // flows log what matters, and INTERNAL is logged where it is mapped.
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            .into_inner();

        let server = &self.config.server;
        let services = ServiceAuth::new(server.service_tokens.clone())
            .with_operators(server.operator_services.clone());
        if services.configured() {
            let names: Vec<&str> = server.service_tokens.names().collect();
            tracing::info!(services = ?names, "service tokens accepted; client metadata believed only with one");
        }
        let auth = AuthServiceServer::new(AuthGrpc::new(
            self.core.clone(),
            server.trusted_proxies.clone().into(),
            services.clone(),
        ))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let internal = InternalAuthServiceServer::new(InternalGrpc::new(
            self.core.clone(),
            services,
            self.config.events.max_watchers,
            stop.clone(),
        ))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        tracing::info!(addr = %self.addr, "auth-service listening (gRPC, gRPC-Web, reflection, health)");
        // Small gRPC frames must not wait for Nagle's algorithm (40 ms delayed-ACK stalls).
        let incoming = TcpIncoming::from(self.listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(TCP_KEEPALIVE));
        let result = Server::builder()
            .accept_http1(true)
            .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .timeout(CALL_TIMEOUT)
            .layer(request_layers)
            // CORS answers preflights before gRPC-Web translation sees them.
            .layer(tower::util::option_layer(grpc_web_cors(
                &server.grpc_web_cors_origins,
            )))
            .layer(tonic_web::GrpcWebLayer::new())
            // Inside the gRPC-Web translation, so a browser's refusal is gRPC-Web too.
            .layer(crate::grpc::shed::InFlightLayer::new(server.max_in_flight))
            // Innermost, so gRPC-Web answers are rewritten too.
            .layer(tower::util::MapResponseLayer::new(
                crate::grpc::malformed::as_invalid_argument::<tonic::body::Body>,
            ))
            .add_service(health_service)
            .add_service(reflection().build_v1().map_err(other)?)
            .add_service(reflection().build_v1alpha().map_err(other)?)
            .add_service(auth)
            .add_service(internal)
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                tracing::info!("shutting down: finishing in-flight calls");
                // Event streams never finish by themselves: end them (and the background
                // tasks) now, so the calls in flight are all that is waited for.
                stop_streams.cancel();
                health
                    .set_not_serving::<AuthServiceServer<AuthGrpc>>()
                    .await;
            })
            .await;
        stop.cancel();
        if tokio::time::timeout(server.shutdown_grace, mail_worker)
            .await
            .is_err()
        {
            tracing::warn!("mail worker did not stop in time; unsent mail stays queued");
        }
        for task in maintenance.into_iter().chain(rotation).chain([
            watcher,
            event_trim,
            security_trim,
            presence_sweep,
        ]) {
            let _ = task.await;
        }
        tracing::info!("stopped");
        result.map_err(StartupError::from)
    }
}

fn other(e: impl std::fmt::Display) -> StartupError {
    StartupError::Other(e.to_string())
}

/// Reflection over every descriptor set the service answers with.
fn reflection() -> ReflectionBuilder<'static> {
    DESCRIPTOR_SETS
        .into_iter()
        .fold(ReflectionBuilder::configure(), |builder, set| {
            builder.register_encoded_file_descriptor_set(set)
        })
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

/// How often events older than the retention (or beyond the cap) are removed; the Redis
/// stream also caps its length on every append.
const EVENT_TRIM_EVERY: Duration = Duration::from_secs(60);

/// Calls `trim` with the time before which entries of `log` (the event log, the security log)
/// are past `retention`, every [`EVENT_TRIM_EVERY`] (every half retention when that is
/// shorter, so a short retention is kept to closely too), until `stop`.
async fn trim_past_retention<F, Fut>(
    log: &'static str,
    retention: Duration,
    stop: CancellationToken,
    trim: F,
) where
    F: Fn(crate::domain::UnixMs) -> Fut,
    Fut: std::future::Future<Output = crate::store::StoreResult<u64>>,
{
    let retention_ms = crate::config::millis(retention);
    let every = (retention / 2).clamp(Duration::from_millis(500), EVENT_TRIM_EVERY);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        match trim(crate::domain::now_ms() - retention_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(entries = n, log, "trimmed entries past the retention"),
            Err(e) => tracing::warn!(error = %e, log, "trimming failed"),
        }
    }
}

/// Flips the health status with the backends: NOT_SERVING while one does not answer.
async fn watch_backends(health: HealthReporter, stores: Stores, stop: CancellationToken) {
    let mut last = ServingStatus::Serving;
    loop {
        let status = tokio::select! {
            status = backends_status(&stores) => status,
            () = stop.cancelled() => return,
        };
        if status != last {
            tracing::warn!(?status, "backend health changed");
            health.set_service_status("", status).await;
            health.set_service_status(SERVICE_NAME, status).await;
            last = status;
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_POLL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// SERVING when every backend answers a ping within [`HEALTH_POLL`].
async fn backends_status(stores: &Stores) -> ServingStatus {
    for backend in &stores.health {
        let ping = tokio::time::timeout(HEALTH_POLL, backend.ping()).await;
        if !matches!(ping, Ok(Ok(()))) {
            return ServingStatus::NotServing;
        }
    }
    ServingStatus::Serving
}
