//! Runs the example MCP server.
//!
//! ```text
//! MCP_RESOURCE=http://127.0.0.1:3000/mcp LATCHKEY_ISSUER=http://localhost:8080 \
//! LATCHKEY_AUTH_URL=http://127.0.0.1:50051 RS_CLIENT_ID=… RS_CLIENT_SECRET=… \
//! cargo run -p latchkey-example-mcp
//! ```
//!
//! For an AuthService served over TLS, give an `https://` `LATCHKEY_AUTH_URL` and
//! `LATCHKEY_AUTH_CA_FILE` (the CA that signed its certificate), and, when it requires client
//! certificates, `LATCHKEY_AUTH_CLIENT_CERT` and `LATCHKEY_AUTH_CLIENT_KEY`.

use latchkey_resource_server::{Config, Mode, Tls, Verifier};

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
    let config = match std::env::var_os("LATCHKEY_AUTH_CA_FILE") {
        Some(ca) => {
            let cert = std::env::var_os("LATCHKEY_AUTH_CLIENT_CERT");
            let key = std::env::var_os("LATCHKEY_AUTH_CLIENT_KEY");
            let client: Option<(&std::path::Path, &std::path::Path)> = match (&cert, &key) {
                (Some(c), Some(k)) => Some((c.as_ref(), k.as_ref())),
                (None, None) => None,
                _ => anyhow::bail!(
                    "LATCHKEY_AUTH_CLIENT_CERT and LATCHKEY_AUTH_CLIENT_KEY go together"
                ),
            };
            config.tls(Tls::from_files(ca.as_ref(), client)?)
        }
        None => config,
    };
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
