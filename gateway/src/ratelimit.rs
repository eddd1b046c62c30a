//! Per-client, per-endpoint rate limits (fixed one-minute windows), shared between gateway
//! replicas through Redis when configured, in memory otherwise. Over the limit: 429 with
//! `Retry-After`. If Redis fails, requests are let through and the failure is logged: a
//! limiter outage must not become a login outage.
//!
//! The client is who [`crate::forwarded`] says it is (never what a header alone claims), and
//! it is counted by its network ([`latchkey_network`]: IPv6 by /64).

use crate::AppState;
use crate::forwarded::{self, ProxyTrust};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_redis::redis;
use latchkey_network::Network;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_SECS: u64 = 60;
/// Networks counted at once in memory, over every group.
const MAX_MEMORY_KEYS: usize = 100_000;
/// Wider networks counted at once in memory, once the networks' map is full.
const MAX_WIDER_KEYS: usize = 20_000;

/// Requests per minute per client, by endpoint group; 0 turns a limit off.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimits {
    pub token: u32,
    pub authorize: u32,
    pub login: u32,
    pub register: u32,
    pub forward_auth: u32,
}

/// An endpoint group: its requests share one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    Token,
    Authorize,
    Login,
    Register,
    ForwardAuth,
}

impl Group {
    const ALL: usize = 5;

    fn name(self) -> &'static str {
        match self {
            Group::Token => "token",
            Group::Authorize => "authorize",
            Group::Login => "login",
            Group::Register => "register",
            Group::ForwardAuth => "forward_auth",
        }
    }
}

/// An IPv6 /48 may make this many times the requests one network may: its holder has 65,536
/// /64s, each counted apart. IPv4 has no such count (a /24 is often a shared NAT pool), except
/// as the fallback below.
pub const WIDER_NETWORK_SHARE: u32 = 4;

/// What one hit counted: the network's count in this window (`None` when the map of networks
/// was full), and its wider network's, when that is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counted {
    own: Option<u32>,
    wider: Option<u32>,
}

impl Counted {
    /// Over `limit`: the network's own count is, or its /48's is over its share. A newcomer
    /// to a full map is judged by its wider network's count (or the shared one) alone.
    fn over(self, limit: u32) -> bool {
        match self.own {
            Some(n) => {
                n > limit
                    || self
                        .wider
                        .is_some_and(|w| w > limit.saturating_mul(WIDER_NETWORK_SHARE))
            }
            None => self.wider.is_some_and(|w| w > limit),
        }
    }
}

/// The in-memory counters of the current window.
///
/// Clients count by network ([`Network::of`]: an IPv4 address, an IPv6 /64), and IPv6 clients
/// by their /48 as well ([`WIDER_NETWORK_SHARE`]). The maps are bounded, and nobody's count
/// is ever evicted to make room: if it were, a party with enough addresses could wipe another
/// client's count by filling the map. Once the networks' map is full, a newcomer counts by its
/// wider network alone (a /48, or an IPv4 /24); once that map is full too, newcomers share one
/// count per group. Every count starts again with the next window, so the maps are emptied
/// then, and keep their allocation.
#[derive(Default)]
pub struct Counters {
    window: u64,
    counts: HashMap<(Group, Network), u32>,
    wider: HashMap<(Group, Network), u32>,
    overflow: [u32; Group::ALL],
    full_reported: bool,
    overflow_reported: bool,
}

/// Counts one hit on `key` in `map`, unless `key` is new and `map` holds `max` keys already.
fn count_in(
    map: &mut HashMap<(Group, Network), u32>,
    key: (Group, Network),
    max: usize,
) -> Option<u32> {
    if let Some(count) = map.get_mut(&key) {
        *count = count.saturating_add(1);
        return Some(*count);
    }
    (map.len() < max).then(|| {
        map.insert(key, 1);
        1
    })
}

impl Counters {
    fn hit(&mut self, window: u64, group: Group, network: Network) -> Counted {
        if self.window != window {
            self.window = window;
            self.counts.clear();
            self.wider.clear();
            self.overflow = [0; Group::ALL];
            self.full_reported = false;
            self.overflow_reported = false;
        }
        let own = count_in(&mut self.counts, (group, network), MAX_MEMORY_KEYS);
        if own.is_none() && !self.full_reported {
            self.full_reported = true;
            tracing::warn!(
                networks = MAX_MEMORY_KEYS,
                "rate limiter full for this minute: new clients count by their /48 (IPv6) or /24 (IPv4)"
            );
        }
        if own.is_some() && network.counted_wider().is_none() {
            return Counted { own, wider: None };
        }
        let wider = match count_in(&mut self.wider, (group, network.wider()), MAX_WIDER_KEYS) {
            Some(count) => count,
            // A network with a count of its own is judged by it alone: the shared count of
            // newcomers says nothing about it.
            None if own.is_some() => return Counted { own, wider: None },
            None => {
                if !self.overflow_reported {
                    self.overflow_reported = true;
                    tracing::warn!(
                        networks = MAX_WIDER_KEYS,
                        "rate limiter full for this minute, wider networks included: new clients share one count per endpoint"
                    );
                }
                let count = &mut self.overflow[group as usize];
                *count = count.saturating_add(1);
                *count
            }
        };
        Counted {
            own,
            wider: Some(wider),
        }
    }
}

