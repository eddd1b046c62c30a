//! Decoding `application/x-www-form-urlencoded` bodies, query strings and HTTP Basic
//! credentials. Decoding only: which parameters are required, and what repeats mean, is the
//! core's to decide.

use crate::error::OAuthError;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use latchkey_proto::credentials::{BasicError, decode_basic};
use latchkey_proto::v1::OauthErrorCode;
use std::collections::HashMap;

/// Parameters by name, in order of appearance.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, Vec<String>>);

impl Params {
    /// Parses urlencoded pairs. RFC 6749 §3.1: a parameter sent without a value is treated as
    /// omitted.
    pub fn parse(input: &[u8]) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(input) {
            if !v.is_empty() {
                map.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        Self(map)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(|v| v.first()).cloned()
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// Names that appear more than once (sorted, for stable messages).
    pub fn repeated(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, _)| k.clone())
            .collect();
        names.sort();
        names
    }
}

/// Reads a form body: the content type must be urlencoded, and the body within the limit.
pub fn form_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Params, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::new(
            OauthErrorCode::InvalidRequest,
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let body = body.map_err(body_error)?;
    Ok(Params::parse(&body))
}

/// Maps a body-read failure (most often: too large) to an OAuth error.
pub fn body_error(rejection: BytesRejection) -> OAuthError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        OAuthError::new(
            OauthErrorCode::InvalidRequest,
            "the request body is too large",
        )
    } else {
        OAuthError::invalid_request("the request body could not be read")
    }
}

/// Decodes `Authorization: Basic`, each part percent-decoded (RFC 6749 §2.3.1).
/// `Ok(None)` when there is no Authorization header.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed =
        || OAuthError::new(OauthErrorCode::InvalidClient, "malformed Basic credentials");
    let value = value.to_str().map_err(|_| malformed())?;
    match decode_basic(value) {
        Ok(pair) => Ok(Some(pair)),
        Err(BasicError::NotBasic) => Err(OAuthError::new(
            OauthErrorCode::InvalidClient,
            "client authentication must use the Basic scheme",
        )),
        Err(BasicError::Malformed) => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_omitted_and_repeats_are_reported() {
        let p = Params::parse(b"a=1&b=&c=2&c=3&resource=x&resource=y");
        assert_eq!(p.get("a").as_deref(), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.repeated(), vec!["c".to_owned(), "resource".to_owned()]);
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine;
        use base64::engine::general_purpose::STANDARD;
        let mut h = HeaderMap::new();
        let enc = STANDARD.encode("my%20id:s%3Acret+x");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {enc}").parse().expect("header"),
        );
        let (id, secret) = basic_credentials(&h).expect("ok").expect("some");
        assert_eq!(id, "my id");
        assert_eq!(secret, "s:cret x");
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().expect("header"));
        assert!(basic_credentials(&h).is_err());
    }
}
