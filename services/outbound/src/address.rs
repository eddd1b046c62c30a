//! Which IP addresses a fetch may connect to. This is the SSRF rule: every address a name
//! resolves to, and every IP literal in a URL, passes through [`check`] before a socket is
//! opened. Nothing else in the crate decides what an address is.
//!
//! For [`Targets::Public`] (URLs that clients supply) only public unicast addresses pass.
//! IPv4 ranges refused: 0.0.0.0/8, 10/8, 100.64/10 (CGNAT, which also holds Alibaba's
//! metadata address 100.100.100.200), 127/8, 169.254/16 (with 169.254.169.254 named as the
//! cloud metadata address), 172.16/12, 192.0.0/24 (IETF protocol assignments, holding
//! Oracle's metadata address 192.0.0.192), 192.0.2/24, 192.88.99/24 (the retired 6to4 relay
//! anycast), 192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24, 224/4, 240/4 and
//! 255.255.255.255.
//!
//! IPv6 is an allow list: only 2000::/3, the space allocated for global unicast, passes, less
//! 2001::/23 (IETF protocol assignments: Teredo, ORCHID, benchmarking 2001:2::/48),
//! 2001:db8::/32 and 3fff::/20 (documentation). Outside 2000::/3 every address is refused
//! (::/8 with loopback, IPv4-mapped and IPv4-compatible forms, 100::/64, 5f00::/16, fc00::/7
//! with AWS's metadata address fd00:ec2::254, fec0::/10, fe80::/10, ff00::/8), except the
//! NAT64 prefix 64:ff9b::/96, which a DNS64 resolver hands out on IPv6-only networks: it is
//! judged by the IPv4 address it carries. So is 6to4 (2002::/16). IPv4-mapped
//! (::ffff:0:0/96) and IPv4-compatible (::/96) addresses are refused outright: no public
//! name has one, and on a dual-stack socket they reach the IPv4 address they carry.
//!
//! For [`Targets::Any`] (URLs an operator configured, which may be inside the cluster) only
//! what is never a server is refused: the unspecified address (a connection to 0.0.0.0
//! reaches the host itself on Linux), multicast, broadcast and the cloud metadata addresses,
//! in every form that carries them.

use crate::policy::Targets;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public unicast one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), RFC 4193 unique local (fc00::/7) and the
    /// deprecated site-local fec0::/10.
    Private,
    /// RFC 6598 shared address space, 100.64.0.0/10 (carrier-grade NAT).
    SharedAddressSpace,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// The instance metadata service of the clouds: 169.254.169.254, fd00:ec2::254.
    CloudMetadata,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// RFC 5737 and RFC 3849/9637: 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32,
    /// 3fff::/20.
    Documentation,
    /// RFC 2544 and RFC 5180: 198.18/15, 2001:2::/48.
    Benchmarking,
    /// Reserved or special-purpose space that is not public unicast: 0/8, 192.0.0/24,
    /// 192.88.99/24, 240/4, 2001::/23, 64:ff9b:1::/48, and IPv6 outside 2000::/3.
    Reserved,
    /// ::ffff:0:0/96.
    Ipv4Mapped,
    /// ::/96, the deprecated IPv4-compatible form.
    Ipv4Compatible,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "the unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::SharedAddressSpace => "a carrier-grade NAT address",
            Self::LinkLocal => "a link-local address",
            Self::CloudMetadata => "the cloud metadata address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved address",
            Self::Ipv4Mapped => "an IPv4-mapped IPv6 address",
            Self::Ipv4Compatible => "an IPv4-compatible IPv6 address",
        })
    }
}

/// An IPv6 form that carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// ::ffff:a.b.c.d
    Ipv4Mapped,
    /// ::a.b.c.d
    Ipv4Compatible,
    /// 64:ff9b::a.b.c.d (RFC 6052).
    Nat64,
    /// 2002:aabb:ccdd::/48 (RFC 3056).
    SixToFour,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Compatible => "IPv4-compatible",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
        })
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Refusal {
    pub class: AddressClass,
    /// Set when an IPv6 address was judged by the IPv4 address it carries.
    pub via: Option<(Embedding, Ipv4Addr)>,
}

impl Refusal {
    fn direct(class: AddressClass) -> Self {
        Self { class, via: None }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            None => write!(f, "{}", self.class),
            Some((form, v4)) => write!(f, "{} ({v4}, carried in {form} form)", self.class),
        }
    }
}

