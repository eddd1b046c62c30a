//! Who the client is, and what origin it asked for, behind proxies the operator trusts.
//!
//! Each proxy adds the address it received the request from to the right of the chain in
//! `X-Forwarded-For` (or as an element of RFC 7239 `Forwarded`). Whatever stands left of what
//! our own proxies wrote came from the client and proves nothing. So the client is found by
//! walking from the peer leftwards while the addresses are trusted proxies, and stopping at
//! the first that is not. A peer that is not a trusted proxy is the client, whatever its
//! headers say, and its `X-Forwarded-Host` and `X-Forwarded-Proto` are ignored too.
//!
//! Which header the proxies write is the operator's choice ([`ForwardedHeader`]), not guessed
//! per request: a proxy that writes one passes the other through from the client untouched.

use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// The header trusted proxies record the chain in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, with `X-Forwarded-Host` and `X-Forwarded-Proto` (nginx, Traefik,
    /// Envoy, cloud load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`, with its `for`, `host` and `proto` parameters.
    Forwarded,
}

/// The address ranges of the proxies whose forwarding headers are believed. Empty (the
/// default) believes none: the peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses, separated by commas or
    /// white space.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| canonical(net.trunc()))
                    .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn ranges(&self) -> &[IpNet] {
        &self.0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) as the IPv4 range it names: peers are
/// compared in their IPv4 form, so a mapped range would otherwise match nobody.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        net => net,
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    /// A string (`"10.0.0.0/8, 192.168.0.0/16"`, as the environment gives it) or a list.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let joined = match Raw::deserialize(d)? {
            Raw::One(s) => s,
            Raw::Many(v) => v.join(","),
        };
        Self::parse(&joined).map_err(serde::de::Error::custom)
    }
}

/// Which proxies are trusted, and which header they write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyTrust {
    pub proxies: TrustedProxies,
    pub header: ForwardedHeader,
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// address of the chain that is not one. If the chain ends, or holds something that is not an
/// address (`unknown`, an obfuscated identifier), before an untrusted address is reached,
/// the last address reached stands for the client: it is the nearest one known.
pub fn client_addr(headers: &HeaderMap, peer: IpAddr, trust: &ProxyTrust) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trust.proxies.contains(client) {
        return client;
    }
    let mut step = |hop: Option<IpAddr>| match hop {
        Some(ip) => {
            client = ip.to_canonical();
            trust.proxies.contains(client)
        }
        None => false,
    };
    match trust.header {
        ForwardedHeader::XForwardedFor => {
            'fields: for field in headers.get_all("x-forwarded-for").iter().rev() {
                let Ok(field) = field.to_str() else { break };
                for hop in field.rsplit(',') {
                    if !step(node_addr(hop.trim())) {
                        break 'fields;
                    }
                }
            }
        }
        ForwardedHeader::Forwarded => {
            'fields: for field in headers.get_all("forwarded").iter().rev() {
                let Ok(field) = field.to_str() else { break };
                for element in elements(field).rev() {
                    if !step(param(element, "for").and_then(node_addr)) {
                        break 'fields;
                    }
                }
            }
        }
    }
    client
}

/// The host and scheme the client asked for, as the nearest proxy reports them (the
/// right-most value): only when the peer is a trusted proxy, and only values that can be a
/// host (`name`, `name:port`, `[v6]:port`) and a scheme (`http`, `https`).
pub fn forwarded_origin<'h>(
    headers: &'h HeaderMap,
    peer: IpAddr,
    trust: &ProxyTrust,
) -> (Option<&'h str>, Option<&'h str>) {
    if !trust.proxies.contains(peer) {
        return (None, None);
    }
    let (host, proto) = match trust.header {
        ForwardedHeader::XForwardedFor => {
            let last = |name: &str| {
                headers
                    .get_all(name)
                    .iter()
                    .next_back()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(',').next())
                    .map(str::trim)
            };
            (last("x-forwarded-host"), last("x-forwarded-proto"))
        }
        ForwardedHeader::Forwarded => {
            let element = headers
                .get_all("forwarded")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| elements(v).next_back());
            (
                element.and_then(|e| param(e, "host")),
                element.and_then(|e| param(e, "proto")),
            )
        }
    };
    let host = host.filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    });
    let proto = proto.filter(|p| p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("http"));
    (host, proto)
}

