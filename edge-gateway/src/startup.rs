//! Wiring: config in, a bound server out. `main` and the tests both use [`Application::build`];
//! tests pass port 0 and read [`Application::local_addr`].

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use crate::config::{Config, ConfigError, LogFormat};
use crate::pool::ConnectionPool;
use crate::pool::service_authorization;
use crate::ratelimit::{self, IpLimiter};
use crate::{routes, state::AppState};

/// How long the sweeper and the metrics listener get to end once cancelled.
const TASK_STOP: Duration = Duration::from_secs(1);

#[derive(thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("AUTH_SERVICE_URL is not usable: {0}")]
    AuthServiceUrl(#[source] tonic::transport::Error),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot render the OpenAPI document: {0}")]
    OpenApi(#[from] serde_json::Error),
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Printed as the sentence it is, also where `{:?}` is used (a test's `expect`).
impl std::fmt::Debug for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A built gateway with its listeners bound, ready to run.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    /// The /metrics listener, when METRICS_ADDR gives it one of its own.
    metrics: Option<(TcpListener, SocketAddr)>,
    limiter: Arc<IpLimiter>,
    shutdown_grace: Duration,
}

impl Application {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where /metrics is served when METRICS_ADDR is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }
}

/// Built from the config and served until a signal: what the binary's `main` runs
/// (`baatcheet_runtime::cli::main`) and the tests start.
impl baatcheet_runtime::cli::Service for Application {
    const NAME: &'static str = "edge-gateway";
    const LOG_FILTER: &'static str = "info,h2=warn,tower=warn,tower_http=info,hyper=warn";
    type Config = Config;
    type Error = StartupError;

    fn log_format(config: &Config) -> LogFormat {
        config.server.log_format
    }

    async fn healthcheck(config: &Config) -> Result<(), String> {
        crate::healthcheck::check(SocketAddr::new(config.server.host, config.server.port)).await
    }

    /// Connects lazily: the gateway starts (and /readyz says so) while the auth service is down.
    async fn build(config: Config) -> Result<Self, StartupError> {
        metrics_handle_installed();
        let endpoint = Endpoint::from_shared(config.upstream.url.clone())
            .map_err(StartupError::AuthServiceUrl)?
            .connect_timeout(Duration::from_secs(2))
            .timeout(config.upstream.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let service_authorization = match &config.upstream.service_token {
            None => None,
            Some(token) => Some(service_authorization(token).ok_or_else(|| {
                ConfigError::new(
                    "AUTH_SERVICE_TOKEN",
                    "the token is not a valid header value",
                )
            })?),
        };
        if service_authorization.is_some() {
            tracing::info!(
                "calls to the auth service carry the service token (AUTH_SERVICE_TOKEN)"
            );
        }
        let pool = ConnectionPool::lazy(&endpoint, config.upstream.connections)
            .with_service_authorization(service_authorization)
            .with_max_in_flight(config.server.max_in_flight);
        let (listener, addr) =
            bind(SocketAddr::new(config.server.host, config.server.port)).await?;
        let metrics = match config.server.metrics_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let limiter = ratelimit::limiter(config.rate_limit);
        let shutdown_grace = config.server.shutdown_grace;
        let router = routes::router(AppState::new(config, pool), limiter.clone())?;
        Ok(Self {
            listener,
            addr,
            router,
            metrics,
            limiter,
            shutdown_grace,
        })
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for up to
    /// SHUTDOWN_GRACE.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        // One token stops every task; dropped without a signal (a test that ends), too.
        let stop = CancellationToken::new();
        let _stop_when_dropped = stop.clone().drop_guard();
        let sweeper = tokio::spawn(ratelimit::sweep(self.limiter, stop.clone()));
        // Scrapes are idempotent, so the metrics listener simply stops with the rest.
        let metrics = self.metrics.map(|(listener, addr)| {
            tracing::info!(addr = %addr, "metrics listening");
            let stop = stop.clone();
            tokio::spawn(async move {
                let serve = axum::serve(listener, routes::metrics_router())
                    .with_graceful_shutdown(stop.cancelled_owned());
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let signal = {
            let stop = stop.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: finishing in-flight requests");
                stop.cancel();
            }
        };
        tracing::info!(addr = %self.addr, "edge-gateway listening (HTTP/1.1 and h2c)");
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let grace = self.shutdown_grace;
        let deadline = {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                tokio::time::sleep(grace).await;
            }
        };
        let result = tokio::select! {
            result = server => result.map_err(StartupError::Serve),
            () = deadline => {
                tracing::warn!("requests still running after the grace period; stopping anyway");
                Ok(())
            }
        };
        stop.cancel();
        // Both end at once when cancelled; a scrape still running is cut short.
        for mut task in metrics.into_iter().chain([sweeper]) {
            if tokio::time::timeout(TASK_STOP, &mut task).await.is_err() {
                task.abort();
            }
        }
        tracing::info!("stopped");
        result
    }
}

/// Binds `addr` and returns the listener with the address it got (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    Ok((listener, bound))
}

fn metrics_handle_installed() {
    let _ = crate::metrics::handle();
}
