//! Load shedding: at most `MAX_IN_FLIGHT` requests in progress on one gateway. One more is
//! answered at once, 503 SERVER_BUSY with `Retry-After`, rather than queued: a queue in front
//! of a saturated auth service only adds waiting to every answer, and memory to the gateway.
//! `/healthz` is never refused, so a busy gateway is not taken for a dead one.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The places of requests in progress.
#[derive(Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.max(1))))
    }
}

/// Middleware: holds a place while the request runs, or answers 503 when none is free.
pub async fn limit(State(places): State<InFlight>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    match places.0.clone().try_acquire_owned() {
        Ok(place) => {
            let response = next.run(request).await;
            drop(place);
            response
        }
        Err(_) => {
            crate::metrics::refused("busy");
            ApiError::busy(1).into_response()
        }
    }
}