pub enum Limiter {
    Memory(Mutex<Counters>),
    /// Counters shared by the replicas; `namespace` keeps deployments that share one Redis
    /// apart.
    Redis {
        pool: deadpool_redis::Pool,
        namespace: String,
    },
}

impl Limiter {
    pub fn new(redis_url: Option<&str>, namespace: &str) -> Result<Self, String> {
        match redis_url {
            Some(url) => deadpool_redis::Config::from_url(url)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .map(|pool| Limiter::Redis {
                    pool,
                    namespace: namespace.to_owned(),
                })
                .map_err(|e| format!("redis pool: {e}")),
            None => Ok(Limiter::Memory(Mutex::default())),
        }
    }

    /// Counts a hit; `Some(seconds)` to wait when over `limit`.
    async fn hit(&self, group: Group, key: Network, limit: u32) -> Result<Option<u64>, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let window = now / WINDOW_SECS;
        let retry = WINDOW_SECS - now % WINDOW_SECS;
        match self {
            Limiter::Memory(counters) => {
                let counted = counters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .hit(window, group, key);
                Ok(counted.over(limit).then_some(retry))
            }
            // Boxed: a Redis round trip's future is large, and every request's middleware
            // future (the in-memory counters' too) would be as large and be copied whole.
            Limiter::Redis { pool, namespace } => {
                Box::pin(redis_hit(pool, namespace, group, key, window))
                    .await
                    .map(|counted| counted.over(limit).then_some(retry))
            }
        }
    }
}

/// Counts a hit in Redis, in this deployment's `namespace`, for the minute `window`.
async fn redis_hit(
    pool: &deadpool_redis::Pool,
    namespace: &str,
    group: Group,
    key: Network,
    window: u64,
) -> Result<Counted, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let name = |n: Network| {
        format!(
            "latchkey:ratelimit:{namespace}:{}:{n}:{window}",
            group.name()
        )
    };
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut keys = vec![name(key)];
    if let Some(wider) = key.counted_wider() {
        keys.push(name(wider));
    }
    for k in &keys {
        pipe.cmd("INCR")
            .arg(k)
            .cmd("EXPIRE")
            .arg(k)
            .arg(WINDOW_SECS * 2)
            .ignore();
    }
    let counts: Vec<u32> = pipe
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Counted {
        own: counts.first().copied(),
        wider: counts.get(1).copied(),
    })
}

fn group(path: &str, limits: &RateLimits) -> Option<(Group, u32)> {
    let (group, limit) = match path {
        "/token" | "/revoke" => (Group::Token, limits.token),
        "/authorize" => (Group::Authorize, limits.authorize),
        "/authorize/login" | "/authorize/consent" => (Group::Login, limits.login),
        // A registration and its management (RFC 7592) share one allowance: guessing a
        // registration access token costs what registering does.
        "/register" => (Group::Register, limits.register),
        p if p.starts_with("/register/") => (Group::Register, limits.register),
        // Only on the ForwardAuth listener: the public router has no /verify.
        "/verify" => (Group::ForwardAuth, limits.forward_auth),
        // Resource metadata reads the registered resources on every answer: limited like
        // the start of an authorization, which reads them too.
        p if p.starts_with("/.well-known/oauth-protected-resource") => {
            (Group::Authorize, limits.authorize)
        }
        _ => return None,
    };
    (limit > 0).then_some((group, limit))
}

/// The client's address, as far as this gateway can vouch for it: the peer, or, when the
/// peer is a trusted proxy, the address the proxies' chain names (see [`crate::forwarded`]).
/// `None` only when the peer is unknown (a router served without a socket).
///
/// This is the one place the gateway decides who the client is: rate limits use it, and so
/// does anything that passes the client's address on to the core.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust: &ProxyTrust,
) -> Option<IpAddr> {
    peer.map(|peer| forwarded::client_addr(headers, peer.ip(), trust))
}

