//! The network a request comes from, as the core's per-network bounds count it (sign-in
//! lockout, pending authorizations): the gateway determines the user agent's address (its
//! trusted-proxy rules live there) and passes it on, and the core counts it by the network
//! rule of [`latchkey_network`], the one shared with the gateway's own bounds.

use latchkey_network::Network;
use std::fmt;

/// A client's network ([`Network::of`]) with its text form, which keys and logs use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientNetwork {
    network: Network,
    text: String,
}

impl ClientNetwork {
    pub fn from_ip(ip: std::net::IpAddr) -> Self {
        Self::from(Network::of(ip))
    }

    /// The network of an address written as text (`192.0.2.1`, `2001:db8::1`); `None` when
    /// it is not an IP address.
    pub fn parse(address: &str) -> Option<Self> {
        Network::of_address(address).map(Self::from)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn network(&self) -> Network {
        self.network
    }
}

impl From<Network> for ClientNetwork {
    fn from(network: Network) -> Self {
        Self {
            network,
            text: network.to_string(),
        }
    }
}

impl fmt::Display for ClientNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::ClientNetwork;

    #[test]
    fn the_text_is_the_shared_rules_and_addresses_that_are_not_ip_are_refused() {
        let n = ClientNetwork::parse(" 2001:db8:1:2:aaaa::1 ").expect("an address");
        assert_eq!(n.as_str(), "2001:db8:1:2::/64");
        assert_eq!(n.as_str(), n.network().to_string());
        assert_eq!(
            ClientNetwork::parse("::ffff:192.0.2.7").map(|n| n.to_string()),
            Some("192.0.2.7".into())
        );
        for bad in ["", "localhost", "1.2.3.4:80", "2001:db8::/64"] {
            assert!(ClientNetwork::parse(bad).is_none(), "{bad:?}");
        }
    }
}
