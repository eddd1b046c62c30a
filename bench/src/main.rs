//! `latchkey-bench`: a load generator for the verification plane, run beside a live server
//! on loopback (never a timed test). See `bench/run.sh`.
//!
//! - `bare`: raw Ed25519 verifications per second on this core, the yardstick.
//! - `verify`: gRPC `VerifyToken` under load; reports requests/s, latency percentiles and,
//!   given the server's pid, requests per server CPU-second and the ratio to `--bare-rate`.
//! - `ping`: the same load on `latchkey-ceiling ping`, a unary RPC that does no work: the
//!   floor `verify` is compared with.
//!
//! `verify` and `ping` speak plaintext to an `http://` address (the default, on loopback), and
//! TLS to an `https://` one, trusting `--ca-file` (and presenting `--client-cert` and
//! `--client-key` when the server requires client certificates).

mod flow;

use anyhow::Context;
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use latchkey_bench::ping::PingRequest;
use latchkey_bench::ping::ping_client::PingClient;
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::auth_service_client::AuthServiceClient;
use latchkey_proto::v1::verification_service_client::VerificationServiceClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// TLS to an `https://` server.
#[derive(Args, Clone)]
struct TlsArgs {
    /// The CA (PEM) that signed the server's certificate.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// This client's certificate (PEM), when the server requires one.
    #[arg(long, requires = "client_key")]
    client_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The client TLS for `url`: none for `http://`; the CA (and identity) for `https://`.
    fn config(&self, url: &str) -> anyhow::Result<Option<ClientTlsConfig>> {
        if !url.starts_with("https://") {
            anyhow::ensure!(
                self.ca_file.is_none() && self.client_cert.is_none(),
                "--ca-file and --client-cert need an https:// address"
            );
            return Ok(None);
        }
        let ca = self
            .ca_file
            .as_ref()
            .context("an https:// address needs --ca-file")?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
            std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?,
        ));
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(cert)?,
                std::fs::read(key)?,
            ));
        }
        Ok(Some(tls))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Raw Ed25519 verifications per second on one thread.
    Bare {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// The full login-to-token flow over HTTP.
    Flow {
        #[arg(long, default_value = "http://127.0.0.1:18080")]
        base: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Load `VerifyToken`.
    Verify {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        grpc: String,
        /// Gateway secret, to mint the tokens (client_credentials through ExchangeToken).
        #[arg(long)]
        gateway_secret: String,
        /// A confidential client that owns `--audience` and may use client_credentials.
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        #[arg(long, default_value = "https://mcp.example.com/mcp")]
        audience: String,
        /// Live tokens to cycle through; 0 means a fresh token for every request.
        #[arg(long, default_value_t = 1000)]
        tokens: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The server's pid, to read its CPU time from /proc.
        #[arg(long)]
        pid: Option<u32>,
        /// Bare verifications per second on the server's core, for the ratio.
        #[arg(long)]
        bare_rate: Option<f64>,
        #[arg(long, default_value = "verify")]
        label: String,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Load `latchkey-ceiling ping` exactly as `verify` loads `VerifyToken`: the same
    /// connections, concurrency and `authorization` metadata, and a request of the same size.
    Ping {
        #[arg(long, default_value = "http://127.0.0.1:15060")]
        grpc: String,
        /// Bytes of payload per request: the size of a `VerifyToken` request.
        #[arg(long, default_value_t = 640)]
        payload_bytes: usize,
        /// Sent as `authorization` metadata, as `verify` sends the resource server's.
        #[arg(long, default_value = "bench")]
        client_id: String,
        #[arg(long, default_value = "bench")]
        client_secret: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long, default_value = "ping")]
        label: String,
        #[command(flatten)]
        tls: TlsArgs,
    },
}

fn bare(seconds: u64) -> f64 {
    let key = SigningKey::from_bytes(&rand::random());
    // A message the size of an access token's signing input.
    let msg = vec![b'a'; 560];
    let sig = key.sign(&msg);
    let public = key.verifying_key();
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..100 {
            if public.verify(std::hint::black_box(&msg), &sig).is_ok() {
                n += 1;
            }
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / 100.0)
}