pub(crate) async fn limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some((group, max)) = group(req.uri().path(), &s.config.rate_limits) else {
        return next.run(req).await;
    };
    // A path this router does not serve is a cheap 404, and counts for nothing: `/verify`
    // on the public port must not spend the ForwardAuth allowance.
    if req.extensions().get::<MatchedPath>().is_none() {
        return next.run(req).await;
    }
    let peer = forwarded::peer(req.extensions());
    let Some(ip) = client_ip(req.headers(), peer, &s.config.proxies) else {
        return next.run(req).await;
    };
    match s.limiter.hit(group, Network::of(ip), max).await {
        Ok(None) => next.run(req).await,
        Ok(Some(retry_after)) => {
            tracing::info!(endpoint = group.name(), "rate limit exceeded");
            let body = serde_json::json!({"error": "temporarily_unavailable", "error_description": "too many requests; retry later"});
            let mut res = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; letting the request through");
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(n: u32) -> Network {
        Network::of(IpAddr::from(n.to_be_bytes()))
    }

    /// The n-th /64 of the /48 numbered `site`.
    fn v6(site: u16, n: u16) -> Network {
        Network::of(IpAddr::from(std::net::Ipv6Addr::new(
            0x2001, 0xdb8, site, n, 0, 0, 0, 1,
        )))
    }

    #[test]
    fn an_ipv6_48_gets_a_bounded_multiple_of_one_networks_limit() {
        let mut c = Counters::default();
        let limit = 5;
        let mut allowed = 0;
        // Many /64s of one /48, each within its own limit.
        for n in 0..100 {
            for _ in 0..limit {
                if !c.hit(1, Group::Register, v6(1, n)).over(limit) {
                    allowed += 1;
                }
            }
        }
        assert_eq!(allowed, limit * WIDER_NETWORK_SHARE);
        // Another /48, and IPv4 addresses of one /24, keep their own limits.
        assert!(!c.hit(1, Group::Register, v6(2, 0)).over(limit));
        for n in 0..50 {
            assert!(
                !c.hit(1, Group::Register, v4(0x0a00_0000 + n)).over(limit),
                "{n}"
            );
        }
        // A network over its own limit is over, whatever its /48.
        for _ in 0..limit {
            c.hit(1, Group::Token, v6(3, 0));
        }
        assert!(c.hit(1, Group::Token, v6(3, 0)).over(limit));
    }

    #[test]
    fn a_full_map_never_resets_a_count_and_newcomers_count_by_their_wider_network() {
        let mut c = Counters::default();
        let victim = v4(1);
        for _ in 0..7 {
            c.hit(10, Group::Login, victim);
        }
        // Fill the map from as many IPv4 addresses as it holds.
        let mut n = 2;
        while c.counts.len() < MAX_MEMORY_KEYS {
            c.hit(10, Group::Login, v4(n));
            n += 1;
        }
        let victim_count = c.hit(10, Group::Login, victim);
        assert_eq!(victim_count.own, Some(8), "the victim's count survives");
        // Newcomers count by their /24 (IPv4) or /48 (IPv6) alone, against the plain limit.
        let newcomer = c.hit(10, Group::Login, v4(0xc000_0201));
        assert_eq!(
            newcomer,
            Counted {
                own: None,
                wider: Some(1)
            }
        );
        let same_24 = c.hit(10, Group::Login, v4(0xc000_0202));
        assert_eq!(same_24.wider, Some(2));
        assert!(same_24.over(1) && !same_24.over(2));
        assert_eq!(
            c.hit(10, Group::Login, v4(0xc100_0001)).wider,
            Some(1),
            "another /24"
        );
        assert_eq!(c.counts.len(), MAX_MEMORY_KEYS, "the map does not grow");
        // The next window starts every count again.
        assert_eq!(c.hit(11, Group::Login, victim).own, Some(1));
        assert_eq!((c.counts.len(), c.wider.len()), (1, 0));
    }

    #[test]
    fn once_the_wider_map_is_full_too_newcomers_share_one_count_per_group() {
        let mut c = Counters::default();
        for n in 0..MAX_MEMORY_KEYS as u32 {
            c.hit(1, Group::Token, v4(n));
        }
        for n in 0..MAX_WIDER_KEYS as u32 {
            c.hit(1, Group::Token, v4(0x8000_0000 + (n << 8)));
        }
        assert_eq!(c.wider.len(), MAX_WIDER_KEYS);
        let base = 0x8000_0000 + ((MAX_WIDER_KEYS as u32 + 10) << 8);
        for n in 0..5 {
            assert_eq!(
                c.hit(1, Group::Token, v4(base + (n << 8))).wider,
                Some(n + 1)
            );
        }
        assert_eq!(c.hit(1, Group::Register, v4(base)).wider, Some(1));
        assert_eq!(c.wider.len(), MAX_WIDER_KEYS, "the wider map does not grow");
    }

    #[test]
    fn each_group_counts_apart() {
        let mut c = Counters::default();
        assert_eq!(c.hit(1, Group::Token, v4(1)).own, Some(1));
        assert_eq!(c.hit(1, Group::Token, v4(1)).own, Some(2));
        assert_eq!(c.hit(1, Group::Register, v4(1)).own, Some(1));
        assert_eq!(c.hit(1, Group::Token, v4(2)).own, Some(1));
    }

    #[test]
    fn managing_a_registration_counts_against_the_registration_limit() {
        let limits = RateLimits {
            register: 7,
            ..RateLimits::default()
        };
        for path in ["/register", "/register/abc", "/register/a%2Fb"] {
            assert_eq!(group(path, &limits), Some((Group::Register, 7)), "{path}");
        }
        assert_eq!(group("/registerx", &limits), None);
    }
}
