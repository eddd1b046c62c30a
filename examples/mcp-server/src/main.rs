//! Runs the example MCP server.
//!
//! ```text
//! MCP_RESOURCE=http://127.0.0.1:3000/mcp LATCHKEY_ISSUER=http://localhost:8080 \
//! LATCHKEY_AUTH_URL=http://127.0.0.1:50051 RS_CLIENT_ID=… RS_CLIENT_SECRET=… \
//! cargo run -p latchkey-example-mcp
//! ```

use latchkey_resource_server::{Config, Mode, Verifier};

fn env(name: &str, default: Option<&str>) -> anyhow::Result<String> {
    match (std::env::var(name), default) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(d)) => Ok(d.to_owned()),
        (Err(_), None) => anyhow::bail!("{name} must be set"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let resource = env("MCP_RESOURCE", Some("http://127.0.0.1:3000/mcp"))?;
    let mode = if env("RS_MODE", Some("local"))? == "remote" {
        Mode::Remote
    } else {
        Mode::Local
    };
    let config = Config::new(
        &resource,
        &env("LATCHKEY_ISSUER", Some("http://localhost:8080"))?,
        &env("LATCHKEY_AUTH_URL", Some("http://127.0.0.1:50051"))?,
        &env("RS_CLIENT_ID", None)?,
        &env("RS_CLIENT_SECRET", None)?,
    )
    .mode(mode)
    .scopes_supported(&["mcp:tools"]);
    let verifier = Verifier::connect(config).await?;
    let addr = env("MCP_LISTEN", Some("127.0.0.1:3000"))?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, %resource, "MCP server listening");
    axum::serve(
        listener,
        latchkey_example_mcp::router(&verifier, Vec::new()),
    )
    .await?;
    Ok(())
}
