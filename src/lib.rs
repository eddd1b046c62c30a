//! The `latchkey` binary's composition root: the settings, the telemetry, the startup of the
//! AuthService and the gateway from one [`Settings`], and the maintenance task. No protocol
//! logic lives here.

pub mod admin;
pub mod client_documents;
pub mod config;
pub mod grpc_transport;
pub mod maintenance;
pub mod metrics_http;
pub mod probes;
pub mod startup;
pub mod telemetry;

use anyhow::Context;
pub use config::Settings;
use latchkey_core::AuthCore;
use secrecy::ExposeSecret;
pub use startup::{Application, Deps};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running server (AuthService and/or gateway) and the means to stop it.
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    pub grpc_addr: Option<SocketAddr>,
    /// ForwardAuth's own listener, when the gateway runs here and it is configured.
    pub forward_auth_addr: Option<SocketAddr>,
    /// The metrics port, when configured.
    pub metrics_addr: Option<SocketAddr>,
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
        https_issuer: settings.issuer.starts_with("https://"),
        max_body_bytes: settings.max_body_bytes,
        rate_limits: latchkey_gateway::ratelimit::RateLimits {
            token: settings.rate_limit_token_per_min,
            authorize: settings.rate_limit_authorize_per_min,
            login: settings.rate_limit_login_per_min,
            register: settings.rate_limit_register_per_min,
            forward_auth: settings.rate_limit_forward_auth_per_min,
        },
        proxies: latchkey_gateway::forwarded::ProxyTrust {
            proxies: settings.trusted_proxies.clone(),
            header: settings.forwarded_header,
        },
        health_details: settings.public_health_details,
        redis_url: settings.redis_url.clone(),
        redis_namespace: settings.issuer.clone(),
        forward_auth_audience: settings.forward_auth_audience.clone(),
        forward_auth_scopes: settings.forward_auth_scopes.clone(),
        cors_origins: settings
            .cors_origins
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        traces_exported: telemetry::traces_exported(),
    }
}

/// What a spawn started: the tasks, and the address it bound (for the gateway, ForwardAuth's;
/// the public listener was bound by the caller).
struct Served {
    addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

/// The gateway on `http`, and ForwardAuth on its own listener when configured.
async fn spawn_gateway(
    settings: &Settings,
    client: latchkey_gateway::AuthClient,
    http: TcpListener,
    rx: &watch::Receiver<bool>,
) -> anyhow::Result<Served> {
    let routers =
        latchkey_gateway::routers(client, gateway_config(settings)).map_err(anyhow::Error::msg)?;
    let limits = settings.http_limits();
    let mut tasks = Vec::new();
    let forward_auth = match settings.forward_auth_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the ForwardAuth port {addr}"))?;
            let bound = listener.local_addr()?;
            let stop = stopped(rx.clone());
            let router = routers.forward_auth;
            // Its callers are the proxies, each carrying many clients: no share per network.
            let limits = latchkey_gateway::HttpLimits {
                max_connections_per_network: 0,
                ..limits
            };
            tasks.push(tokio::spawn(async move {
                Ok(
                    latchkey_gateway::serve(router, listener, limits, Default::default(), stop)
                        .await?,
                )
            }));
            Some(bound)
        }
        None => None,
    };
    let stop = stopped(rx.clone());
    let router = routers.public;
    let proxies = settings.trusted_proxies.clone();
    tasks.push(tokio::spawn(async move {
        Ok(latchkey_gateway::serve(router, http, limits, proxies, stop).await?)
    }));
    Ok(Served {
        addr: forward_auth,
        tasks,
    })
}

/// `latchkey serve`: the AuthService and the gateway in one process. The gateway calls the
/// services' implementations in process (ForwardAuth's calls as the gateway's caller); the
/// gRPC port, for resource servers and other replicas, is guarded by the configured gateway
/// credential, or by one generated here that nobody else holds.
pub async fn start_all(
    settings: &Settings,
    http: TcpListener,
    grpc: TcpListener,
) -> anyhow::Result<Running> {
    start_all_with(settings, Deps::default(), http, grpc).await
}

/// [`start_all`] on the given dependencies (a test's clock, or its stores).
pub async fn start_all_with(
    settings: &Settings,
    deps: Deps,
    http: TcpListener,
    grpc: TcpListener,
) -> anyhow::Result<Running> {
    grpc_transport::install_crypto_provider();
    let transport = listener_transport(settings, &grpc)?;
    let secret = match &settings.gateway_secret {
        Some(s) => s.expose_secret().to_owned(),
        None => latchkey_core::secret::generate(),
    };
    let app = Application::build(settings, deps).await?;
    refuse_unprotected(settings, &app).await?;
    let core = app.core.clone();
    let in_process = latchkey_auth::server::in_process(app.core.clone(), app.readiness.clone());
    let (stop, rx) = watch::channel(false);
    let grpc_addr = grpc.local_addr()?;
    let http_addr = http.local_addr()?;
    let metrics = spawn_metrics(settings, Some(app.readiness.clone()), rx.clone()).await?;
    // The gateway calls the AuthService's implementation in process: the gRPC port still
    // serves resource servers and other replicas, but the gateway's calls are neither encoded
    // nor sent through a socket.
    let client = latchkey_gateway::client::in_process(
        in_process.auth,
        in_process.verification,
        in_process.admitted,
    );
    let gateway = spawn_gateway(settings, client, http, &rx).await?;
    let auth_task = spawn_auth(
        services(settings, &app, Some(secret.clone())),
        app,
        grpc,
        transport,
        rx.clone(),
    );
    Ok(Running {
        http_addr: Some(http_addr),
        grpc_addr: Some(grpc_addr),
        forward_auth_addr: gateway.addr,
        metrics_addr: metrics.addr,
        core: Some(core),
        stop,
        tasks: [vec![auth_task], gateway.tasks, metrics.tasks]
            .into_iter()
            .flatten()
            .collect(),
    })
}

