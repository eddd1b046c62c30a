//! What one fetch may do: how much it reads, how long it takes, whether it follows redirects,
//! which content types it accepts and which addresses it may reach. A policy is a parameter
//! of each fetch, never a setting of the fetcher, so the strict policy for URLs that clients
//! supply and a looser one for URLs that operators configure share one client.

use std::fmt;
use std::time::Duration;

/// The most redirects a policy may follow.
pub const MAX_REDIRECTS: u8 = 5;
/// The largest body a policy may accept.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest total timeout a policy may set.
pub const MAX_TOTAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Which addresses a fetch may connect to (see [`crate::address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Targets {
    /// Public unicast addresses only, over https only: for URLs that clients supply (a
    /// Client ID Metadata Document, a client's `jwks_uri`).
    Public,
    /// Anything but the unspecified, multicast, broadcast and cloud metadata addresses, over
    /// http or https: for URLs that operators configure, which may live inside the cluster.
    Any,
}

/// The content types a fetch accepts. Parameters (`; charset=utf-8`) are ignored and the
/// comparison ignores case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `application/json` and every `application/*+json` type (RFC 6839), among them
    /// `application/jwk-set+json`.
    Json,
    /// Exactly these types, given in lower case.
    OneOf(&'static [&'static str]),
}

impl Accept {
    /// Whether a `Content-Type` header value is accepted.
    pub fn accepts(&self, content_type: &str) -> bool {
        let essence = essence(content_type);
        match self {
            Self::Json => {
                essence == "application/json"
                    || essence
                        .strip_prefix("application/")
                        .and_then(|sub| sub.strip_suffix("+json"))
                        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
            }
            Self::OneOf(types) => types.iter().any(|t| t.eq_ignore_ascii_case(&essence)),
        }
    }

    /// The `Accept` request header for this set.
    pub(crate) fn header_value(&self) -> String {
        match self {
            Self::Json => "application/json".to_owned(),
            Self::OneOf(types) => types.join(", "),
        }
    }
}

/// The media type of a `Content-Type` value without its parameters, in lower case.
pub(crate) fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The limits of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// The largest body accepted, in bytes. A larger `Content-Length` is refused before the
    /// body is read; a body that keeps going is cut off here.
    pub max_bytes: usize,
    /// The time for the whole fetch: resolution, connection, TLS, every redirect, the body.
    pub total_timeout: Duration,
    /// How many redirects are followed, each checked as the first URL was. 0 refuses every
    /// redirect.
    pub max_redirects: u8,
    pub accept: Accept,
    pub targets: Targets,
}

impl FetchPolicy {
    /// A Client ID Metadata Document: 5 KB, 5 s, no redirect, JSON, public targets.
    pub const fn document() -> Self {
        Self {
            max_bytes: 5 * 1024,
            total_timeout: Duration::from_secs(5),
            max_redirects: 0,
            accept: Accept::Json,
            targets: Targets::Public,
        }
    }

    /// A client's key set (`jwks_uri`): as [`FetchPolicy::document`] but 64 KB, since key
    /// sets that carry certificate chains are large.
    pub const fn key_set() -> Self {
        Self {
            max_bytes: 64 * 1024,
            ..Self::document()
        }
    }

    /// Every problem with the policy. A fetch with an invalid policy fails with
    /// [`crate::FetchError::Policy`] before it does anything; configuration code can call
    /// this at startup instead.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_bytes == 0 || self.max_bytes > MAX_BODY_BYTES {
            return Err(PolicyError::MaxBytes(self.max_bytes));
        }
        if self.total_timeout.is_zero() || self.total_timeout > MAX_TOTAL_TIMEOUT {
            return Err(PolicyError::TotalTimeout(self.total_timeout));
        }
        if self.max_redirects > MAX_REDIRECTS {
            return Err(PolicyError::MaxRedirects(self.max_redirects));
        }
        if let Accept::OneOf(types) = self.accept
            && (types.is_empty() || types.iter().any(|t| *t != essence(t) || !t.contains('/')))
        {
            return Err(PolicyError::Accept);
        }
        Ok(())
    }
}

/// A policy outside the bounds this crate allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("max_bytes is {0}; it must be between 1 and {MAX_BODY_BYTES}")]
    MaxBytes(usize),
    #[error("total_timeout is {0:?}; it must be above zero and at most {MAX_TOTAL_TIMEOUT:?}")]
    TotalTimeout(Duration),
    #[error("max_redirects is {0}; it must be at most {MAX_REDIRECTS}")]
    MaxRedirects(u8),
    #[error("accept must list at least one media type, in lower case and without parameters")]
    Accept,
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Any => "any",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_accepts_application_json_and_plus_json_types_only() {
        let cases: &[(&str, bool)] = &[
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/jwk-set+json", true),
            ("application/vnd.example+json;v=1", true),
            ("application/+json", false),
            ("text/json", false),
            ("text/html", false),
            ("application/jsonp", false),
            ("application/json-patch", false),
            ("application/x/y+json", false),
            ("", false),
        ];
        for (ct, want) in cases {
            assert_eq!(Accept::Json.accepts(ct), *want, "{ct:?}");
        }
        let jwks = Accept::OneOf(&["application/jwk-set+json"]);
        assert!(jwks.accepts("application/jwk-set+json; charset=utf-8"));
        assert!(!jwks.accepts("application/json"));
    }

    #[test]
    fn a_policy_out_of_bounds_is_reported_not_clamped() {
        let base = FetchPolicy::document();
        let cases: Vec<(FetchPolicy, PolicyError)> = vec![
            (
                FetchPolicy {
                    max_bytes: 0,
                    ..base.clone()
                },
                PolicyError::MaxBytes(0),
            ),
            (
                FetchPolicy {
                    max_bytes: MAX_BODY_BYTES + 1,
                    ..base.clone()
                },
                PolicyError::MaxBytes(MAX_BODY_BYTES + 1),
            ),
            (
                FetchPolicy {
                    total_timeout: Duration::ZERO,
                    ..base.clone()
                },
                PolicyError::TotalTimeout(Duration::ZERO),
            ),
            (
                FetchPolicy {
                    max_redirects: MAX_REDIRECTS + 1,
                    ..base.clone()
                },
                PolicyError::MaxRedirects(MAX_REDIRECTS + 1),
            ),
            (
                FetchPolicy {
                    accept: Accept::OneOf(&["Application/JSON"]),
                    ..base.clone()
                },
                PolicyError::Accept,
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(policy.validate(), Err(want.clone()), "{want}");
        }
        assert_eq!(FetchPolicy::document().validate(), Ok(()));
        assert_eq!(FetchPolicy::key_set().validate(), Ok(()));
        assert_eq!(FetchPolicy::key_set().max_bytes, 65536);
    }
}
