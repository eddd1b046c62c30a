//! latchkey-gateway: the HTTP face of Latchkey.
//!
//! It decodes forms, JSON, Basic credentials and cookies, calls the AuthService over gRPC,
//! and encodes RFC-shaped responses, redirects and HTML pages. It makes no OAuth decision:
//! every rule lives once, in `latchkey-core`.

pub mod client;
pub mod error;
pub mod form;
mod metrics;
mod pages;
pub mod ratelimit;
mod routes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

pub use client::AuthClient;

/// What the gateway needs to know beyond the AuthService's answers.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Set `Secure` on cookies (the issuer is https).
    pub secure_cookies: bool,
    pub max_body_bytes: usize,
    /// CORS origins for the public endpoints; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// ForwardAuth defaults when the proxy's query names no `audience` / `scope`.
    pub forward_auth_audience: Option<String>,
    pub forward_auth_scopes: Option<String>,
    pub rate_limits: ratelimit::RateLimits,
    /// Take the client IP from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Shared rate-limit counters.
    pub redis_url: Option<String>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub client: AuthClient,
    pub config: GatewayConfig,
    pub limiter: std::sync::Arc<ratelimit::Limiter>,
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(3600))
}

/// The gateway's routes.
pub fn router(client: AuthClient, config: GatewayConfig) -> Result<Router, String> {
    let limiter = std::sync::Arc::new(ratelimit::Limiter::new(config.redis_url.as_deref())?);
    let state = AppState {
        client,
        config: config.clone(),
        limiter,
    };
    // Endpoints a browser-based client (MCP Inspector) calls cross-origin.
    let public = routes::public_routes().layer(cors(&config.cors_origins));
    Ok(routes::browser_routes()
        .merge(public)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn(metrics::record))
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TraceLayer::new_for_http()))
}

/// Serves the gateway on `listener` until `shutdown`, then drains in-flight requests.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    tracing::info!(addr = %listener.local_addr()?, "HTTP gateway listening");
    // Small responses go out at once, not after a delayed ACK.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
