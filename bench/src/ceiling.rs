//! `latchkey-ceiling`: the floor servers Latchkey is measured against in `bench/run.sh`, on
//! the same core, in the same run. Each does the least a server of its kind must do, and
//! nothing else: no database, no logging, no metrics, no tracing.
//!
//! - `token`: an OAuth token endpoint for one confidential client and the client_credentials
//!   grant. It reads the form body and `Authorization: Basic` (decoded as Latchkey decodes
//!   it, RFC 6749 §2.3.1), checks the secret against its SHA-256 in constant time, and signs
//!   an RFC 9068 EdDSA access token with a key parsed once, as Latchkey's core does. The
//!   token carries the claims Latchkey's does, so both sign inputs of the same size.
//! - `ping`: a tonic unary RPC that does no work, served with the transport settings of
//!   Latchkey's AuthService (`TCP_NODELAY`, 60 s TCP keepalive, and its default limits:
//!   128 RPCs at once and 256 streams per connection, HTTP/2 pings every 30 s, 1 MiB
//!   messages in; tonic's defaults otherwise). Plaintext, as the bench's default is.
//!
//! Both run on mimalloc, Latchkey's allocator, so the ratios measure the server's work and
//! not the allocator.

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use ed25519_dalek::{Signer, SigningKey};
use latchkey_bench::ping::ping_server::{Ping, PingServer};
use latchkey_bench::ping::{PingRequest, PingResponse};
use latchkey_proto::credentials::decode_basic;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The token endpoint's floor: POST /token, client_credentials, no database.
    Token {
        #[arg(long, default_value = "127.0.0.1:18090")]
        addr: String,
        #[arg(long, default_value = "bench")]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        #[arg(long, default_value = "https://mcp.example.com/mcp")]
        audience: String,
        #[arg(long, default_value = "mcp:tools")]
        scope: String,
    },
    /// The gRPC floor: a unary `Ping` that does no work.
    Ping {
        #[arg(long, default_value = "127.0.0.1:15060")]
        addr: String,
    },
}

/// What the token endpoint holds in memory, parsed once at startup.
struct Endpoint {
    issuer: String,
    client_id: String,
    /// SHA-256 of the client secret; the secret itself is never kept.
    secret_hash: [u8; 32],
    audience: String,
    scope: String,
    key: SigningKey,
    /// The JOSE header, already base64url-encoded.
    header_b64: String,
}

/// RFC 9068 §2.2, the claims Latchkey's access tokens carry.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

fn oauth_error(status: StatusCode, code: &'static str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": code }))).into_response()
}

async fn token(State(e): State<Arc<Endpoint>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut grant_type = None;
    let mut resource = None;
    let mut scope = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "grant_type" => grant_type = Some(v),
            "resource" => resource = Some(v),
            "scope" => scope = Some(v),
            _ => {}
        }
    }
    if grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some((id, secret)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| decode_basic(v).ok())
    else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let hash = Sha256::digest(secret.as_bytes());
    if id != e.client_id || !bool::from(hash.as_slice().ct_eq(&e.secret_hash)) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if resource.is_some_and(|r| r != e.audience) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target");
    }
    if scope.is_some_and(|s| s != e.scope) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        iss: &e.issuer,
        sub: &e.client_id,
        aud: &e.audience,
        client_id: &e.client_id,
        scope: &e.scope,
        iat: now,
        exp: now + 3600,
        jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
    };
    let Ok(payload) = serde_json::to_vec(&claims) else {
        return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    let mut jwt = String::with_capacity(e.header_b64.len() + payload.len() * 4 / 3 + 90);
    jwt.push_str(&e.header_b64);
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
    let signature = e.key.sign(jwt.as_bytes());
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut jwt);
    let mut res = axum::Json(serde_json::json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": e.scope,
    }))
    .into_response();
    // RFC 6749 §5.1.
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

struct Pong;

#[tonic::async_trait]
impl Ping for Pong {
    async fn ping(
        &self,
        _req: tonic::Request<PingRequest>,
    ) -> Result<tonic::Response<PingResponse>, tonic::Status> {
        Ok(tonic::Response::new(PingResponse {}))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Token {
            addr,
            client_id,
            client_secret,
            audience,
            scope,
        } => {
            let key = SigningKey::from_bytes(&rand::random());
            let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "ceiling-1"});
            let endpoint = Arc::new(Endpoint {
                issuer: format!("http://{addr}"),
                client_id,
                secret_hash: Sha256::digest(client_secret.as_bytes()).into(),
                audience,
                scope,
                key,
                header_b64: URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            });
            let listener = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("bind {addr}"))?;
            use axum::serve::ListenerExt;
            // As Latchkey's gateway: small responses go out at once.
            let listener = listener.tap_io(|stream| {
                let _ = stream.set_nodelay(true);
            });
            let app = Router::new()
                .route("/token", post(token))
                .with_state(endpoint);
            println!("latchkey-ceiling token listening on {addr}");
            axum::serve(listener, app).await?;
        }
        Cmd::Ping { addr } => {
            let listener = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("bind {addr}"))?;
            println!("latchkey-ceiling ping listening on {addr}");
            // The settings of Latchkey's AuthService (services/auth/src/server.rs, its
            // `Limits::default()`), so that the floor pays for the same per-connection limits.
            tonic::transport::Server::builder()
                .concurrency_limit_per_connection(128)
                .max_concurrent_streams(256)
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .http2_keepalive_timeout(Some(Duration::from_secs(10)))
                .add_service(
                    PingServer::new(Pong)
                        .max_decoding_message_size(1024 * 1024)
                        .max_encoding_message_size(4 * 1024 * 1024),
                )
                .serve_with_incoming(
                    // The settings of Latchkey's AuthService (services/auth/src/server.rs).
                    tonic::transport::server::TcpIncoming::from(listener)
                        .with_nodelay(Some(true))
                        .with_keepalive(Some(Duration::from_secs(60))),
                )
                .await?;
        }
    }
    Ok(())
}
