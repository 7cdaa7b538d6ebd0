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

use std::{
    future::{Future, poll_fn},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use tonic::{
    body::Body,
    transport::{Channel, Endpoint},
};
use tower::Service;

/// Cheap to clone: every clone uses the same connections.
#[derive(Clone)]
pub struct ConnectionPool {
    connections: Arc<[Channel]>,
    next: Arc<AtomicUsize>,
}

impl ConnectionPool {
    /// `size` lazy connections to `endpoint` (at least one). Needs a Tokio runtime.
    pub fn lazy(endpoint: &Endpoint, size: usize) -> Self {
        Self {
            connections: (0..size.max(1)).map(|_| endpoint.connect_lazy()).collect(),
            next: Arc::new(AtomicUsize::new(0)),
        }
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

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let mut connection = self.connections[index].clone();
        Box::pin(async move {
            poll_fn(|cx| connection.poll_ready(cx)).await?;
            connection.call(request).await
        })
    }
}
