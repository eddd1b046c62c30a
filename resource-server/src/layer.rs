//! The tower layer that guards routes, the axum extractor that hands handlers the claims,
//! and the RFC 6750 / RFC 9728 challenges.

use crate::{Claims, Rejection, Verifier};
use axum::extract::FromRequestParts;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

/// Requires a bearer token for the resource with the given scopes. Made by
/// [`Verifier::require`].
#[derive(Clone)]
pub struct RequireBearerLayer {
    verifier: Verifier,
    scopes: Vec<String>,
    users_only: bool,
}

impl RequireBearerLayer {
    pub(crate) fn new(verifier: Verifier, scopes: Vec<String>) -> Self {
        Self {
            verifier,
            scopes,
            users_only: false,
        }
    }

    /// Refuses tokens that no user stands behind (an operator's client acting for itself),
    /// with 403 `insufficient_scope`: the route acts on a user's behalf.
    pub fn users_only(mut self) -> Self {
        self.users_only = true;
        self
    }
}

/// The request headers an MCP client sends cross-origin, and the answer's headers it reads.
const ALLOWED_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
];
const EXPOSED_HEADERS: [&str; 2] = ["www-authenticate", "mcp-session-id"];

/// CORS for a resource's answers, its challenges included: preflights are answered before any
/// token is asked for. `*` allows any origin; no origin turns it off.
pub(crate) fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(std::time::Duration::from_secs(3600))
}

impl<S> Layer<S> for RequireBearerLayer {
    /// The guard inside CORS, so that a preflight, which carries no token, is answered, and a
    /// refusal can be read by the page that asked.
    type Service = Cors<RequireBearer<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.verifier.cors().layer(RequireBearer {
            inner,
            verifier: self.verifier.clone(),
            scopes: self.scopes.clone(),
            users_only: self.users_only,
        })
    }
}

/// The service [`RequireBearerLayer`] wraps around a route.
#[derive(Clone)]
pub struct RequireBearer<S> {
    inner: S,
    verifier: Verifier,
    scopes: Vec<String>,
    users_only: bool,
}

/// RFC 6750 §2.1: `Authorization: Bearer <token>`, from one such header and nowhere else.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Result<Option<&str>, Rejection> {
    latchkey_proto::bearer::token(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.to_str().ok()),
    )
    .map_err(|_| Rejection::InvalidRequest("more than one Authorization header".into()))
}

impl<S, B> Service<Request<B>> for RequireBearer<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone is ready-checked; keep the one that was polled (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let scopes = self.scopes.clone();
        let users_only = self.users_only;
        Box::pin(async move {
            let outcome = match bearer_token(req.headers()) {
                Err(rejection) => Err(rejection),
                Ok(None) => Err(Rejection::Missing),
                Ok(Some(token)) => verifier.verify(token, &scopes).await,
            };
            let outcome = outcome.and_then(|c| match c.subject {
                crate::Subject::Client if users_only => Err(Rejection::UserRequired),
                _ => Ok(c),
            });
            match outcome {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(rejection) => Ok(challenge(&verifier, &scopes, &rejection)),
            }
        })
    }
}

/// The response for a rejected request:
/// - 401 `Bearer resource_metadata="…", scope="…"` without a token (RFC 9728 §5.1,
///   RFC 6750 §3), with `error="invalid_token"` for a bad one;
/// - 403 `error="insufficient_scope"` naming every scope the operation needs (RFC 6750 §3.1);
/// - 400 `error="invalid_request"` for a malformed request (RFC 6750 §3.1).
pub fn challenge(verifier: &Verifier, scopes: &[String], rejection: &Rejection) -> Response {
    let (status, error, description) = match rejection {
        Rejection::Missing => (StatusCode::UNAUTHORIZED, None, None),
        Rejection::InvalidToken(why) => (
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            Some(why.as_str()),
        ),
        Rejection::InsufficientScope => (StatusCode::FORBIDDEN, Some("insufficient_scope"), None),
        Rejection::UserRequired => (
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            Some("this operation needs a user's token"),
        ),
        Rejection::InvalidRequest(why) => (
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            Some(why.as_str()),
        ),
        Rejection::Unavailable(why) => {
            tracing::error!(error = %why, "cannot verify tokens");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization server unavailable",
            )
                .into_response();
        }
    };
    let scope = scopes.join(" ");
    let value = latchkey_proto::bearer::Challenge {
        realm: None,
        resource_metadata: Some(verifier.metadata_url()),
        error,
        error_description: description,
        scope: Some(&scope),
    }
    .header_value();
    let mut res = status.into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// The claims of the request's verified token. Use it on routes behind
/// [`Verifier::require`]. On a route without that layer there are no claims to give: that is
/// a server misconfiguration, answered with 500 (a 401 without a challenge would send
/// clients nowhere).
#[derive(Debug, Clone)]
pub struct Bearer(pub Claims);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .map(Bearer)
            .ok_or_else(|| {
                tracing::error!(
                    path = %parts.uri.path(),
                    "the Bearer extractor is used on a route without Verifier::require"
                );
                StatusCode::INTERNAL_SERVER_ERROR
            })
    }
}