/// Whether a fetch to `targets` may connect to `ip`. `allow_loopback` is the development
/// switch: it lets 127.0.0.0/8 and `::1` through for [`Targets::Public`], written plainly.
/// An IPv4-mapped or NAT64 form of a loopback address is still refused.
pub fn check(ip: IpAddr, targets: Targets, allow_loopback: bool) -> Result<(), Refusal> {
    match targets {
        Targets::Public => match classify(ip) {
            None => Ok(()),
            Some(r) if allow_loopback && r.class == AddressClass::Loopback && r.via.is_none() => {
                Ok(())
            }
            Some(r) => Err(r),
        },
        Targets::Any => check_any(ip),
    }
}

/// The strict judgement, for [`Targets::Public`]: `None` for a public unicast address, else
/// why not.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(a) => classify_v4(a).map(Refusal::direct),
        IpAddr::V6(a) => classify_v6(a),
    }
}

/// The classes refused even for operator-configured targets.
fn refused_for_any(class: AddressClass) -> bool {
    matches!(
        class,
        AddressClass::Unspecified
            | AddressClass::Multicast
            | AddressClass::Broadcast
            | AddressClass::CloudMetadata
    )
}

fn check_any(ip: IpAddr) -> Result<(), Refusal> {
    let own = match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a).map(|r| r.class),
    };
    if let Some(class) = own.filter(|c| refused_for_any(*c)) {
        return Err(Refusal::direct(class));
    }
    // Every IPv6 form that carries an IPv4 address is judged by it too, so that
    // ::ffff:169.254.169.254 is the metadata address it reaches.
    if let IpAddr::V6(a) = ip
        && let Some((form, v4)) = embedded_v4(a)
        && let Some(class) = classify_v4(v4).filter(|c| refused_for_any(*c))
    {
        return Err(Refusal {
            class,
            via: Some((form, v4)),
        });
    }
    Ok(())
}

/// An IPv4 network: address, prefix length, class. First match wins, so the single
/// addresses come before the ranges that hold them.
const V4_RANGES: &[([u8; 4], u8, AddressClass)] = &[
    ([0, 0, 0, 0], 32, AddressClass::Unspecified),
    ([255, 255, 255, 255], 32, AddressClass::Broadcast),
    ([169, 254, 169, 254], 32, AddressClass::CloudMetadata),
    ([0, 0, 0, 0], 8, AddressClass::Reserved),
    ([10, 0, 0, 0], 8, AddressClass::Private),
    ([100, 64, 0, 0], 10, AddressClass::SharedAddressSpace),
    ([127, 0, 0, 0], 8, AddressClass::Loopback),
    ([169, 254, 0, 0], 16, AddressClass::LinkLocal),
    ([172, 16, 0, 0], 12, AddressClass::Private),
    ([192, 0, 0, 0], 24, AddressClass::Reserved),
    ([192, 0, 2, 0], 24, AddressClass::Documentation),
    ([192, 88, 99, 0], 24, AddressClass::Reserved),
    ([192, 168, 0, 0], 16, AddressClass::Private),
    ([198, 18, 0, 0], 15, AddressClass::Benchmarking),
    ([198, 51, 100, 0], 24, AddressClass::Documentation),
    ([203, 0, 113, 0], 24, AddressClass::Documentation),
    ([224, 0, 0, 0], 4, AddressClass::Multicast),
    ([240, 0, 0, 0], 4, AddressClass::Reserved),
];

fn classify_v4(a: Ipv4Addr) -> Option<AddressClass> {
    let n = u32::from(a);
    V4_RANGES.iter().find_map(|(net, prefix, class)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
        (n & mask == u32::from_be_bytes(*net)).then_some(*class)
    })
}

