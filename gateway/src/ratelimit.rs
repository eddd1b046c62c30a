//! Per-IP, per-endpoint rate limits (fixed one-minute windows), shared between gateway
//! replicas through Redis when configured, in memory otherwise. Over the limit: 429 with
//! `Retry-After`. If Redis fails, requests are let through and the failure is logged: a
//! limiter outage must not become a login outage.

use crate::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_redis::redis;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const WINDOW_SECS: u64 = 60;
const MAX_MEMORY_KEYS: usize = 100_000;

/// Requests per minute per client IP; 0 turns a limit off.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimits {
    pub token: u32,
    pub authorize: u32,
    pub login: u32,
    pub register: u32,
}

pub enum Limiter {
    Memory(Mutex<HashMap<String, (u64, u32)>>),
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
    async fn hit(&self, key: &str, limit: u32) -> Result<Option<u64>, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let window = now / WINDOW_SECS;
        let retry = WINDOW_SECS - now % WINDOW_SECS;
        match self {
            Limiter::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= MAX_MEMORY_KEYS {
                    map.retain(|_, (w, _)| *w == window);
                }
                let slot = map.entry(key.to_owned()).or_insert((window, 0));
                if slot.0 != window {
                    *slot = (window, 0);
                }
                slot.1 += 1;
                Ok((slot.1 > limit).then_some(retry))
            }
            Limiter::Redis(pool) => {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                let k = format!("latchkey:ratelimit:{key}:{window}");
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

fn group(path: &str, limits: &RateLimits) -> Option<(&'static str, u32)> {
    let (name, limit) = match path {
        "/token" | "/revoke" => ("token", limits.token),
        "/authorize" => ("authorize", limits.authorize),
        "/authorize/login" | "/authorize/consent" => ("login", limits.login),
        "/register" => ("register", limits.register),
        // Resource metadata reads the registered resources on every answer: limited like
        // the start of an authorization, which reads them too.
        p if p.starts_with("/.well-known/oauth-protected-resource") => {
            ("authorize", limits.authorize)
        }
        _ => return None,
    };
    (limit > 0).then_some((name, limit))
}

/// The address of the user agent: the connection's peer, or with `trust_forwarded_for` the
/// `X-Forwarded-For` value. Rate limits and the core's per-network bounds both count it.
pub(crate) fn client_ip(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

pub(crate) async fn limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some((name, max)) = group(req.uri().path(), &s.config.rate_limits) else {
        return next.run(req).await;
    };
    let Some(ip) = client_ip(&req, s.config.trust_forwarded_for) else {
        return next.run(req).await;
    };
    match s.limiter.hit(&format!("{name}:{ip}"), max).await {
        Ok(None) => next.run(req).await,
        Ok(Some(retry_after)) => {
            tracing::info!(endpoint = name, "rate limit exceeded");
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
