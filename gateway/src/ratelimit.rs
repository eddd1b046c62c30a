//! Per-client, per-endpoint rate limits (fixed one-minute windows), shared between gateway
//! replicas through Redis when configured, in memory otherwise. Over the limit: 429 with
//! `Retry-After`. If Redis fails, requests are let through and the failure is logged: a
//! limiter outage must not become a login outage.
//!
//! The client is who [`crate::forwarded`] says it is (never what a header alone claims), and
//! IPv6 clients are counted by /64.

use crate::AppState;
use crate::forwarded::{self, ProxyTrust};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_redis::redis;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_SECS: u64 = 60;
/// Clients counted at once in memory, over every group.
const MAX_MEMORY_KEYS: usize = 100_000;

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

/// The in-memory counters of the current window.
///
/// The map never holds more than [`MAX_MEMORY_KEYS`] clients, and nobody's count is ever
/// evicted to make room: if it were, a party with enough addresses could wipe another
/// client's count by filling the map. Clients that arrive once it is full share one count per
/// group until the window ends. Every count starts again with the next window, so the map is
/// emptied then, and keeps its allocation.
#[derive(Default)]
pub struct Counters {
    window: u64,
    counts: HashMap<(Group, IpAddr), u32>,
    overflow: [u32; Group::ALL],
    overflow_reported: bool,
}

impl Counters {
    fn hit(&mut self, window: u64, group: Group, key: IpAddr) -> u32 {
        if self.window != window {
            self.window = window;
            self.counts.clear();
            self.overflow = [0; Group::ALL];
            self.overflow_reported = false;
        }
        if let Some(count) = self.counts.get_mut(&(group, key)) {
            *count = count.saturating_add(1);
            return *count;
        }
        if self.counts.len() < MAX_MEMORY_KEYS {
            self.counts.insert((group, key), 1);
            return 1;
        }
        if !self.overflow_reported {
            self.overflow_reported = true;
            tracing::warn!(
                clients = MAX_MEMORY_KEYS,
                "rate limiter full for this minute: new clients share one count per endpoint"
            );
        }
        let count = &mut self.overflow[group as usize];
        *count = count.saturating_add(1);
        *count
    }
}

pub enum Limiter {
    Memory(Mutex<Counters>),
    Redis(deadpool_redis::Pool),
}

impl Limiter {
    pub fn new(redis_url: Option<&str>) -> Result<Self, String> {
        match redis_url {
            Some(url) => deadpool_redis::Config::from_url(url)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .map(Limiter::Redis)
                .map_err(|e| format!("redis pool: {e}")),
            None => Ok(Limiter::Memory(Mutex::default())),
        }
    }

    /// Counts a hit; `Some(seconds)` to wait when over `limit`.
    async fn hit(&self, group: Group, key: IpAddr, limit: u32) -> Result<Option<u64>, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let window = now / WINDOW_SECS;
        let retry = WINDOW_SECS - now % WINDOW_SECS;
        match self {
            Limiter::Memory(counters) => {
                let count = counters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .hit(window, group, key);
                Ok((count > limit).then_some(retry))
            }
            Limiter::Redis(pool) => {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                let k = format!("latchkey:ratelimit:{}:{key}:{window}", group.name());
                let (count, _): (u32, i64) = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&k)
                    .cmd("EXPIRE")
                    .arg(&k)
                    .arg(WINDOW_SECS * 2)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((count > limit).then_some(retry))
            }
        }
    }
}

fn group(path: &str, limits: &RateLimits) -> Option<(Group, u32)> {
    let (group, limit) = match path {
        "/token" | "/revoke" => (Group::Token, limits.token),
        "/authorize" => (Group::Authorize, limits.authorize),
        "/authorize/login" | "/authorize/consent" => (Group::Login, limits.login),
        "/register" => (Group::Register, limits.register),
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
    match s.limiter.hit(group, forwarded::rate_key(ip), max).await {
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

    fn v4(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_full_map_never_resets_a_count_and_newcomers_share_one() {
        let mut c = Counters::default();
        let victim = v4(1);
        for _ in 0..7 {
            c.hit(10, Group::Login, victim);
        }
        // Fill the map from as many addresses as it holds.
        for n in 2..=MAX_MEMORY_KEYS as u32 {
            c.hit(10, Group::Login, v4(n));
        }
        assert_eq!(c.counts.len(), MAX_MEMORY_KEYS);
        assert_eq!(
            c.hit(10, Group::Login, victim),
            8,
            "the victim's count survives"
        );
        // Newcomers, however many addresses they use, share one count per group.
        let base = MAX_MEMORY_KEYS as u32 + 10;
        for n in 0..5 {
            assert_eq!(c.hit(10, Group::Login, v4(base + n)), n + 1);
        }
        assert_eq!(c.hit(10, Group::Register, v4(base)), 1);
        assert_eq!(c.counts.len(), MAX_MEMORY_KEYS, "the map does not grow");
        // The next window starts every count again.
        assert_eq!(c.hit(11, Group::Login, victim), 1);
        assert_eq!(c.hit(11, Group::Login, v4(base)), 1);
        assert_eq!(c.counts.len(), 2);
    }

    #[test]
    fn each_group_counts_apart() {
        let mut c = Counters::default();
        assert_eq!(c.hit(1, Group::Token, v4(1)), 1);
        assert_eq!(c.hit(1, Group::Token, v4(1)), 2);
        assert_eq!(c.hit(1, Group::Register, v4(1)), 1);
        assert_eq!(c.hit(1, Group::Token, v4(2)), 1);
    }
}
