//! Route table. Handlers translate HTTP to gRPC calls and back; nothing more.

mod authorize;
mod discovery;
mod forward_auth;
mod registration;
mod token;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};

/// Endpoints that browser-based clients call cross-origin; CORS applies.
pub(crate) fn public_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        // No `/.well-known/openid-configuration` until Latchkey issues ID tokens: the RFC 8414
        // document under that name is rejected by clients that validate it as OpenID
        // Provider metadata (it has no `id_token_signing_alg_values_supported`), and adding
        // that field would advertise ID tokens that are never issued. MCP clients look for
        // RFC 8414 metadata first, and move on past a 404.
        .route(
            "/.well-known/oauth-protected-resource",
            get(discovery::resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*rest}",
            get(discovery::resource_metadata),
        )
        .route("/jwks.json", get(discovery::jwks))
        .route("/register", post(registration::register))
        // RFC 7592 §2: the client configuration endpoint of a self-registered client.
        .route(
            "/register/{client_id}",
            get(registration::read)
                .put(registration::replace)
                .delete(registration::delete),
        )
        .route("/token", post(token::token))
        .route("/revoke", post(token::revoke))
}

/// Endpoints for the user's browser and for servers.
pub(crate) fn browser_routes() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize::start))
        .route("/authorize/login", post(authorize::login))
        .route("/authorize/consent", post(authorize::consent))
        .route("/introspect", post(token::introspect))
        .route("/health", get(discovery::ready))
        .route("/health/live", get(discovery::live))
        .route("/health/ready", get(discovery::ready))
}

/// ForwardAuth, on its own listener: a reverse proxy in the cluster asks it, never a client.
pub(crate) fn forward_auth_routes() -> Router<AppState> {
    Router::new().route("/verify", get(forward_auth::verify))
}
