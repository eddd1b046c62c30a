//! latchkey-gateway: the HTTP face of Latchkey.
//!
//! It decodes forms, JSON, Basic credentials and cookies, calls the AuthService over gRPC,
//! and encodes RFC-shaped responses, redirects and HTML pages. It makes no OAuth decision:
//! every rule lives once, in `latchkey-core`.

pub mod client;
pub mod error;
pub mod form;
pub mod forwarded;
mod metrics;
mod pages;
pub mod ratelimit;
mod routes;
pub mod server;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use client::AuthClient;
pub use server::HttpLimits;

/// What the gateway needs to know beyond the AuthService's answers.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The issuer is https: the session cookie is `Secure` with the `__Host-` prefix, and
    /// every public answer carries HSTS.
    pub https_issuer: bool,
    pub max_body_bytes: usize,
    /// CORS origins for the public endpoints; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// ForwardAuth defaults when the proxy's query names no `audience` / `scope`.
    pub forward_auth_audience: Option<String>,
    pub forward_auth_scopes: Option<String>,
    pub rate_limits: ratelimit::RateLimits,
    /// The proxies whose forwarding headers are believed.
    pub proxies: forwarded::ProxyTrust,
    /// The public readiness answer names the database and Redis and what is degraded;
    /// otherwise it says only ok, degraded or unavailable.
    pub health_details: bool,
    /// Shared rate-limit counters.
    pub redis_url: Option<String>,
    /// Keeps this deployment's counters in Redis apart from another's (the issuer).
    pub redis_namespace: String,
    /// Spans go to an OTLP collector: each request's `http` span is recorded at INFO. Without
    /// one it is at DEBUG: making it for every request cost the token endpoint more than the
    /// prefix is worth. A 5xx still leaves a `request failed` line naming its endpoint, but
    /// the line before it that says why (`internal error`) no longer names the request.
    pub traces_exported: bool,
}

/// What every handler reads. One `Arc`: the state is cloned several times for every request.
#[derive(Clone)]
pub(crate) struct AppState(std::sync::Arc<Shared>);

pub(crate) struct Shared {
    pub client: AuthClient,
    pub config: GatewayConfig,
    pub limiter: ratelimit::Limiter,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        // PUT and DELETE: RFC 7592 management of a registration.
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(3600))
}

/// The gateway's two routers: the public one, and ForwardAuth's, which is served on a
/// listener of its own that only the cluster reaches (a public `/verify` would be a token
/// oracle for anyone). They share one rate limiter.
pub struct Routers {
    pub public: Router,
    pub forward_auth: Router,
}

/// The gateway's routes.
pub fn routers(client: AuthClient, config: GatewayConfig) -> Result<Routers, String> {
    let limiter = ratelimit::Limiter::new(config.redis_url.as_deref(), &config.redis_namespace)?;
    let state = AppState(std::sync::Arc::new(Shared {
        client,
        config,
        limiter,
    }));
    let config = &state.config;
    let exported = config.traces_exported;
    let endpoints = metrics::Endpoints::default();
    // One `layer` call per route: each one boxes every route again, and each box is cloned
    // for every request.
    let limited = |routes: Router<AppState>, cors: Option<CorsLayer>| {
        routes
            .layer(
                tower::ServiceBuilder::new()
                    // A failed request's line is `metrics::record`'s, which names the endpoint
                    // whether or not the span is recorded.
                    .layer(
                        TraceLayer::new_for_http()
                            .make_span_with(move |req: &axum::http::Request<axum::body::Body>| {
                                http_span(req, exported)
                            })
                            .on_failure(()),
                    )
                    .layer(DefaultBodyLimit::max(config.max_body_bytes))
                    .layer(axum::middleware::from_fn_with_state(
                        endpoints.clone(),
                        metrics::record,
                    ))
                    // Outside the rate limit: a preflight is answered here and spends no
                    // allowance, and a 429 carries the CORS headers that let the browser's
                    // client read it (and its Retry-After) instead of a network error.
                    .option_layer(cors)
                    .layer(axum::middleware::from_fn_with_state(
                        state.clone(),
                        ratelimit::limit,
                    )),
            )
            .with_state(state.clone())
    };
    // Endpoints a browser-based client (MCP Inspector) calls cross-origin get CORS; the
    // others never do. The browser routes are merged in last, so theirs is the 404
    // fallback (`merge` keeps the fallback of the router merged in), which has no CORS.
    let mut public = limited(routes::public_routes(), Some(cors(&config.cors_origins)))
        .merge(limited(routes::browser_routes(), None));
    if config.https_issuer {
        // HSTS (RFC 6797): a year, for this host only; the domain's other hosts are not ours
        // to pin.
        public = public.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    Ok(Routers {
        public,
        forward_auth: limited(routes::forward_auth_routes(), None),
    })
}

/// Reads `traceparent` from HTTP headers.
struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A span per request, continuing the caller's trace when it sent `traceparent`: at INFO when
/// spans are `exported`, at DEBUG otherwise. Only the method and path are recorded: never the
/// query string, which can hold a code.
fn http_span<B>(req: &axum::http::Request<B>, exported: bool) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let (method, path) = (req.method().as_str(), req.uri().path());
    let span = if exported {
        tracing::info_span!("http", method, path, otel.kind = "server")
    } else {
        tracing::debug_span!("http", method, path, otel.kind = "server")
    };
    // Only a caller that sent a trace context has one to continue; reading the propagator
    // for every other request costs the token endpoint for nothing.
    if !span.is_disabled() && req.headers().contains_key("traceparent") {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
    }
    span
}

/// Serves a router of the gateway on `listener` within `limits` until `shutdown`, then
/// drains in-flight requests. Connections from `proxies` have no per-network share.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: HttpLimits,
    proxies: forwarded::TrustedProxies,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
    server::serve(router, listener, limits, proxies, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tonic::service::Interceptor;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn the_callers_traceparent_continues_into_the_grpc_metadata() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let req = axum::http::Request::builder()
                .uri("/token?code=secret")
                .header(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .body(())
                .expect("request");
            let span = http_span(&req, true);
            let _entered = span.enter();
            let mut credential = client::GatewayCredential::for_tests("Bearer s");
            let out = credential.call(tonic::Request::new(())).expect("intercept");
            let traceparent = out
                .metadata()
                .get("traceparent")
                .expect("traceparent")
                .to_str()
                .expect("ascii");
            assert!(
                traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "same trace: {traceparent}"
            );
            assert!(
                !traceparent.contains("b7ad6b7169203331"),
                "a child span of the caller's"
            );
            assert_eq!(
                out.metadata().get("authorization").expect("credential"),
                "Bearer s"
            );
        });
    }
}
