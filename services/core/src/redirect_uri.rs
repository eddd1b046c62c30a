//! Redirect URIs: what may be registered (RFC 7591, RFC 8252, RFC 9700 §2.1) and how a
//! requested URI is matched against the registered ones.

use crate::error::{AuthError, Reason};
use std::fmt;
use url::{Host, Url};

const MAX_LEN: usize = 2000;

/// Schemes that execute or embed content, never acceptable as a redirect target.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
];

/// Why a redirect URI was refused at registration (`invalid_redirect_uri`, RFC 7591 §3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectUriFault {
    /// RFC 6749 §4.1.1: a client of the authorization code grant must register one.
    Missing,
    TooMany,
    TooLong,
    /// The URL parser would drop them silently; the stored string must be what is matched.
    SpacesOrControls,
    NotAbsolute,
    /// RFC 6749 §3.1.2: the endpoint URI MUST NOT include a fragment component.
    Fragment,
    /// A scheme that executes or embeds content (`javascript:`, `data:`, …).
    SchemeNotAllowed,
    Credentials,
    HttpsWithoutHost,
    /// RFC 8252 §7.3 and OAuth 2.1: plain http only to the loopback interface.
    HttpNotLoopback,
    /// RFC 8252 §7.1: private-use URI schemes are for native (public) clients.
    PrivateUseSchemeForConfidentialClient,
}

impl fmt::Display for RedirectUriFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "the authorization_code grant needs at least one redirect URI",
            Self::TooMany => "too many redirect URIs",
            Self::TooLong => "redirect URI is too long",
            Self::SpacesOrControls => "redirect URI must not contain spaces or control characters",
            Self::NotAbsolute => "redirect URI is not an absolute URI",
            Self::Fragment => "redirect URI must not contain a fragment",
            Self::SchemeNotAllowed => "redirect URI scheme is not allowed",
            Self::Credentials => "redirect URI must not contain credentials",
            Self::HttpsWithoutHost => "https redirect URI needs a host",
            Self::HttpNotLoopback => "http redirect URIs must use a loopback host",
            Self::PrivateUseSchemeForConfidentialClient => {
                "private-use scheme redirect URIs are only for public clients"
            }
        })
    }
}

impl From<RedirectUriFault> for AuthError {
    fn from(fault: RedirectUriFault) -> Self {
        AuthError::InvalidRedirectUri(Reason::RedirectUri(fault))
    }
}

/// Validates a redirect URI at registration time, and returns it unchanged: matching is on
/// the exact string the client registered.
pub fn validate_for_registration(uri: &str, public_client: bool) -> Result<String, AuthError> {
    use RedirectUriFault as F;
    let invalid = |fault: RedirectUriFault| AuthError::from(fault);
    if uri.len() > MAX_LEN {
        return Err(invalid(F::TooLong));
    }
    // The URL parser would drop these silently; the stored string must be what is matched.
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(F::SpacesOrControls));
    }
    let url = Url::parse(uri).map_err(|_| invalid(F::NotAbsolute))?;
    // RFC 6749 §3.1.2: the endpoint URI MUST NOT include a fragment component.
    if url.fragment().is_some() || uri.contains('#') {
        return Err(invalid(F::Fragment));
    }
    if FORBIDDEN_SCHEMES.contains(&url.scheme()) {
        return Err(invalid(F::SchemeNotAllowed));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(F::Credentials));
    }
    match url.scheme() {
        "https" => {
            if url.host().is_none() {
                return Err(invalid(F::HttpsWithoutHost));
            }
        }
        // RFC 8252 §7.3 and OAuth 2.1: plain http only to the loopback interface.
        "http" => {
            if !is_loopback(&url) {
                return Err(invalid(F::HttpNotLoopback));
            }
        }
        // RFC 8252 §7.1: private-use URI schemes are for native (public) clients.
        _ => {
            if !public_client {
                return Err(invalid(F::PrivateUseSchemeForConfidentialClient));
            }
        }
    }
    Ok(uri.to_owned())
}

/// The install a redirect URI stands for: the URI itself, except that a loopback `http`
/// URI's port is left out, since a native app binds a new one on every run (RFC 8252 §7.3)
/// and is still the same install. Grants are kept per user and install, so that one device's
/// grant can be revoked while the user's other devices stay signed in.
pub fn install_key(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(mut url) if url.scheme() == "http" && is_loopback(&url) => {
            let _ = url.set_port(None);
            url.to_string()
        }
        _ => uri.to_owned(),
    }
}

