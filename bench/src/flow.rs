//! The full login-to-token path under load, as MCP clients drive it: register → authorize →
//! login → consent → token → refresh, each iteration a new client and a new browser session.

use anyhow::{Context, bail};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STEPS: [&str; 6] = [
    "register",
    "authorize",
    "login",
    "consent",
    "token",
    "refresh",
];
const REDIRECT: &str = "http://127.0.0.1:7777/callback";

fn csrf(html: &str) -> anyhow::Result<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).context("no csrf field")? + marker.len();
    let end = html[start..].find('"').context("unterminated csrf")? + start;
    Ok(html[start..end].to_owned())
}

async fn one_flow(
    base: &str,
    email: &str,
    password: &str,
    times: &mut [Vec<u32>; 6],
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()?;
    let mut step = 0;
    let mut t = Instant::now();
    let mut lap = |times: &mut [Vec<u32>; 6], t: &mut Instant| {
        times[step].push(t.elapsed().as_micros() as u32);
        step += 1;
        *t = Instant::now();
    };
    let reg: serde_json::Value = http
        .post(format!("{base}/register"))
        .json(&serde_json::json!({"client_name": "load", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}))
        .send()
        .await?
        .json()
        .await?;
    let client_id = reg["client_id"].as_str().context("client_id")?.to_owned();
    lap(times, &mut t);
    let verifier = format!(
        "{}{}",
        client_id, "-load-test-verifier-0123456789abcdefghij"
    );
    // S256 with SHA-256 is what the server checks; compute it properly.
    let challenge = {
        use sha2_compat::digest;
        digest(&verifier)
    };
    let page = http
        .get(format!("{base}/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "s"),
            ("resource", "https://mcp.example.com/mcp"),
        ])
        .send()
        .await?;
    if page.status() != 200 {
        bail!("authorize: {}", page.status());
    }
    let html = page.text().await?;
    lap(times, &mut t);
    let consent = http
        .post(format!("{base}/authorize/login"))
        .form(&[
            ("csrf_token", csrf(&html)?.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await?;
    if consent.status() != 200 {
        bail!("login: {}", consent.status());
    }
    let html = consent.text().await?;
    lap(times, &mut t);
    let done = http
        .post(format!("{base}/authorize/consent"))
        .form(&[("csrf_token", csrf(&html)?.as_str()), ("decision", "allow")])
        .send()
        .await?;
    let location = done
        .headers()
        .get("location")
        .context("no redirect")?
        .to_str()?
        .to_owned();
    let code = url_param(&location, "code").context("no code")?;
    lap(times, &mut t);
    let tokens: serde_json::Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let refresh = tokens["refresh_token"]
        .as_str()
        .context("no refresh token")?
        .to_owned();
    lap(times, &mut t);
    let refreshed = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await?;
    if refreshed.status() != 200 {
        bail!("refresh: {}", refreshed.status());
    }
    lap(times, &mut t);
    Ok(())
}

fn url_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// SHA-256 for PKCE, via the sha2 crate that ed25519-dalek already depends on.
mod sha2_compat {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};

    pub fn digest(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
    }
}

pub async fn run(
    base: &str,
    email: &str,
    password: &str,
    concurrency: usize,
    seconds: u64,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let (email, password, base) = (
        Arc::new(email.to_owned()),
        Arc::new(password.to_owned()),
        Arc::new(base.to_owned()),
    );
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (email, password, base) = (email.clone(), password.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut times: [Vec<u32>; 6] = Default::default();
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut errors: HashMap<String, u64> = HashMap::new();
            while Instant::now() < deadline {
                match one_flow(&base, &email, &password, &mut times).await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        failed += 1;
                        *errors.entry(e.to_string()).or_default() += 1;
                    }
                }
            }
            (times, ok, failed, errors)
        }));
    }
    let mut all: [Vec<u32>; 6] = Default::default();
    let (mut ok, mut failed) = (0, 0);
    let mut errors: HashMap<String, u64> = HashMap::new();
    for t in tasks {
        let (times, o, f, e) = t.await?;
        for (i, v) in times.into_iter().enumerate() {
            all[i].extend(v);
        }
        ok += o;
        failed += f;
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "flow: conc={concurrency} completed={ok} failed={failed} flows_per_s={:.1}",
        ok as f64 / elapsed
    );
    for (i, name) in STEPS.iter().enumerate() {
        let v = &mut all[i];
        v.sort_unstable();
        let pct = |p: f64| {
            v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        println!(
            "flow step {name}: n={} p50_ms={:.2} p99_ms={:.2}",
            v.len(),
            pct(0.5),
            pct(0.99)
        );
    }
    for (e, n) in errors {
        println!("flow error ({n}x): {e}");
    }
    if let Some(pid) = pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM")) {
            println!(
                "server peak RSS: {}",
                line.trim_start_matches("VmHWM:").trim()
            );
        }
    }
    Ok(())
}
