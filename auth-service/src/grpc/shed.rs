//! Load shedding: at most `GRPC_MAX_IN_FLIGHT` calls in progress on one instance. One more is
//! answered at once with RESOURCE_EXHAUSTED `SERVER_BUSY` (retry after 1 s) rather than
//! queued, so what waits behind the server (the hashing queue, the SQLite thread's queue, the
//! Redis and MongoDB pools' waiters) grows with at most that many calls (a call may hand a
//! few jobs to a store at once). Health checks are never refused, so a busy instance is not
//! taken for a dead one. One connection cannot take every place by itself: HTTP/2 streams
//! per connection are capped (`startup::MAX_STREAMS_PER_CONNECTION`).

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use crate::flows::FlowError;

/// The layer: one set of places shared by every connection.
#[derive(Clone)]
pub struct InFlightLayer {
    places: Arc<Semaphore>,
}

impl InFlightLayer {
    pub fn new(max: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlight {
            inner,
            places: self.places.clone(),
        }
    }
}

#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    places: Arc<Semaphore>,
}

impl<S, B> tower::Service<http::Request<B>> for InFlight<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with("/grpc.health.v1.Health/") {
            return Box::pin(self.inner.call(request));
        }
        match self.places.clone().try_acquire_owned() {
            Ok(place) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await;
                    drop(place);
                    response
                })
            }
            Err(_) => {
                let status = super::status::to_status(FlowError::Busy);
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