/// The peer of a request, as the server recorded it.
pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// An address in a chain: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]:8080`,
/// quoted or not. `None` for `unknown`, obfuscated identifiers (`_hidden`) and anything else.
fn node_addr(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The value of `name` in one `Forwarded` element (`for=…;proto=…;host=…`), unquoted.
fn param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        let v = match v.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"')?,
            None => v,
        };
        // A quote left inside is a quoted-string that does not close where it should: the
        // element is not one a proxy wrote. A quoted-pair would need unescaping; no address
        // or host has one.
        (!v.contains('"') && !v.contains('\\')).then_some(v)
    })
}

/// The elements of a `Forwarded` value, split at every comma. RFC 7239 lets a
/// quoted-string hold a comma, but no `for`, `host` or `proto` value does, and honouring
/// quotes would let a client's unclosed quote swallow the element a trusted proxy appended
/// after it (`for=6.6.6.6;x=", for=<the real client>`), and so name its own address.
fn elements(value: &str) -> impl DoubleEndedIterator<Item = &str> {
    value.split(',')
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trust(ranges: &str, header: ForwardedHeader) -> ProxyTrust {
        ProxyTrust {
            proxies: TrustedProxies::parse(ranges).expect("ranges"),
            header,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_client_is_the_right_most_address_that_is_not_a_trusted_proxy() {
        use ForwardedHeader::*;
        let proxies = "10.0.0.0/8, fd00::/8";
        // (peer, headers, mode, the client, why)
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            ForwardedHeader,
            &'a str,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                "10.0.0.1",
                &[],
                XForwardedFor,
                "10.0.0.1",
                "a trusted peer with no header",
            ),
            (
                "10.0.0.1",
                &[("forwarded", "for=6.6.6.6;x=\", for=198.51.100.1")],
                Forwarded,
                "198.51.100.1",
                "a client's unclosed quote does not swallow the element the proxy appended",
            ),
            (
                "10.0.0.1",
                &[("forwarded", "for=\"6.6.6.6, for=10.0.0.2")],
                Forwarded,
                "10.0.0.2",
                "an element with an unclosed quote names nobody: the walk stops at the last proxy",
            ),
            (
                "203.0.113.9",
                &[("x-forwarded-for", "198.51.100.1")],
                XForwardedFor,
                "203.0.113.9",
                "an untrusted peer's header is ignored",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "198.51.100.1")],
                XForwardedFor,
                "198.51.100.1",
                "one proxy",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.1")],
                XForwardedFor,
                "198.51.100.1",
                "a spoofed left-most value",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.1.2.3")],
                XForwardedFor,
                "198.51.100.1",
                "two proxies",
            ),
            (
                "10.0.0.1",
                &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "198.51.100.1"),
                ],
                XForwardedFor,
                "198.51.100.1",
                "two fields, in order",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "6.6.6.6, unknown")],
                XForwardedFor,
                "10.0.0.1",
                "an unknown hop stops the walk at the proxy",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "10.9.9.9, 10.8.8.8")],
                XForwardedFor,
                "10.9.9.9",
                "every hop trusted: the left-most",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "198.51.100.1:4711")],
                XForwardedFor,
                "198.51.100.1",
                "an address with a port",
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "[2001:db8::1]:4711")],
                XForwardedFor,
                "2001:db8::1",
                "a bracketed IPv6 address with a port",
            ),
            (
                "::ffff:10.0.0.1",
                &[("x-forwarded-for", "198.51.100.1")],
                XForwardedFor,
                "198.51.100.1",
                "an IPv4-mapped peer",
            ),
            (
                "10.0.0.1",
                &[("forwarded", "for=198.51.100.1")],
                XForwardedFor,
                "10.0.0.1",
                "Forwarded is not read in X-Forwarded-For mode",
            ),
            (
                "10.0.0.1",
                &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("forwarded", "for=198.51.100.1;proto=https"),
                ],
                Forwarded,
                "198.51.100.1",
                "X-Forwarded-For is not read in Forwarded mode",
            ),
            (
                "10.0.0.1",
                &[(
                    "forwarded",
                    "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https",
                )],
                Forwarded,
                "2001:db8:cafe::17",
                "RFC 7239 §4 example",
            ),
            (
                "10.0.0.1",
                &[("forwarded", "for=6.6.6.6;by=\"a,b\", for=10.2.2.2")],
                Forwarded,
                "10.2.2.2",
                "a quoted comma splits too (no for, host or proto holds one): the walk stops at the last proxy",
            ),
            (
                "10.0.0.1",
                &[("forwarded", "for=6.6.6.6, for=_hidden")],
                Forwarded,
                "10.0.0.1",
                "an obfuscated hop stops the walk",
            ),
            (
                "fd00::1",
                &[("forwarded", "For=\"198.51.100.1:80\"")],
                Forwarded,
                "198.51.100.1",
                "parameter names are case-insensitive",
            ),
        ];
        for (peer, pairs, mode, want, why) in cases {
            let got = client_addr(&headers(pairs), ip(peer), &trust(proxies, *mode));
            assert_eq!(got, ip(want), "{why}");
        }
        assert_eq!(
            client_addr(
                &headers(&[("x-forwarded-for", "198.51.100.1")]),
                ip("10.0.0.1"),
                &ProxyTrust::default()
            ),
            ip("10.0.0.1"),
            "nothing is trusted by default"
        );
    }

    #[test]
    fn forwarded_host_and_proto_come_only_from_a_trusted_peer() {
        let t = trust("10.0.0.0/8", ForwardedHeader::XForwardedFor);
        let h = headers(&[
            ("x-forwarded-host", "evil.example.com, mcp.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            forwarded_origin(&h, ip("10.0.0.1"), &t),
            (Some("mcp.example.com"), Some("https"))
        );
        assert_eq!(forwarded_origin(&h, ip("203.0.113.9"), &t), (None, None));
        let odd = headers(&[
            ("x-forwarded-host", "mcp.example.com/evil@x"),
            ("x-forwarded-proto", "gopher"),
        ]);
        assert_eq!(forwarded_origin(&odd, ip("10.0.0.1"), &t), (None, None));
        let t = trust("10.0.0.0/8", ForwardedHeader::Forwarded);
        let h = headers(&[
            ("x-forwarded-host", "evil.example.com"),
            (
                "forwarded",
                "for=6.6.6.6;host=evil.example.com, for=198.51.100.1;host=\"mcp.example.com\";proto=https",
            ),
        ]);
        assert_eq!(
            forwarded_origin(&h, ip("10.0.0.1"), &t),
            (Some("mcp.example.com"), Some("https"))
        );
    }

    #[test]
    fn proxy_ranges_parse_from_commas_spaces_and_single_addresses() {
        let mapped =
            TrustedProxies::parse("::ffff:127.0.0.3/128, ::ffff:10.1.0.0/112").expect("parse");
        assert!(
            mapped.contains(ip("127.0.0.3")),
            "an IPv4-mapped entry names its IPv4 address"
        );
        assert!(mapped.contains(ip("::ffff:127.0.0.3")));
        assert!(mapped.contains(ip("10.1.255.1")));
        assert!(!mapped.contains(ip("10.2.0.1")));
        let p = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7\tfd00::/8,,").expect("parse");
        assert_eq!(p.ranges().len(), 3);
        assert!(p.contains(ip("192.168.1.7")));
        assert!(!p.contains(ip("192.168.1.8")));
        assert!(p.contains(ip("fd00::5")));
        for bad in ["10.0.0.0/33", "not-an-ip", "10.0.0.0/8;"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }
}
