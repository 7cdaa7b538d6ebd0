//! The client network a limit is keyed by.

use std::net::{IpAddr, Ipv6Addr};

/// The network of a client address: an IPv4 address itself, an IPv6 address's /64 (one
/// subscriber usually holds a whole /64 and can rotate inside it). An IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.1`, what a dual-stack socket reports) is its IPv4 address: grouped by /64,
/// every IPv4 client would share one network.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str) -> IpAddr {
        client_network(ip.parse().unwrap())
    }

    #[test]
    fn ipv6_by_64_and_ipv4_as_is() {
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7"));
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7");
    }
}