/// An IPv6 network, as [`V4_RANGES`]. Everything outside 2000::/3 that is not listed is
/// [`AddressClass::Reserved`]; the NAT64 and 6to4 prefixes are handled before this table.
const V6_RANGES: &[(u128, u8, AddressClass)] = &[
    (
        0xfd00_0ec2_0000_0000_0000_0000_0000_0254,
        128,
        AddressClass::CloudMetadata,
    ),
    (0, 128, AddressClass::Unspecified),
    (1, 128, AddressClass::Loopback),
    (0xffff_0000_0000, 96, AddressClass::Ipv4Mapped),
    (0, 96, AddressClass::Ipv4Compatible),
    (
        0x2001_0002_0000_0000_0000_0000_0000_0000,
        48,
        AddressClass::Benchmarking,
    ),
    (
        0x2001_0000_0000_0000_0000_0000_0000_0000,
        23,
        AddressClass::Reserved,
    ),
    (
        0x2001_0db8_0000_0000_0000_0000_0000_0000,
        32,
        AddressClass::Documentation,
    ),
    (
        0x3fff_0000_0000_0000_0000_0000_0000_0000,
        20,
        AddressClass::Documentation,
    ),
    (
        0xfc00_0000_0000_0000_0000_0000_0000_0000,
        7,
        AddressClass::Private,
    ),
    (
        0xfec0_0000_0000_0000_0000_0000_0000_0000,
        10,
        AddressClass::Private,
    ),
    (
        0xfe80_0000_0000_0000_0000_0000_0000_0000,
        10,
        AddressClass::LinkLocal,
    ),
    (
        0xff00_0000_0000_0000_0000_0000_0000_0000,
        8,
        AddressClass::Multicast,
    ),
];

const NAT64: (u128, u8) = (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96);
const SIX_TO_FOUR: (u128, u8) = (0x2002_0000_0000_0000_0000_0000_0000_0000, 16);
const GLOBAL_UNICAST: (u128, u8) = (0x2000_0000_0000_0000_0000_0000_0000_0000, 3);

fn in_v6(n: u128, (net, prefix): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    n & mask == net
}

fn classify_v6(a: Ipv6Addr) -> Option<Refusal> {
    let n = u128::from(a);
    // RFC 6052 §2.2 and RFC 3056 §2: the IPv4 address these carry is where the packets go,
    // so it is the address judged.
    if in_v6(n, NAT64) || in_v6(n, SIX_TO_FOUR) {
        let (form, v4) = embedded_v4(a)?;
        return classify_v4(v4).map(|class| Refusal {
            class,
            via: Some((form, v4)),
        });
    }
    if let Some(class) = V6_RANGES
        .iter()
        .find_map(|(net, prefix, class)| in_v6(n, (*net, *prefix)).then_some(*class))
    {
        return Some(Refusal::direct(class));
    }
    if in_v6(n, GLOBAL_UNICAST) {
        None
    } else {
        Some(Refusal::direct(AddressClass::Reserved))
    }
}

