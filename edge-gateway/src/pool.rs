//! The connections to the auth service: a fixed number of HTTP/2 connections, used in turn, so
//! that whatever closes one fails only the calls in flight on it.
//!
//! Each connection is its own lazy tonic [`Channel`]: it connects at its first call, and after
//! it is lost the next call on it connects again at once, without failing. A connection that
//! cannot connect fails the call that asked for it, and only that call.
//!
//! Not tonic's `Channel::balance_list` / `balance_channel`: `balance_list` keys endpoints by URI,
//! so identical endpoints collapse into one connection; and the balancer behind both polls every
//! connection's readiness in the background. During an outage each connection then records a
//! connect error that no call asked for, and hands it to whichever call picks that connection
//! next, long after the service is back: one failed call per connection after every outage.
//!
//! Every call through the pool, whichever client makes it (auth, health), carries the gateway's
//! service credential when it has one ([`ConnectionPool::with_service_authorization`]).
//!
//! At most `MAX_IN_FLIGHT` calls are in flight to the service ([`ConnectionPool::with_max_in_flight`]):
//! one more is answered at once, without leaving the gateway, as UNAVAILABLE `SERVER_BUSY` with
//! a retry delay of 1 s (503 with `Retry-After: 1` to the browser), so nothing queues in front
//! of a saturated service. A place is taken only for the call itself, once the request body has
//! been read: a client that sends its body slowly holds none. Health checks are never refused.

use std::{
    future::{Future, poll_fn},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tonic::{
    body::Body,
    transport::{Channel, Endpoint},
};
use tonic_types::{ErrorDetails, StatusExt};
use tower::Service;

/// Metadata the gateway proves itself with to a service that has SERVICE_TOKENS: such a service
/// believes `x-client-ip` and `x-client-user-agent` only from a caller that sends one of them.
/// The pool adds it to every call ([`ConnectionPool`]); browsers cannot set it.
pub const SERVICE_AUTHORIZATION: &str = "x-service-authorization";

/// The value of [`SERVICE_AUTHORIZATION`] for a token (AUTH_SERVICE_TOKEN), marked sensitive so
/// that no `Debug` shows it and HTTP/2 never puts it in its header table. `None` when the token
/// does not make a header value; the configuration refuses such a token at startup.
pub fn service_authorization(token: &SecretString) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Cheap to clone: every clone uses the same connections.
#[derive(Clone)]
pub struct ConnectionPool {
    connections: Arc<[Channel]>,
    next: Arc<AtomicUsize>,
    /// `Bearer <service token>`, marked sensitive (never indexed by HPACK, `Debug` hides it).
    service_authorization: Option<HeaderValue>,
    /// The places of calls in flight (MAX_IN_FLIGHT).
    places: Arc<Semaphore>,
}

impl ConnectionPool {
    /// `size` lazy connections to `endpoint` (at least one). Needs a Tokio runtime.
    pub fn lazy(endpoint: &Endpoint, size: usize) -> Self {
        Self {
            connections: (0..size.max(1)).map(|_| endpoint.connect_lazy()).collect(),
            next: Arc::new(AtomicUsize::new(0)),
            service_authorization: None,
            places: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
        }
    }

    /// At most `max` calls in flight; one more is answered SERVER_BUSY at once.
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.places = Arc::new(Semaphore::new(max.max(1)));
        self
    }

    /// Sends `value` (see [`service_authorization`]) as
    /// `x-service-authorization` on every call, replacing any such header a call has.
    pub fn with_service_authorization(mut self, value: Option<HeaderValue>) -> Self {
        self.service_authorization = value;
        self
    }
}

impl Service<http::Request<Body>> for ConnectionPool {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// Always ready: each call waits for its own connection in [`Service::call`].
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if let Some(value) = &self.service_authorization {
            request
                .headers_mut()
                .insert(SERVICE_AUTHORIZATION, value.clone());
        }
        let health = request.uri().path().starts_with("/grpc.health.v1.Health/");
        let place = match self.places.clone().try_acquire_owned() {
            Ok(place) => Some(place),
            Err(_) if health => None,
            Err(_) => {
                crate::metrics::refused("busy");
                return Box::pin(std::future::ready(Ok(busy())));
            }
        };
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut connection = self.connections[index].clone();
        Box::pin(async move {
            poll_fn(|cx| connection.poll_ready(cx)).await?;
            let response = connection.call(request).await;
            drop(place);
            response
        })
    }
}

/// The ErrorInfo domain of [`busy`]: a refusal of the gateway's own, not of the service.
pub const EDGE_DOMAIN: &str = "edge.baatcheet";

/// Whether `status` is the pool's own refusal ([`busy`]): the call never reached the service.
pub fn is_own_refusal(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable
        && status
            .get_error_details()
            .error_info()
            .is_some_and(|info| info.domain == EDGE_DOMAIN)
}

/// MAX_IN_FLIGHT by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// The answer to a call past MAX_IN_FLIGHT, as the service would give it: UNAVAILABLE with the
/// reason SERVER_BUSY and a retry delay of 1 s (the error mapping makes it 503 `SERVER_BUSY`,
/// `Retry-After: 1`).
fn busy() -> http::Response<Body> {
    let mut details = ErrorDetails::new();
    details.set_error_info("SERVER_BUSY", EDGE_DOMAIN, std::collections::HashMap::new());
    details.set_retry_info(Some(std::time::Duration::from_secs(1)));
    tonic::Status::with_error_details(
        tonic::Code::Unavailable,
        "the gateway has MAX_IN_FLIGHT calls to the auth service in flight; try again shortly",
        details,
    )
    .into_http()
}