fn basic(id: &str, secret: &str) -> anyhow::Result<MetadataValue<tonic::metadata::Ascii>> {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    Ok(format!("Basic {b}").parse()?)
}

async fn mint(
    channel: Channel,
    gateway: &str,
    client_id: &str,
    client_secret: &str,
    audience: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut client = AuthServiceClient::new(channel);
    let auth: MetadataValue<_> = format!("Bearer {gateway}").parse()?;
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = tonic::Request::new(pb::ExchangeTokenRequest {
            grant_type: "client_credentials".into(),
            resource: vec![audience.to_owned()],
            scope: Some("mcp:tools".into()),
            client: Some(pb::ClientAuthentication {
                basic: Some(pb::BasicCredentials {
                    client_id: client_id.to_owned(),
                    client_secret: client_secret.to_owned(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        req.metadata_mut().insert("authorization", auth.clone());
        tokens.push(client.exchange_token(req).await?.into_inner().access_token);
    }
    Ok(tokens)
}

/// One HTTP/2 connection per 8 concurrent callers, as a resource server's pool would hold.
async fn connect(grpc: &str, tls: &TlsArgs, concurrency: usize) -> anyhow::Result<Vec<Channel>> {
    let tls = tls.config(grpc)?;
    let mut v = Vec::new();
    for _ in 0..concurrency.div_ceil(8) {
        let mut endpoint = Endpoint::from_shared(grpc.to_owned())?;
        if let Some(tls) = &tls {
            endpoint = endpoint.tls_config(tls.clone())?;
        }
        v.push(endpoint.connect().await?);
    }
    Ok(v)
}

/// Latencies (µs) of the successful calls and the count of failed ones, from every task.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, u64)>>,
) -> anyhow::Result<(Vec<u32>, u64)> {
    let mut latencies = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await?;
        latencies.extend(l);
        failures += f;
    }
    latencies.sort_unstable();
    Ok((latencies, failures))
}

/// The latency at quantile `p` of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0) as f64
        / 1000.0
}

#[allow(clippy::too_many_arguments)]
async fn ping_load(
    grpc: &str,
    tls: &TlsArgs,
    payload_bytes: usize,
    client_id: &str,
    client_secret: &str,
    concurrency: usize,
    seconds: u64,
    pid: Option<u32>,
    label: &str,
) -> anyhow::Result<()> {
    let channels = connect(grpc, tls, concurrency).await?;
    let auth = basic(client_id, client_secret)?;
    let payload = vec![b'a'; payload_bytes];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = pid.map(cpu_seconds).transpose()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let mut client = PingClient::new(channels[i % channels.len()].clone());
        let (auth, payload) = (auth.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut failures = 0u64;
            while Instant::now() < deadline {
                // A fresh copy per call, as `verify` clones its token into each request.
                let mut req = tonic::Request::new(PingRequest {
                    payload: payload.clone(),
                });
                req.metadata_mut().insert("authorization", auth.clone());
                let t = Instant::now();
                match client.ping(req).await {
                    Ok(_) => latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let (latencies, failures) = collect(tasks).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let ok = latencies.len() as f64;
    println!(
        "{label}: conc={concurrency} payload_bytes={payload_bytes} ok={} failed={failures} rps={:.0} p50_ms={:.3} p99_ms={:.3}",
        latencies.len(),
        ok / elapsed,
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99)
    );
    if let (Some(p), Some(before)) = (pid, cpu_before) {
        let cpu = cpu_seconds(p)? - before;
        println!(
            "{label}: server_cpu_s={cpu:.2} rps_per_server_cpu_s={:.0}",
            ok / cpu
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn verify_load(
    grpc: &str,
    tls: &TlsArgs,
    gateway_secret: &str,
    client_id: &str,
    client_secret: &str,
    audience: &str,
    tokens: usize,
    concurrency: usize,
    seconds: u64,
    pid: Option<u32>,
    bare_rate: Option<f64>,
    label: &str,
) -> anyhow::Result<()> {
    let channels = connect(grpc, tls, concurrency).await?;
    // All-distinct: no token is ever sent twice. The pool is sized for 40,000 verifications
    // per second, above what one server core does; should it run out, the run ends early.
    let distinct = tokens == 0;
    let pool_size = if distinct {
        (seconds as usize * 40_000).max(50_000)
    } else {
        tokens
    };
    eprintln!("{label}: minting {pool_size} tokens");
    let mut pool = Vec::with_capacity(pool_size);
    let per_task = pool_size.div_ceil(8);
    let mut minting = Vec::new();
    for i in 0..8 {
        let ch = channels[i % channels.len()].clone();
        let (g, id, s, a) = (
            gateway_secret.to_owned(),
            client_id.to_owned(),
            client_secret.to_owned(),
            audience.to_owned(),
        );
        minting.push(tokio::spawn(async move {
            mint(ch, &g, &id, &s, &a, per_task).await
        }));
    }
    for m in minting {
        pool.extend(m.await??);
    }
    pool.truncate(pool_size);
    let pool = Arc::new(pool);
    let auth = basic(client_id, client_secret)?;
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = pid.map(cpu_seconds).transpose()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let mut client = VerificationServiceClient::new(channels[i % channels.len()].clone());
        let (pool, next, auth, audience) = (
            pool.clone(),
            next.clone(),
            auth.clone(),
            audience.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut failures = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if distinct && i >= pool.len() {
                    break;
                }
                let token = pool[i % pool.len()].clone();
                let mut req = tonic::Request::new(pb::VerifyTokenRequest {
                    token,
                    audience: audience.clone(),
                    required_scopes: vec!["mcp:tools".into()],
                });
                req.metadata_mut().insert("authorization", auth.clone());
                let t = Instant::now();
                match client.verify_token(req).await {
                    Ok(r) if r.get_ref().valid => {
                        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32)
                    }
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let (latencies, failures) = collect(tasks).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (pid, cpu_before) {
        (Some(p), Some(before)) => Some(cpu_seconds(p)? - before),
        _ => None,
    };
    let pct = |p: f64| percentile_ms(&latencies, p);
    let ok = latencies.len() as f64;
    let wrapped = !distinct && next.load(Ordering::Relaxed) > pool.len();
    println!(
        "{label}: conc={concurrency} tokens={} reused={wrapped} ok={} failed={failures} rps={:.0} p50_ms={:.3} p99_ms={:.3}",
        pool.len(),
        latencies.len(),
        ok / elapsed,
        pct(0.50),
        pct(0.99)
    );
    if let Some(cpu) = cpu {
        let per_cpu = ok / cpu;
        print!("{label}: server_cpu_s={cpu:.2} rps_per_server_cpu_s={per_cpu:.0}");
        if let Some(bare) = bare_rate {
            print!(
                " bare_verify_per_s={bare:.0} ratio_vs_bare={:.2}",
                per_cpu / bare
            );
        }
        println!();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Flow {
            base,
            email,
            password,
            concurrency,
            seconds,
            pid,
        } => flow::run(&base, &email, &password, concurrency, seconds, pid).await?,
        Cmd::Ping {
            grpc,
            payload_bytes,
            client_id,
            client_secret,
            concurrency,
            seconds,
            pid,
            label,
            tls,
        } => {
            ping_load(
                &grpc,
                &tls,
                payload_bytes,
                &client_id,
                &client_secret,
                concurrency,
                seconds,
                pid,
                &label,
            )
            .await?
        }
        Cmd::Bare { seconds } => println!("bare_verify_per_s={:.0}", bare(seconds)),
        Cmd::Verify {
            grpc,
            gateway_secret,
            client_id,
            client_secret,
            audience,
            tokens,
            concurrency,
            seconds,
            pid,
            bare_rate,
            label,
            tls,
        } => {
            verify_load(
                &grpc,
                &tls,
                &gateway_secret,
                &client_id,
                &client_secret,
                &audience,
                tokens,
                concurrency,
                seconds,
                pid,
                bare_rate,
                &label,
            )
            .await?
        }
    }
    Ok(())
}
