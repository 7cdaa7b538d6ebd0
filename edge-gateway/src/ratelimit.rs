//! Per-IP rate limit at the edge: a token bucket per client network (governor's GCRA), so one
//! client cannot flood the auth service. The service keeps its own per-account limits.
//!
//! An IPv4 client is one address; an IPv6 client is given a whole /64 (the smallest prefix an
//! ISP or a host hands out, RFC 6177), so it can take a fresh address for every request. The
//! bucket therefore belongs to the /64 ([`ClientNetwork`]).

use std::{
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};
use tokio_util::sync::CancellationToken;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::{client_ip::ClientIp, config::RateLimit, error::ApiError};

/// Buckets by client network.
pub type IpLimiter = DefaultKeyedRateLimiter<ClientNetwork>;

/// The key of a client's bucket: an IPv4 address, or the /64 an IPv6 address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNetwork(IpAddr);

impl ClientNetwork {
    /// The bucket of `ip`: its client network, as the auth service keys its own limits.
    pub fn of(ip: IpAddr) -> Self {
        Self(baatcheet_runtime::net::client_network(ip))
    }
}

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
    match limiter.check_key(&ClientNetwork::of(ip)) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            crate::metrics::refused("rate_limited");
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs() + 1).into_response()
        }
    }
}

/// Forgets networks whose buckets are full again, so memory follows the active clients.
pub async fn sweep(limiter: Arc<IpLimiter>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(ip: &str) -> ClientNetwork {
        ClientNetwork::of(ip.parse().unwrap())
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_64() {
        let home = network("2001:db8:1:2::1");
        for same in [
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff:ffff:ffff:ffff",
            "2001:db8:1:2:a:b:c:d",
        ] {
            assert_eq!(network(same), home, "{same}");
        }
        assert_eq!(home, ClientNetwork("2001:db8:1:2::".parse().unwrap()));
        for other in ["2001:db8:1:3::1", "2001:db8:2:2::1", "::1"] {
            assert_ne!(network(other), home, "{other}");
        }
    }

    #[test]
    fn ipv4_addresses_stand_alone_even_when_mapped() {
        assert_ne!(network("192.0.2.1"), network("192.0.2.2"));
        assert_eq!(network("::ffff:192.0.2.1"), network("192.0.2.1"));
        assert_ne!(network("::ffff:192.0.2.1"), network("::ffff:192.0.2.2"));
    }

    #[test]
    fn one_network_shares_one_bucket() {
        // A clock that stands still: no bucket refills while the test runs.
        let limiter = RateLimiter::dashmap_with_clock(
            Quota::per_second(NonZeroU32::MIN).allow_burst(NonZeroU32::new(2).unwrap()),
            governor::clock::FakeRelativeClock::default(),
        );
        let check = |ip: &str| limiter.check_key(&network(ip)).is_ok();
        assert!(check("2001:db8:1:2::1"));
        assert!(check("2001:db8:1:2::2"));
        assert!(!check("2001:db8:1:2::3"), "a third address of the same /64");
        assert!(check("2001:db8:1:3::1"), "another /64 has its own bucket");
        assert!(check("192.0.2.1") && check("192.0.2.2") && check("192.0.2.3"));
    }
}
