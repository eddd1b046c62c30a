//! The network a request comes from, as every per-network bound counts it: an IPv4
//! address, or an IPv6 /64.
//!
//! The gateway determines the user agent's address (its trusted-proxy rules live there) and
//! passes it on; the core derives the network here, and nowhere else. An IPv6 host usually
//! holds a whole /64 and can pick any address in it, so counting single IPv6 addresses would
//! give one host 2^64 buckets. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
//! dual-stack socket reports) is the IPv4 address it carries.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// An IPv4 address, or an IPv6 /64 prefix, in a canonical text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientNetwork(String);

impl ClientNetwork {
    pub fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(v4.to_string()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(v4.to_string()),
                None => {
                    let s = v6.segments();
                    let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    Self(format!("{prefix}/64"))
                }
            },
        }
    }

    /// The network of an address written as text (`192.0.2.1`, `2001:db8::1`); `None` when
    /// it is not an IP address.
    pub fn parse(address: &str) -> Option<Self> {
        address.trim().parse::<IpAddr>().ok().map(Self::from_ip)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ClientNetwork;

    fn net(a: &str) -> String {
        ClientNetwork::parse(a).expect("an address").to_string()
    }

    #[test]
    fn ipv4_counts_by_address_and_ipv6_by_its_64_prefix() {
        assert_eq!(net("192.0.2.7"), "192.0.2.7");
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"));
        assert_eq!(net("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7", "IPv4-mapped");
        assert_eq!(net(" 127.0.0.1 "), "127.0.0.1");
        for bad in [
            "",
            "localhost",
            "192.0.2.300",
            "2001:db8::/64",
            "1.2.3.4:80",
        ] {
            assert!(ClientNetwork::parse(bad).is_none(), "{bad:?}");
        }
    }
}
