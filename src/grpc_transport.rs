//! The gRPC plane's transport, from the settings: TLS on the AuthService's listener (and the
//! client certificates it may require), TLS for the binary's own clients of a remote
//! AuthService (`serve gateway`, `--remote`), the listener's limits, and the rule production
//! holds them to: no plaintext gRPC on any address but loopback.
//!
//! Client certificates add to the credentials, never replace them: with
//! `LATCHKEY_GRPC_TLS_CLIENT_CA` set, a caller needs a certificate signed by that CA *and* its
//! bearer secret or Basic credentials. A certificate says "this peer is part of the
//! deployment"; the credential still says which kind of caller it is, and so which service
//! it may call.
//!
//! The in-process gateway of `latchkey serve` has no socket and none of this applies to it.

use crate::config::{Environment, Settings};
use latchkey_auth::server::{Limits, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Installs ring as the process's rustls crypto provider, once. sqlx and tonic both use
/// ring, but a dependency may compile in a second provider (reqwest's rustls brings aws-lc),
/// and rustls then refuses to pick one by itself. Later calls do nothing.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: the first one stays, which is the point.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads a PEM file that must hold at least one certificate.
fn certificates(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    let count = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|_| ()))
        .collect::<Result<Vec<()>, _>>()
        .map_err(|e| format!("{what}: {} is not PEM: {e}", path.display()))?
        .len();
    if count == 0 {
        return Err(format!(
            "{what}: {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(pem)
}

/// Reads a PEM file that must hold a private key (PKCS#8, PKCS#1 or SEC1).
fn private_key(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("{what}: {} holds no PEM private key", path.display()))?;
    Ok(pem)
}

/// A certificate and key given as a pair: both or neither.
fn identity(
    names: (&str, &str),
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<Identity>, Vec<String>> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => match (certificates(names.0, cert), private_key(names.1, key)) {
            (Ok(cert), Ok(key)) => Ok(Some(Identity::from_pem(cert, key))),
            (a, b) => Err([a.err(), b.err()].into_iter().flatten().collect()),
        },
        _ => Err(vec![format!(
            "{} and {} go together: set both or neither",
            names.0, names.1
        )]),
    }
}

/// Whether an address stays on this machine.
fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// The listener's TLS, read from its files; `None` for plaintext.
fn server_tls(settings: &Settings) -> Result<Option<ServerTlsConfig>, Vec<String>> {
    let names = ("LATCHKEY_GRPC_TLS_CERT", "LATCHKEY_GRPC_TLS_KEY");
    let identity = identity(
        names,
        settings.grpc_tls_cert.as_deref(),
        settings.grpc_tls_key.as_deref(),
    );
    let client_ca = settings
        .grpc_tls_client_ca
        .as_deref()
        .map(|p| certificates("LATCHKEY_GRPC_TLS_CLIENT_CA", p))
        .transpose();
    match (identity, client_ca) {
        (Ok(None), Ok(Some(_))) => Err(vec![
            "LATCHKEY_GRPC_TLS_CLIENT_CA needs TLS: set LATCHKEY_GRPC_TLS_CERT and LATCHKEY_GRPC_TLS_KEY too".into(),
        ]),
        (Ok(None), Ok(None)) => Ok(None),
        (Ok(Some(identity)), Ok(client_ca)) => {
            let mut tls = ServerTlsConfig::new().identity(identity);
            if let Some(ca) = client_ca {
                tls = tls.client_ca_root(Certificate::from_pem(ca));
            }
            // Builds rustls's configuration once, so that a certificate and key that do not
            // belong together are reported now, not at the first connection.
            tonic::transport::Server::builder()
                .tls_config(tls.clone())
                .map_err(|e| vec![format!("the gRPC TLS certificate and key: {e}")])?;
            Ok(Some(tls))
        }
        (identity, client_ca) => {
            let mut problems = identity.err().unwrap_or_default();
            problems.extend(client_ca.err());
            Err(problems)
        }
    }
}