/// Whether `url` points at the loopback interface (`localhost`, `127.0.0.1`, `[::1]`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Finds the registered redirect URI that `requested` matches.
///
/// Matching is exact string comparison (RFC 9700 §4.1.3), with one exception: a loopback
/// `http` URI may differ in port only (RFC 8252 §7.3), because native apps bind an ephemeral
/// port at run time.
///
/// For the loopback exception the requested URI must already be in the form the URL parser
/// writes it in: the parser drops surrounding spaces and control characters, tabs and
/// newlines, and resolves `..`, so without this a different string would match and be
/// stored and redirected to.
pub fn find_match<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    if let Some(exact) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(exact);
    }
    let req = Url::parse(requested).ok()?;
    if req.as_str() != requested {
        return None;
    }
    if req.scheme() != "http" || !is_loopback(&req) || req.fragment().is_some() {
        return None;
    }
    registered
        .iter()
        .find(|r| {
            Url::parse(r).is_ok_and(|reg| {
                reg.scheme() == "http"
                    && is_loopback(&reg)
                    && reg.host() == req.host()
                    && reg.path() == req.path()
                    && reg.query() == req.query()
                    && req.username().is_empty()
                    && req.password().is_none()
            })
        })
        .map(String::as_str)
}

/// The host to show the user on the consent page.
pub fn display_host(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(url) => match url.host_str() {
            Some(h) => h.to_owned(),
            None => format!("{}:", url.scheme()),
        },
        Err(_) => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_accepts_https_loopback_and_private_use() {
        for (uri, public) in [
            ("https://app.example.com/cb", false),
            ("http://localhost:3000/callback", true),
            ("http://127.0.0.1/callback", true),
            ("http://[::1]:8080/cb", true),
            ("cursor://anysphere.cursor-retrieval/oauth/callback", true),
        ] {
            assert!(validate_for_registration(uri, public).is_ok(), "{uri}");
        }
    }

    #[test]
    fn registration_rejections() {
        for (uri, public, why) in [
            ("javascript:alert(1)", true, "javascript"),
            ("data:text/html,hi", true, "data"),
            ("https://app.example.com/cb#frag", true, "fragment"),
            ("http://app.example.com/cb", true, "non-loopback http"),
            (
                "cursor://cb",
                false,
                "private-use scheme on confidential client",
            ),
            ("/relative", true, "relative"),
            ("https://user:pw@app.example.com/cb", true, "credentials"),
            (
                " https://app.example.com/cb",
                true,
                "a leading space the parser drops",
            ),
            (
                "https://app.example.com/c\tb",
                true,
                "a tab the parser drops",
            ),
            ("http://127.0.0.1/cb\u{1f}", true, "a control character"),
        ] {
            let err = validate_for_registration(uri, public).expect_err(why);
            assert_eq!(err.code(), "invalid_redirect_uri", "{why}");
        }
    }

    #[test]
    fn matching_is_exact_except_loopback_port() {
        let reg = vec![
            "https://app.example.com/cb".to_owned(),
            "http://127.0.0.1/callback".to_owned(),
            "http://localhost:3000/cb?x=1".to_owned(),
        ];
        assert!(find_match(&reg, "https://app.example.com/cb").is_some());
        assert!(find_match(&reg, "http://127.0.0.1:51234/callback").is_some());
        assert!(find_match(&reg, "http://localhost:9999/cb?x=1").is_some());
        for bad in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x",
            "https://APP.example.com/cb",
            "https://app.example.com:8443/cb",
            "http://127.0.0.1:5000/other",
            "http://localhost:3000/cb?x=2",
            "http://127.0.0.2/callback",
            "http://localhost:3000/cb",
            // What the parser would clean up must not match, or it would be stored as sent.
            "http://127.0.0.1/callback\0",
            "http://127.0.0.1:5555/callback\u{1f}",
            " http://127.0.0.1:5555/callback",
            "http://127.0.0.1:5555/call\tback",
            "http://127.0.0.1:5555/x/../callback",
            "http://LOCALHOST:9999/cb?x=1",
        ] {
            assert!(find_match(&reg, bad).is_none(), "{bad:?}");
        }
    }
}
