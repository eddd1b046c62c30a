//! What went wrong with a fetch, and with building a fetcher. Each `Display` text is safe to
//! show an operator: it names no credential and quotes nothing from a response body. Causes
//! (an I/O or TLS error) travel as `source()`, for the one place that logs the chain.

use crate::address::Refusal;
use crate::limits::Limit;
use crate::policy::PolicyError;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("the fetch policy is invalid: {0}")]
    Policy(#[from] PolicyError),
    #[error("the URL is not acceptable: {0}")]
    InvalidUrl(UrlProblem),
    /// An `http` URL where only `https` is allowed ([`crate::Targets::Public`]).
    #[error("only https URLs may be fetched")]
    NotHttps,
    #[error("only http and https URLs may be fetched")]
    UnsupportedScheme,
    /// The URL's IP literal, or an address its host name resolved to, is one the policy
    /// refuses. Nothing was connected to.
    #[error("refused to connect to {address}: {refusal}")]
    RefusedAddress { address: IpAddr, refusal: Refusal },
    #[error("the host name could not be resolved")]
    Resolve(#[source] std::io::Error),
    #[error("the host name resolved to no address")]
    NoAddress,
    #[error("could not connect to the server")]
    Connect(#[source] std::io::Error),
    #[error("the TLS handshake with the server failed")]
    Tls(#[source] rustls::Error),
    /// The whole fetch (every hop, the body) took longer than the policy's total timeout.
    #[error("the fetch did not finish within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A status other than 200 (and not a redirect that was followed).
    #[error("the server answered with HTTP status {0}")]
    Status(u16),
    /// The `Content-Type` is missing or not one the policy accepts. `received` is the
    /// server's value, with anything but printable ASCII replaced and cut to 64 characters.
    #[error("the response's content type is not accepted (received {})", .received.as_deref().unwrap_or("none"))]
    ContentType { received: Option<String> },
    #[error("the response is encoded (Content-Encoding), and only identity is accepted")]
    ContentEncoding,
    /// The body (announced or read) is over the policy's `max_bytes`.
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Redirect(RedirectProblem),
    /// A bound of [`crate::Limits`] refused the fetch before it started.
    #[error("too many fetches: {0}")]
    TooManyRequests(Limit),
    /// The server's response was not valid HTTP/1.1, or the connection broke mid-response.
    #[error("the server's HTTP response could not be read")]
    Http(#[source] BoxError),
}

/// What is wrong with a URL before anything is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("it has a user name or password")]
    Userinfo,
    #[error("it has a fragment")]
    Fragment,
    #[error("it has no host")]
    NoHost,
    #[error("its host is not a valid TLS server name")]
    ServerName,
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectProblem {
    #[error("the server redirected (HTTP {0}), and this fetch follows no redirects")]
    NotFollowed(u16),
    #[error("the server redirected more than {0} times")]
    TooMany(u8),
    #[error("the server redirected without a usable Location")]
    BadLocation,
}

/// Why a fetcher could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("cannot read the outbound CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the outbound CA PEM is not valid")]
    CaPem(#[source] rustls::pki_types::pem::Error),
    #[error("the outbound CA PEM holds no certificate")]
    NoCertificate,
    #[error("the outbound CA certificate cannot be used as a root")]
    CaRoot(#[source] rustls::Error),
    #[error("the TLS configuration could not be built")]
    Tls(#[source] rustls::Error),
    #[error("the outbound limits are invalid: {0}")]
    Limits(&'static str),
    #[error("the user agent is not a valid header value")]
    UserAgent,
}

/// A server-supplied header value made safe to print: printable ASCII only, 64 characters.
pub(crate) fn sanitize(value: &[u8]) -> String {
    value
        .iter()
        .take(64)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}