/// The listener's limits, as configured; each must be positive.
fn limits(settings: &Settings) -> Result<Limits, Vec<String>> {
    let mut problems = Vec::new();
    let min_message = 64 * 1024;
    if settings.grpc_max_receive_message_bytes < min_message
        || settings.grpc_max_send_message_bytes < min_message
    {
        problems.push(format!(
            "grpc_max_receive_message_bytes and grpc_max_send_message_bytes must be at least {min_message}"
        ));
    }
    // The gateway forwards request bodies of up to max_body_bytes inside one message, with
    // the request's other fields beside them.
    let forwarded = settings.max_body_bytes.saturating_add(16 * 1024);
    if settings.grpc_max_receive_message_bytes < forwarded {
        problems.push(format!(
            "grpc_max_receive_message_bytes must be at least max_body_bytes + 16384 ({forwarded}): the gateway forwards bodies inside its requests"
        ));
    }
    if settings.grpc_concurrency_per_connection == 0 || settings.grpc_max_concurrent_streams == 0 {
        problems.push(
            "grpc_concurrency_per_connection and grpc_max_concurrent_streams must be at least 1"
                .into(),
        );
    }
    if settings.grpc_keepalive_interval_secs == 0
        || settings.grpc_keepalive_timeout_secs == 0
        || settings.grpc_keepalive_timeout_secs >= settings.grpc_keepalive_interval_secs
    {
        problems.push(
            "grpc_keepalive_interval_secs and grpc_keepalive_timeout_secs must be at least 1, the timeout shorter than the interval"
                .into(),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Limits {
        max_receive_message_bytes: settings.grpc_max_receive_message_bytes,
        max_send_message_bytes: settings.grpc_max_send_message_bytes,
        concurrency_per_connection: settings.grpc_concurrency_per_connection,
        max_concurrent_streams: settings.grpc_max_concurrent_streams,
        keepalive_interval: Duration::from_secs(settings.grpc_keepalive_interval_secs),
        keepalive_timeout: Duration::from_secs(settings.grpc_keepalive_timeout_secs),
    })
}

/// How the listener bound at `bound` is served: its TLS and limits, or every problem with
/// them. Production refuses plaintext unless `bound` is loopback.
pub fn server_transport(settings: &Settings, bound: SocketAddr) -> Result<Transport, Vec<String>> {
    let tls = server_tls(settings);
    let limits = limits(settings);
    let mut problems = Vec::new();
    if settings.env == Environment::Production && matches!(tls, Ok(None)) && !is_loopback(&bound) {
        problems.push(format!(
            "production refuses plaintext gRPC on {bound}, which is not loopback: set LATCHKEY_GRPC_TLS_CERT and LATCHKEY_GRPC_TLS_KEY (or listen on 127.0.0.1)"
        ));
    }
    match (tls, limits) {
        (Ok(tls), Ok(limits)) if problems.is_empty() => Ok(Transport { tls, limits }),
        (tls, limits) => {
            problems.extend(tls.err().unwrap_or_default());
            problems.extend(limits.err().unwrap_or_default());
            Err(problems)
        }
    }
}

/// The listener's problems, for `validate`: its files are read, as they will be at start.
pub(crate) fn server_problems(settings: &Settings) -> Vec<String> {
    server_transport(settings, settings.grpc_addr)
        .err()
        .unwrap_or_default()
}

/// Whether `url`'s host is this machine.
fn url_is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// TLS for a client of the AuthService at `url`: `None` for `http://`, the CA (and the
/// client certificate, when configured) for `https://`. Production refuses `http://` to any
/// host but loopback.
pub fn client_tls(settings: &Settings, url: &str) -> Result<Option<ClientTlsConfig>, Vec<String>> {
    let parsed = url::Url::parse(url)
        .map_err(|e| vec![format!("the AuthService URL {url:?} is not a URL: {e}")])?;
    let identity = identity(
        ("LATCHKEY_AUTH_CLIENT_CERT", "LATCHKEY_AUTH_CLIENT_KEY"),
        settings.auth_client_cert.as_deref(),
        settings.auth_client_key.as_deref(),
    );
    match parsed.scheme() {
        "http" => {
            let mut problems = Vec::new();
            if settings.auth_ca_file.is_some() || !matches!(identity, Ok(None)) {
                problems.push(format!(
                    "LATCHKEY_AUTH_CA_FILE and LATCHKEY_AUTH_CLIENT_CERT need an https:// AuthService URL, not {url}"
                ));
            }
            if settings.env == Environment::Production && !url_is_loopback(&parsed) {
                problems.push(format!(
                    "production refuses plaintext gRPC to {url}, which is not loopback: use https:// with LATCHKEY_AUTH_CA_FILE"
                ));
            }
            if problems.is_empty() {
                Ok(None)
            } else {
                Err(problems)
            }
        }
        "https" => {
            let ca = match settings.auth_ca_file.as_deref() {
                Some(p) => certificates("LATCHKEY_AUTH_CA_FILE", p).map_err(|e| vec![e]),
                None => Err(vec![format!(
                    "an https:// AuthService ({url}) needs LATCHKEY_AUTH_CA_FILE, the CA that signed its certificate"
                )]),
            };
            match (ca, identity) {
                (Ok(ca), Ok(identity)) => {
                    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
                    if let Some(identity) = identity {
                        tls = tls.identity(identity);
                    }
                    Ok(Some(tls))
                }
                (ca, identity) => {
                    let mut problems = ca.err().unwrap_or_default();
                    problems.extend(identity.err().unwrap_or_default());
                    Err(problems)
                }
            }
        }
        other => Err(vec![format!(
            "the AuthService URL {url:?} must be http:// or https://, not {other}://"
        )]),
    }
}

/// The gateway's problems reaching the AuthService at `auth_url`, for `validate`.
pub(crate) fn client_problems(settings: &Settings) -> Vec<String> {
    client_tls(settings, &settings.auth_url)
        .err()
        .unwrap_or_default()
}

/// A channel to the AuthService at `url`, over TLS when `tls` is given.
pub fn endpoint(
    url: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<tonic::transport::Endpoint, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("bad AuthService URL {url:?}: {e}"))?;
    match tls {
        Some(tls) => endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS for {url}: {e}")),
        None => Ok(endpoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Settings {
        Settings {
            env: Environment::Production,
            ..Settings::default()
        }
    }

    #[test]
    fn production_refuses_plaintext_grpc_off_loopback_and_development_allows_it() {
        let everywhere: SocketAddr = "0.0.0.0:50051".parse().expect("addr");
        for (settings, addr, refused) in [
            (production(), everywhere, true),
            (production(), "10.1.2.3:50051".parse().expect("addr"), true),
            (
                production(),
                "127.0.0.1:50051".parse().expect("addr"),
                false,
            ),
            (production(), "[::1]:50051".parse().expect("addr"), false),
            (Settings::default(), everywhere, false),
        ] {
            let problems = server_transport(&settings, addr).err().unwrap_or_default();
            assert_eq!(
                problems.iter().any(|p| p.contains("plaintext")),
                refused,
                "{:?} on {addr}: {problems:?}",
                settings.env
            );
        }
        for (url, refused) in [
            ("http://latchkey-auth.latchkey.svc:50051", true),
            ("http://10.0.0.7:50051", true),
            ("http://127.0.0.1:50051", false),
            ("http://localhost:50051", false),
            ("http://[::1]:50051", false),
        ] {
            let problems = client_tls(&production(), url).err().unwrap_or_default();
            assert_eq!(
                problems.iter().any(|p| p.contains("plaintext")),
                refused,
                "{url}: {problems:?}"
            );
            assert!(client_tls(&Settings::default(), url).is_ok(), "{url}");
        }
    }

    #[test]
    fn tls_settings_that_cannot_work_are_reported_never_ignored() {
        let missing = Some(std::path::PathBuf::from("/nonexistent/latchkey/tls.pem"));
        let cases: Vec<(&str, Settings, &str)> = vec![
            (
                "a certificate without its key",
                Settings {
                    grpc_tls_cert: missing.clone(),
                    ..Settings::default()
                },
                "go together",
            ),
            (
                "a client CA without TLS",
                Settings {
                    grpc_tls_client_ca: missing.clone(),
                    ..Settings::default()
                },
                "cannot read",
            ),
            (
                "files that are not there",
                Settings {
                    grpc_tls_cert: missing.clone(),
                    grpc_tls_key: missing.clone(),
                    ..Settings::default()
                },
                "cannot read",
            ),
        ];
        for (what, settings, needle) in cases {
            let problems = server_problems(&settings);
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{what}: {problems:?}"
            );
        }
        let https_without_ca = client_tls(&Settings::default(), "https://auth.internal:50051");
        assert!(
            https_without_ca
                .err()
                .unwrap_or_default()
                .iter()
                .any(|p| p.contains("LATCHKEY_AUTH_CA_FILE")),
        );
        let ca_over_http = Settings {
            auth_ca_file: missing,
            ..Settings::default()
        };
        assert!(client_tls(&ca_over_http, "http://127.0.0.1:50051").is_err());
        assert!(client_tls(&Settings::default(), "ftp://127.0.0.1:50051").is_err());
    }

    #[test]
    fn grpc_limits_out_of_range_are_reported_never_clamped() {
        let s = Settings {
            grpc_max_receive_message_bytes: 1024,
            grpc_concurrency_per_connection: 0,
            grpc_keepalive_interval_secs: 10,
            grpc_keepalive_timeout_secs: 10,
            ..Settings::default()
        };
        let problems = server_problems(&s);
        for needle in [
            "grpc_max_receive_message_bytes",
            "max_body_bytes",
            "grpc_concurrency_per_connection",
            "grpc_keepalive_timeout_secs",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
        let defaults = server_transport(&Settings::default(), Settings::default().grpc_addr)
            .expect("the defaults are valid");
        assert_eq!(defaults.limits, Limits::default());
        assert!(defaults.tls.is_none());
    }
}
