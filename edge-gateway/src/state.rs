//! What every handler shares: the configuration and the clients over the connections to the auth
//! service (a small pool of HTTP/2 connections, see [`crate::pool`]).

use std::sync::Arc;

use baatcheet_auth_api::v1::auth_service_client::AuthServiceClient;
use tonic_health::pb::health_client::HealthClient;

use crate::config::{Config, CookiePolicy};
use crate::pool::ConnectionPool;

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    config: Config,
    auth: AuthServiceClient<ConnectionPool>,
    health: HealthClient<ConnectionPool>,
}

impl AppState {
    /// Both clients share the pool's connections to the auth service.
    pub fn new(config: Config, pool: ConnectionPool) -> Self {
        Self(Arc::new(Shared {
            config,
            auth: AuthServiceClient::new(pool.clone()),
            health: HealthClient::new(pool),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn cookies(&self) -> &CookiePolicy {
        &self.0.config.browser.cookies
    }

    /// A client over the shared pool (clones are cheap and share its connections).
    pub fn auth(&self) -> AuthServiceClient<ConnectionPool> {
        self.0.auth.clone()
    }

    pub fn health(&self) -> HealthClient<ConnectionPool> {
        self.0.health.clone()
    }
}
