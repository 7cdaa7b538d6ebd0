//! The client's IP address: the TCP peer, or with `TRUST_PROXY` the address that the trusted
//! proxies recorded in `X-Forwarded-For`. Never the header alone, which anyone can write.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderMap,
    middleware::Next,
    response::Response,
};

/// Request extension set by [`resolve_client_ip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Middleware: puts [`ClientIp`] in the request's extensions. `hops` is how many proxies are
/// trusted (0 ignores `X-Forwarded-For`).
pub async fn resolve_client_ip(
    State(hops): State<usize>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let ip = client_ip(peer, request.headers(), hops);
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}

/// Each trusted proxy appends the address it saw, so the client is the entry `hops` places from
/// the right of `X-Forwarded-For` + peer. Entries further left were written by the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, hops: usize) -> IpAddr {
    if hops == 0 {
        return peer;
    }
    let mut chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if chain.is_empty() {
        return peer;
    }
    let index = chain.len().saturating_sub(hops);
    chain.truncate(index + 1);
    chain
        .last()
        .and_then(|entry| entry.parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn ignores_the_header_unless_trusted() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers("1.2.3.4"), 0), peer);
    }

    #[test]
    fn takes_the_entry_the_trusted_proxies_wrote() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |xff, hops| client_ip(peer, &headers(xff), hops).to_string();
        assert_eq!(ip("1.2.3.4", 1), "1.2.3.4");
        // The client wrote "6.6.6.6" itself; the proxy appended the real address.
        assert_eq!(ip("6.6.6.6, 1.2.3.4", 1), "1.2.3.4");
        assert_eq!(ip("6.6.6.6, 1.2.3.4, 10.0.0.9", 2), "1.2.3.4");
        // More hops than entries: the leftmost entry.
        assert_eq!(ip("1.2.3.4", 3), "1.2.3.4");
        assert_eq!(ip("not-an-ip", 1), "10.0.0.1");
    }
}
