//! An MCP server over Streamable HTTP, protected by Latchkey through
//! `latchkey-resource-server`. Its one tool, `whoami`, answers with the caller's subject,
//! client and scopes, as read from the verified access token.

use latchkey_resource_server::{Claims, Verifier};
use rmcp::handler::server::tool::Extension;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use std::sync::Arc;

/// The MCP server.
#[derive(Debug, Clone, Default)]
pub struct WhoAmI;

#[tool_router]
impl WhoAmI {
    /// The identity is in the request's extensions, put there by the bearer layer.
    #[tool(description = "Return the caller's subject, client and scopes")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<String, ErrorData> {
        let claims = parts.extensions.get::<Claims>().ok_or_else(|| {
            ErrorData::internal_error("request reached the tool unauthenticated", None)
        })?;
        Ok(serde_json::json!({
            "sub": claims.sub,
            "client_id": claims.client_id,
            "scopes": claims.scopes,
        })
        .to_string())
    }
}

#[tool_handler(name = "latchkey-example-mcp", instructions = "Ask whoami who you are")]
impl ServerHandler for WhoAmI {}

/// `/mcp` (requiring `mcp:tools`) and its RFC 9728 metadata.
pub fn router(verifier: &Verifier, allowed_hosts: Vec<String>) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default();
    if !allowed_hosts.is_empty() {
        config.allowed_hosts = allowed_hosts;
    }
    let mcp = StreamableHttpService::new(
        || Ok(WhoAmI),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(verifier.require(&["mcp:tools"]))
        .merge(verifier.metadata_router())
}
