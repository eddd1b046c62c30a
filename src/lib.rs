//! The `latchkey` binary's composition root: it wires the AuthService and the gateway
//! together from one [`Settings`]. No protocol logic lives here.

pub mod admin;
pub mod admin_http;

use anyhow::Context;
pub use latchkey_auth::Settings;
use latchkey_core::AuthCore;
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running server (AuthService and/or gateway) and the means to stop it.
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    pub grpc_addr: Option<SocketAddr>,
    pub core: Option<Arc<AuthCore>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, and waits for both servers.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until the servers stop (on their own or after [`Self::shutdown`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        for t in self.tasks {
            t.await??;
        }
        Ok(())
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn gateway_config(settings: &Settings) -> latchkey_gateway::GatewayConfig {
    latchkey_gateway::GatewayConfig {
        secure_cookies: settings.issuer.starts_with("https://"),
        max_body_bytes: settings.max_body_bytes,
        rate_limits: latchkey_gateway::ratelimit::RateLimits {
            token: settings.rate_limit_token_per_min,
            authorize: settings.rate_limit_authorize_per_min,
            login: settings.rate_limit_login_per_min,
            register: settings.rate_limit_register_per_min,
        },
        trust_forwarded_for: settings.trust_forwarded_for,
        redis_url: settings.redis_url.clone(),
        forward_auth_audience: settings.forward_auth_audience.clone(),
        forward_auth_scopes: settings.forward_auth_scopes.clone(),
        cors_origins: settings
            .cors_origins
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    }
}

/// `latchkey serve`: the AuthService and the gateway in one process. The gateway still calls
/// the AuthService over gRPC, with a credential generated here unless one is configured.
pub async fn start_all(
    settings: &Settings,
    http: TcpListener,
    grpc: TcpListener,
) -> anyhow::Result<Running> {
    let secret = match &settings.gateway_secret {
        Some(s) => s.expose_secret().to_owned(),
        None => latchkey_core::secret::generate(),
    };
    let engine = latchkey_auth::server::build_core(settings).await?;
    refuse_unprotected(settings, &engine).await?;
    let core = engine.core.clone();
    let in_process = latchkey_auth::server::in_process_service(&engine, Some(&secret));
    let (stop, rx) = watch::channel(false);
    let grpc_addr = grpc.local_addr()?;
    let http_addr = http.local_addr()?;
    let admin = spawn_admin(settings, Some(engine.probes()), rx.clone()).await?;
    let auth_task = {
        let secret = secret.clone();
        let rx = rx.clone();
        tokio::spawn(async move {
            latchkey_auth::server::serve(&engine, Some(&secret), grpc, stopped(rx)).await
        })
    };
    // The gateway calls the same gRPC AuthService in process: the gRPC port still serves
    // resource servers and other replicas, but the gateway's calls skip a loopback socket.
    let client =
        latchkey_gateway::client::in_process(in_process, &secret).map_err(anyhow::Error::msg)?;
    let router =
        latchkey_gateway::router(client, gateway_config(settings)).map_err(anyhow::Error::msg)?;
    let gw_task =
        tokio::spawn(async move { Ok(latchkey_gateway::serve(router, http, stopped(rx)).await?) });
    Ok(Running {
        http_addr: Some(http_addr),
        grpc_addr: Some(grpc_addr),
        core: Some(core),
        stop,
        tasks: [vec![auth_task, gw_task], admin]
            .into_iter()
            .flatten()
            .collect(),
    })
}

/// Production refuses to serve with no protected resource: the development default (any
/// https or loopback URL is a resource) would let tokens name audiences nobody declared.
async fn refuse_unprotected(
    settings: &Settings,
    engine: &latchkey_auth::server::Engine,
) -> anyhow::Result<()> {
    if settings.env != latchkey_auth::config::Environment::Production {
        return Ok(());
    }
    let known = engine
        .core
        .protected_resource_list()
        .await
        .map_err(|e| anyhow::anyhow!("reading protected resources: {}", e.description()))?;
    if known.is_empty() {
        anyhow::bail!(
            "production needs at least one protected resource: `latchkey resource add URL --default`, or [[resources]] in the configuration file"
        );
    }
    Ok(())
}

/// `latchkey serve auth`: only the gRPC AuthService.
pub async fn start_auth(settings: &Settings, grpc: TcpListener) -> anyhow::Result<Running> {
    let secret = settings
        .gateway_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    if secret.is_none() {
        tracing::warn!(
            "LATCHKEY_GATEWAY_SECRET is unset: gateway-only RPCs will refuse every caller"
        );
    }
    let engine = latchkey_auth::server::build_core(settings).await?;
    refuse_unprotected(settings, &engine).await?;
    let core = engine.core.clone();
    let (stop, rx) = watch::channel(false);
    let grpc_addr = grpc.local_addr()?;
    let admin = spawn_admin(settings, Some(engine.probes()), rx.clone()).await?;
    let task = tokio::spawn(async move {
        latchkey_auth::server::serve(&engine, secret.as_deref(), grpc, stopped(rx)).await
    });
    Ok(Running {
        http_addr: None,
        grpc_addr: Some(grpc_addr),
        core: Some(core),
        stop,
        tasks: [vec![task], admin].into_iter().flatten().collect(),
    })
}

/// Serves the admin port (metrics, health) when `admin_addr` is set.
async fn spawn_admin(
    settings: &Settings,
    probes: Option<latchkey_auth::probes::Probes>,
    rx: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    admin_http::recorder();
    let Some(addr) = settings.admin_addr else {
        return Ok(Vec::new());
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin port {addr}"))?;
    tracing::info!(%addr, "admin (metrics, health) listening");
    let router = admin_http::router(probes);
    Ok(vec![tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped(rx))
            .await?;
        Ok(())
    })])
}

/// `latchkey serve gateway`: only the HTTP gateway, calling the AuthService at `auth_url`.
pub async fn start_gateway(
    settings: &Settings,
    auth_url: &str,
    http: TcpListener,
) -> anyhow::Result<Running> {
    let secret = settings
        .gateway_secret
        .as_ref()
        .context("LATCHKEY_GATEWAY_SECRET must be set to run the gateway on its own")?
        .expose_secret()
        .to_owned();
    let client =
        latchkey_gateway::client::connect(auth_url, &secret).map_err(anyhow::Error::msg)?;
    let router =
        latchkey_gateway::router(client, gateway_config(settings)).map_err(anyhow::Error::msg)?;
    let (stop, rx) = watch::channel(false);
    let admin = spawn_admin(settings, None, rx.clone()).await?;
    let http_addr = http.local_addr()?;
    let task =
        tokio::spawn(async move { Ok(latchkey_gateway::serve(router, http, stopped(rx)).await?) });
    Ok(Running {
        http_addr: Some(http_addr),
        grpc_addr: None,
        core: None,
        stop,
        tasks: [vec![task], admin].into_iter().flatten().collect(),
    })
}