/// The IPv4 address an IPv6 address carries, and in which form.
fn embedded_v4(a: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let n = u128::from(a);
    // Truncation intended: the low 32 bits are the carried address.
    let low = Ipv4Addr::from(n as u32);
    if let Some(v4) = a.to_ipv4_mapped() {
        Some((Embedding::Ipv4Mapped, v4))
    } else if in_v6(n, NAT64) {
        Some((Embedding::Nat64, low))
    } else if in_v6(n, SIX_TO_FOUR) {
        // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48.
        Some((Embedding::SixToFour, Ipv4Addr::from((n >> 80) as u32)))
    } else if in_v6(n, (0, 96)) && n > 1 {
        Some((Embedding::Ipv4Compatible, low))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    /// Every refused range, both families, at its edges where an edge is easy to get wrong,
    /// with the class it is refused as under `Targets::Public`; `None` is a public address.
    #[test]
    fn public_targets_refuse_every_special_range_and_pass_public_unicast() {
        let cases: &[(&str, Option<AddressClass>)] = &[
            // IPv4
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Reserved)),
            ("10.0.0.1", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("11.0.0.1", None),
            ("100.63.255.255", None),
            ("100.64.0.1", Some(SharedAddressSpace)),
            ("100.100.100.200", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("100.128.0.0", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("169.254.0.1", Some(LinkLocal)),
            ("169.254.169.254", Some(CloudMetadata)),
            ("169.254.170.2", Some(LinkLocal)),
            ("172.15.255.255", None),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.0", None),
            ("192.0.0.192", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("192.88.99.1", Some(Reserved)),
            ("192.168.1.1", Some(Private)),
            ("198.17.255.255", None),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("198.20.0.0", None),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("8.8.8.8", None),
            ("93.184.215.14", None),
            ("223.255.255.255", None),
            // IPv6
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Ipv4Mapped)),
            ("::ffff:8.8.8.8", Some(Ipv4Mapped)),
            ("::ffff:169.254.169.254", Some(Ipv4Mapped)),
            ("::127.0.0.1", Some(Ipv4Compatible)),
            ("::8.8.8.8", Some(Ipv4Compatible)),
            ("::1:0:0:0", Some(Reserved)),
            ("100::1", Some(Reserved)),
            ("5f00::1", Some(Reserved)),
            ("64:ff9b:1::1", Some(Reserved)),
            ("2001::1", Some(Reserved)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001:10::1", Some(Reserved)),
            ("2001:1ff:ffff::1", Some(Reserved)),
            ("2001:200::1", None),
            ("2001:db8::1", Some(Documentation)),
            ("2001:4860:4860::8888", None),
            ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
            ("3fff::1", Some(Documentation)),
            ("3fff:fff::1", Some(Documentation)),
            ("3fff:1000::1", None),
            ("4000::1", Some(Reserved)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fd00:ec2::254", Some(CloudMetadata)),
            ("fd00:ec2::253", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(Private)),
            ("ff02::1", Some(Multicast)),
            // NAT64 and 6to4 are judged by what they carry.
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b::127.0.0.1", Some(Loopback)),
            ("64:ff9b::10.0.0.1", Some(Private)),
            ("64:ff9b::169.254.169.254", Some(CloudMetadata)),
            ("64:ff9b::100.64.0.1", Some(SharedAddressSpace)),
            ("64:ff9b::192.168.0.1", Some(Private)),
            ("2002:0808:0808::1", None),
            ("2002:7f00:0001::1", Some(Loopback)),
            ("2002:a9fe:a9fe::1", Some(CloudMetadata)),
            ("2002:c0a8:0101::1", Some(Private)),
            ("2002:e000:0001::1", Some(Multicast)),
        ];
        for (addr, want) in cases {
            let got = classify(ip(addr)).map(|r| r.class);
            assert_eq!(got, *want, "{addr}");
            assert_eq!(
                check(ip(addr), Targets::Public, false).is_ok(),
                want.is_none(),
                "check agrees with classify for {addr}"
            );
        }
    }

    #[test]
    fn embedded_forms_name_the_address_they_carry() {
        let r = classify(ip("64:ff9b::a00:1")).expect("refused");
        assert_eq!(
            r.via,
            Some((Embedding::Nat64, Ipv4Addr::new(10, 0, 0, 1))),
            "NAT64 carries 10.0.0.1"
        );
        let r = classify(ip("2002:a9fe:a9fe::")).expect("refused");
        assert_eq!(
            r.via,
            Some((Embedding::SixToFour, Ipv4Addr::new(169, 254, 169, 254)))
        );
        assert_eq!(
            r.to_string(),
            "the cloud metadata address (169.254.169.254, carried in 6to4 form)"
        );
    }

    #[test]
    fn the_development_switch_lets_only_plain_loopback_through() {
        let cases: &[(&str, bool)] = &[
            ("127.0.0.1", true),
            ("127.1.2.3", true),
            ("::1", true),
            ("::ffff:127.0.0.1", false),
            ("64:ff9b::127.0.0.1", false),
            ("2002:7f00:1::", false),
            ("10.0.0.1", false),
            ("169.254.169.254", false),
            ("0.0.0.0", false),
            ("::", false),
        ];
        for (addr, passes) in cases {
            assert_eq!(
                check(ip(addr), Targets::Public, true).is_ok(),
                *passes,
                "{addr} with allow_loopback"
            );
        }
    }

    #[test]
    fn any_targets_refuse_only_what_is_never_a_server_in_every_form() {
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("10.0.0.1", None),
            ("127.0.0.1", None),
            ("::1", None),
            ("fd12::1", None),
            ("100.64.0.1", None),
            ("169.254.10.1", None),
            ("::ffff:10.1.2.3", None),
            ("8.8.8.8", None),
            ("0.0.0.0", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("224.0.0.1", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("169.254.169.254", Some(CloudMetadata)),
            ("fd00:ec2::254", Some(CloudMetadata)),
            ("::ffff:169.254.169.254", Some(CloudMetadata)),
            ("::169.254.169.254", Some(CloudMetadata)),
            ("64:ff9b::169.254.169.254", Some(CloudMetadata)),
            ("2002:a9fe:a9fe::1", Some(CloudMetadata)),
        ];
        for (addr, want) in cases {
            let got = check(ip(addr), Targets::Any, false).err().map(|r| r.class);
            assert_eq!(got, *want, "{addr} for Targets::Any");
        }
    }
}