/// The TLS and limits of the gRPC listener `grpc`, or every problem with them. Checked
/// against the address actually bound, before anything else starts.
fn listener_transport(
    settings: &Settings,
    grpc: &TcpListener,
) -> anyhow::Result<latchkey_auth::server::Transport> {
    grpc_transport::server_transport(settings, grpc.local_addr()?)
        .map_err(|p| anyhow::anyhow!("invalid configuration: {}", p.join("; ")))
}

/// Serves the AuthService on `grpc`, with the maintenance task beside it, until `rx` says
/// stop; maintenance ends after the server has drained.
fn spawn_auth(
    services: latchkey_auth::server::Services,
    app: Application,
    grpc: TcpListener,
    transport: latchkey_auth::server::Transport,
    rx: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let (stop_maintenance, maintenance_rx) = watch::channel(false);
        let maintenance = maintenance::spawn(&app, maintenance_rx);
        let served = latchkey_auth::server::serve(services, grpc, transport, stopped(rx)).await;
        let _ = stop_maintenance.send(true);
        for t in maintenance {
            let _ = t.await;
        }
        served.map_err(|e| anyhow::anyhow!(e))
    })
}

/// The gRPC services over the built application, with the gateway's and the operators'
/// credentials.
fn services(
    settings: &Settings,
    app: &Application,
    gateway_secret: Option<String>,
) -> latchkey_auth::server::Services {
    latchkey_auth::server::Services {
        core: app.core.clone(),
        readiness: app.readiness.clone(),
        gateway_secret,
        admin_secret: settings
            .admin_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        reflection: settings.grpc_reflection,
        traces_exported: telemetry::traces_exported(),
    }
}

/// Production refuses to serve with no protected resource: the development default (any
/// https or loopback URL is a resource) would let tokens name audiences nobody declared.
async fn refuse_unprotected(settings: &Settings, app: &Application) -> anyhow::Result<()> {
    if settings.env != config::Environment::Production {
        return Ok(());
    }
    if app.core.protected_resource_list().is_empty() {
        anyhow::bail!(
            "production needs at least one protected resource: `latchkey resource add URL --default`, or [[resources]] in the configuration file"
        );
    }
    Ok(())
}

/// `latchkey serve auth`: only the gRPC AuthService.
pub async fn start_auth(settings: &Settings, grpc: TcpListener) -> anyhow::Result<Running> {
    start_auth_with(settings, Deps::default(), grpc).await
}

/// [`start_auth`] on the given dependencies.
pub async fn start_auth_with(
    settings: &Settings,
    deps: Deps,
    grpc: TcpListener,
) -> anyhow::Result<Running> {
    grpc_transport::install_crypto_provider();
    let transport = listener_transport(settings, &grpc)?;
    let secret = settings
        .gateway_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    if secret.is_none() {
        tracing::warn!(
            "LATCHKEY_GATEWAY_SECRET is unset: gateway-only RPCs will refuse every caller"
        );
    }
    let app = Application::build(settings, deps).await?;
    refuse_unprotected(settings, &app).await?;
    let core = app.core.clone();
    let (stop, rx) = watch::channel(false);
    let grpc_addr = grpc.local_addr()?;
    let metrics = spawn_metrics(settings, Some(app.readiness.clone()), rx.clone()).await?;
    let task = spawn_auth(services(settings, &app, secret), app, grpc, transport, rx);
    Ok(Running {
        http_addr: None,
        grpc_addr: Some(grpc_addr),
        forward_auth_addr: None,
        metrics_addr: metrics.addr,
        core: Some(core),
        stop,
        tasks: [vec![task], metrics.tasks].into_iter().flatten().collect(),
    })
}

/// Serves the metrics port (metrics, health) when `metrics_addr` is set.
async fn spawn_metrics(
    settings: &Settings,
    probes: Option<Arc<dyn latchkey_auth::readiness::Readiness>>,
    rx: watch::Receiver<bool>,
) -> anyhow::Result<Served> {
    metrics_http::recorder();
    let Some(addr) = settings.metrics_addr else {
        return Ok(Served {
            addr: None,
            tasks: Vec::new(),
        });
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics port {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "metrics and health listening");
    let router = metrics_http::router(probes);
    let limits = settings.http_limits();
    Ok(Served {
        addr: Some(bound),
        tasks: vec![tokio::spawn(async move {
            latchkey_gateway::server::serve(
                router,
                listener,
                limits,
                Default::default(),
                stopped(rx),
            )
            .await?;
            Ok(())
        })],
    })
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
    grpc_transport::install_crypto_provider();
    let tls = grpc_transport::client_tls(settings, auth_url)
        .map_err(|p| anyhow::anyhow!("invalid configuration: {}", p.join("; ")))?;
    let endpoint = grpc_transport::endpoint(auth_url, tls).map_err(anyhow::Error::msg)?;
    let client =
        latchkey_gateway::client::connect(endpoint, &secret).map_err(anyhow::Error::msg)?;
    let (stop, rx) = watch::channel(false);
    let metrics = spawn_metrics(settings, None, rx.clone()).await?;
    let http_addr = http.local_addr()?;
    let gateway = spawn_gateway(settings, client, http, &rx).await?;
    Ok(Running {
        http_addr: Some(http_addr),
        grpc_addr: None,
        forward_auth_addr: gateway.addr,
        metrics_addr: metrics.addr,
        core: None,
        stop,
        tasks: [gateway.tasks, metrics.tasks]
            .into_iter()
            .flatten()
            .collect(),
    })
}
