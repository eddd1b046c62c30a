//! The network a client is counted by, for every per-client bound in Latchkey: rate limits
//! and connection shares in the gateway, sign-in lockout and pending authorizations in the
//! core. This crate owns that one rule, and nothing else belongs in it.
//!
//! - An IPv4 address is its own network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
//!   dual-stack socket reports) is the IPv4 address it carries.
//! - An IPv6 address counts by its /64. A host usually holds a whole /64 and can pick any
//!   address in it, so counting single IPv6 addresses would give one host 2^64 buckets.
//! - The *wider* network is what a bound falls back to when counting by network is not enough:
//!   an IPv6 /48, what one site is usually given (a holder of one has 65,536 /64s), and an
//!   IPv4 /24.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: an address with the bits past its prefix cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// The prefix of a client's own network, and of its wider network.
const V4_OWN: u8 = 32;
const V4_WIDER: u8 = 24;
const V6_OWN: u8 = 64;
const V6_WIDER: u8 = 48;

impl Network {
    /// The network `ip` is counted in.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::v4(v4, V4_OWN),
            IpAddr::V6(v6) => Self::v6(v6, V6_OWN),
        }
    }

    /// The network of an address written as text (`192.0.2.1`, `2001:db8::1`, surrounding
    /// white space ignored); `None` when it is not an IP address.
    pub fn of_address(address: &str) -> Option<Self> {
        address.trim().parse::<IpAddr>().ok().map(Self::of)
    }

    /// The wider network this one lies in: an IPv6 /48, an IPv4 /24. A wider network is its
    /// own wider network.
    pub fn wider(self) -> Self {
        match self.addr {
            IpAddr::V4(a) => Self::v4(a, self.prefix.min(V4_WIDER)),
            IpAddr::V6(a) => Self::v6(a, self.prefix.min(V6_WIDER)),
        }
    }

    /// The wider network a bound counts as well: an IPv6 /48, whose holder has 65,536 /64s.
    /// `None` for IPv4: addresses are scarce, and a /24 is often one shared NAT pool, so an
    /// IPv4 /24 is counted only as a fallback when a table of addresses is full.
    pub fn counted_wider(self) -> Option<Self> {
        self.is_ipv6().then(|| self.wider())
    }

    pub fn is_ipv6(self) -> bool {
        self.addr.is_ipv6()
    }

    fn v4(a: Ipv4Addr, prefix: u8) -> Self {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Self {
            addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)),
            prefix,
        }
    }

    fn v6(a: Ipv6Addr, prefix: u8) -> Self {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        Self {
            addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)),
            prefix,
        }
    }
}

/// `192.0.2.7` for a client's own IPv4 network, `address/prefix` otherwise
/// (`2001:db8:1:2::/64`, `2001:db8:1::/48`, `192.0.2.0/24`).
impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) if self.prefix == V4_OWN => write!(f, "{a}"),
            a => write!(f, "{a}/{}", self.prefix),
        }
    }
}

/// Not a network as [`Network`] writes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotANetwork;

impl fmt::Display for NotANetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a client network")
    }
}

impl std::error::Error for NotANetwork {}

/// Reads back what [`Network`]'s `Display` writes (in any spelling of the address): a client's
/// own network or a wider one, with no bits set past the prefix.
impl FromStr for Network {
    type Err = NotANetwork;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            None => (s, None),
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| NotANetwork)?)),
        };
        let addr = addr.parse::<IpAddr>().map_err(|_| NotANetwork)?;
        let net = match (addr, prefix) {
            (IpAddr::V4(a), None) => Self::v4(a, V4_OWN),
            (IpAddr::V4(a), Some(V4_WIDER)) => Self::v4(a, V4_WIDER),
            (IpAddr::V6(a), Some(p @ (V6_OWN | V6_WIDER))) if a.to_ipv4_mapped().is_none() => {
                Self::v6(a, p)
            }
            _ => return Err(NotANetwork),
        };
        if net.addr == addr {
            Ok(net)
        } else {
            Err(NotANetwork)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Network;
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn net(a: &str) -> String {
        Network::of_address(a).expect("an address").to_string()
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
            assert!(Network::of_address(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_wider_network_is_an_ipv6_48_or_an_ipv4_24() {
        let wider = |a: &str| {
            Network::of_address(a)
                .expect("an address")
                .wider()
                .to_string()
        };
        assert_eq!(wider("2001:db8:1:2:aaaa::1"), "2001:db8:1::/48");
        assert_eq!(wider("2001:db8:1:ffff::1"), wider("2001:db8:1:2::1"));
        assert_ne!(wider("2001:db8:1::1"), wider("2001:db8:2::1"));
        assert_eq!(wider("192.0.2.7"), "192.0.2.0/24");
        assert_eq!(wider("::ffff:192.0.2.7"), "192.0.2.0/24");
        let w = Network::of_address("2001:db8::1")
            .expect("an address")
            .wider();
        assert_eq!(w.wider(), w);
        let own = |a: &str| Network::of_address(a).expect("an address");
        assert_eq!(
            own("2001:db8:1:2::1").counted_wider(),
            Some(own("2001:db8:1:2::1").wider())
        );
        assert_eq!(own("192.0.2.7").counted_wider(), None);
    }

    #[test]
    fn text_reads_back_as_a_network_only_with_its_own_prefix_and_nothing_past_it() {
        for good in [
            "192.0.2.7",
            "192.0.2.0/24",
            "2001:db8:1:2::/64",
            "2001:db8:1::/48",
        ] {
            let n: Network = good.parse().expect(good);
            assert_eq!(n.to_string(), good);
        }
        for bad in [
            "",
            "2001:db8::1",
            "192.0.2.7/24",
            "192.0.2.7/32",
            "2001:db8::1/64",
            "2001:db8::/56",
            "::ffff:192.0.2.0/64",
            " 192.0.2.7",
            "192.0.2.7/",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn networks_read_back_from_their_text_and_a_wider_network_is_its_own_wider(bits: u128, v4: bool) {
            let ip = if v4 { IpAddr::from(std::net::Ipv4Addr::from(bits as u32)) } else { IpAddr::from(std::net::Ipv6Addr::from(bits)) };
            let own = Network::of(ip);
            prop_assert_eq!(own.to_string().parse::<Network>(), Ok(own));
            prop_assert_eq!(own.wider().to_string().parse::<Network>(), Ok(own.wider()));
            prop_assert_eq!(Network::of(ip), Network::of(ip.to_canonical()));
            prop_assert_eq!(own.wider(), own.wider().wider());
        }
    }
}
