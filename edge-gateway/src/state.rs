//! What every handler shares: the configuration and the clients over the one channel to the auth
//! service (a small pool of HTTP/2 connections, see `startup`).

use std::sync::Arc;

use baatcheet_auth_api::v1::auth_service_client::AuthServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::config::{Config, CookiePolicy};

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    config: Config,
    auth: AuthServiceClient<Channel>,
    health: HealthClient<Channel>,
}

impl AppState {
    /// Both clients share `channel` and its connections to the auth service.
    pub fn new(config: Config, channel: Channel) -> Self {
        Self(Arc::new(Shared {
            config,
            auth: AuthServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn cookies(&self) -> &CookiePolicy {
        &self.0.config.cookies
    }

    /// A handle on the shared channel (clones are cheap and share its connections).
    pub fn auth(&self) -> AuthServiceClient<Channel> {
        self.0.auth.clone()
    }

    pub fn health(&self) -> HealthClient<Channel> {
        self.0.health.clone()
    }
}
