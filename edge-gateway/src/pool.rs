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
use tonic::{
    body::Body,
    transport::{Channel, Endpoint},
};
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
}

impl ConnectionPool {
    /// `size` lazy connections to `endpoint` (at least one). Needs a Tokio runtime.
    pub fn lazy(endpoint: &Endpoint, size: usize) -> Self {
        Self {
            connections: (0..size.max(1)).map(|_| endpoint.connect_lazy()).collect(),
            next: Arc::new(AtomicUsize::new(0)),
            service_authorization: None,
        }
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
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut connection = self.connections[index].clone();
        Box::pin(async move {
            poll_fn(|cx| connection.poll_ready(cx)).await?;
            connection.call(request).await
        })
    }
}
