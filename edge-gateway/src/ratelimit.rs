//! Per-IP rate limit at the edge: a token bucket per client address (governor's GCRA), so one
//! address cannot flood the auth service. The service keeps its own per-account limits.

use std::{
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::{client_ip::ClientIp, config::RateLimit, error::ApiError};

/// Buckets by client IP.
pub type IpLimiter = DefaultKeyedRateLimiter<IpAddr>;

pub fn limiter(limit: RateLimit) -> Arc<IpLimiter> {
    let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

/// Middleware: 429 in the error shape, with `Retry-After`, once an address's bucket is empty.
pub async fn limit(
    State(limiter): State<Arc<IpLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
    match limiter.check_key(&ip) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            crate::metrics::refused("rate_limited");
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs() + 1).into_response()
        }
    }
}

/// Forgets addresses whose buckets are full again, so memory follows the active clients.
pub async fn sweep(limiter: Arc<IpLimiter>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}
