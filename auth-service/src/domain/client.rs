//! Who is calling from where: the address and user agent the gRPC layer established (believing
//! `x-client-ip` only from `TRUSTED_PROXIES`). Sessions record them; the per-network limits key
//! on [`ClientInfo::network`], which groups IPv6 by /64 (`baatcheet_runtime::net`).

use std::net::IpAddr;

/// Who is calling from where, as the transport established it (see `grpc::client_info`):
/// recorded on new sessions and used to key the per-client limits.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: String,
}

impl ClientInfo {
    /// The key of the client's network for rate limits: the IPv4 address, or the /64 of an
    /// IPv6 address (one subscriber usually holds a whole /64 and can rotate inside it).
    pub fn network(&self) -> String {
        match self.ip.map(baatcheet_runtime::net::client_network) {
            // Every group written out (no `::` for zero groups), as the keys have always been
            // spelled: a new spelling would give each network a fresh budget on deploy, and
            // two during a rolling one.
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(v4) => v4.to_string(),
            None => "unknown".to_owned(),
        }
    }

    /// The address as text, for the session record.
    pub fn ip_text(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str) -> String {
        ClientInfo {
            ip: Some(ip.parse().unwrap()),
            user_agent: String::new(),
        }
        .network()
    }

    #[test]
    fn ipv6_is_grouped_by_64() {
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:0:5::1"), "2001:db8:1:0::/64");
        assert_eq!(net("64:ff9b::1"), "64:ff9b:0:0::/64");
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(net("192.0.2.7"), "192.0.2.7");
        assert_eq!(ClientInfo::default().network(), "unknown");
    }
}
