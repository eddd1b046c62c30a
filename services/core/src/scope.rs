//! Scopes (RFC 6749 §3.3): parsing, the server's scope policy, and subset checks.

use crate::error::{AuthError, Reason};
use std::collections::BTreeSet;
use std::fmt;

/// The scope that asks for a refresh token; always accepted.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// RFC 6749 §3.3: NQCHAR = %x21 / %x23-5B / %x5D-7E, what a scope token is made of.
fn is_nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// The tokens of a space-delimited scope string, read in place, or `None` when it is not one
/// (a token not `1*NQCHAR`). The one reading of a scope string: [`ScopeSet::parse`] collects
/// it, and the token check on the hot path (`token::check_for_resource`) scans it.
pub(crate) fn tokens(s: &str) -> Option<impl Iterator<Item = &str> + Clone> {
    s.bytes()
        .all(|b| b == b' ' || is_nqchar(b))
        .then(|| s.split(' ').filter(|t| !t.is_empty()))
}

/// A set of scope tokens, kept sorted so that its string form is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited scope string. Each token must be `1*NQCHAR`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let tokens = tokens(s).ok_or(AuthError::InvalidScope(Reason::Malformed("scope")))?;
        Ok(Self(tokens.map(str::to_owned).collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The members of `self` that are not in `other`.
    pub fn difference<'a>(&'a self, other: &'a ScopeSet) -> Vec<&'a str> {
        self.0.difference(&other.0).map(String::as_str).collect()
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes in both sets.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn with(mut self, scope: &str) -> Self {
        self.0.insert(scope.to_owned());
        self
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// What a requested scope this server does not support comes to. RFC 6749 §3.3 lets the
/// server ignore it or refuse the request. Clients ask for scopes of their own habit (OpenID's
/// `openid email profile`, say), so they are ignored unless the operator chooses otherwise,
/// and the token response's `scope` says what was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownScopes {
    #[default]
    Ignore,
    /// `invalid_scope`, naming the first one.
    Reject,
}

/// Which scopes this server knows, what a request without `scope` gets, and what becomes of
/// the ones it does not know.
#[derive(Debug, Clone)]
pub struct ScopePolicy {
    supported: ScopeSet,
    default: ScopeSet,
    unknown: UnknownScopes,
}

impl ScopePolicy {
    /// `offline_access` is always supported. The defaults must be supported scopes.
    pub fn new(supported: ScopeSet, default: ScopeSet) -> Result<Self, String> {
        let supported = supported.with(OFFLINE_ACCESS);
        let unknown = default.difference(&supported);
        if !unknown.is_empty() {
            return Err(format!(
                "default scopes are not supported: {}",
                unknown.join(" ")
            ));
        }
        Ok(Self {
            supported,
            default,
            unknown: UnknownScopes::default(),
        })
    }

    pub fn with_unknown(self, unknown: UnknownScopes) -> Self {
        Self { unknown, ..self }
    }

    /// What a client asked for, less what this server does not support when unknown scopes
    /// are ignored; when they are refused, the first unsupported one.
    pub fn known(&self, asked: ScopeSet) -> Result<ScopeSet, String> {
        match (self.first_unsupported(&asked), self.unknown) {
            (None, _) => Ok(asked),
            (Some(_), UnknownScopes::Ignore) => Ok(asked.intersection(&self.supported)),
            (Some(first), UnknownScopes::Reject) => Err(first),
        }
    }

    pub fn supported(&self) -> &ScopeSet {
        &self.supported
    }

    /// The first scope of `set` this server does not support, if any.
    pub fn first_unsupported(&self, set: &ScopeSet) -> Option<String> {
        set.difference(&self.supported)
            .first()
            .map(|s| (*s).to_owned())
    }

    pub fn default_scopes(&self) -> &ScopeSet {
        &self.default
    }

    /// The scopes a request gets. Unknown ones are ignored or refused ([`UnknownScopes`]).
    /// A request that names no scope but `offline_access` (none at all, or only ignored ones)
    /// gets the defaults, with `offline_access` when it asked for it. Otherwise every scope it
    /// names must be supported and, when `allowed` is given, allowed.
    pub fn resolve(
        &self,
        requested: Option<&str>,
        allowed: Option<&ScopeSet>,
    ) -> Result<ScopeSet, AuthError> {
        let requested = match requested.filter(|s| !s.trim().is_empty()) {
            Some(s) => self
                .known(ScopeSet::parse(s)?)
                .map_err(|first| AuthError::InvalidScope(Reason::ScopeUnknown(first)))?,
            None => ScopeSet::default(),
        };
        if requested.iter().all(|s| s == OFFLINE_ACCESS) {
            let defaults = match allowed {
                Some(allowed) => self.default.intersection(allowed),
                None => self.default.clone(),
            };
            return match (defaults.is_empty(), requested.is_empty()) {
                // RFC 6749 §3.3: with no usable default, the request fails.
                (true, true) => Err(AuthError::InvalidScope(Reason::NoDefaultScope)),
                // `offline_access` alone, as asked, when there is no default to add.
                (true, false) => Ok(requested),
                (false, true) => Ok(defaults),
                (false, false) => Ok(defaults.with(OFFLINE_ACCESS)),
            };
        }
        if let Some(allowed) = allowed {
            let allowed = allowed.clone().with(OFFLINE_ACCESS);
            if let Some(first) = requested.difference(&allowed).first() {
                return Err(AuthError::InvalidScope(Reason::ScopeUnknown(
                    (*first).to_owned(),
                )));
            }
        }
        Ok(requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScopePolicy {
        ScopePolicy::new(
            ScopeSet::parse("mcp:tools mcp:resources mcp:prompts").expect("valid"),
            ScopeSet::parse("mcp:tools mcp:resources mcp:prompts").expect("valid"),
        )
        .expect("valid policy")
    }

    #[test]
    fn missing_scope_gets_the_defaults() {
        let got = policy().resolve(None, None).expect("defaults");
        assert_eq!(got.to_string(), "mcp:prompts mcp:resources mcp:tools");
    }

    #[test]
    fn offline_access_is_accepted() {
        let got = policy()
            .resolve(Some("mcp:tools offline_access"), None)
            .expect("ok");
        assert!(got.contains(OFFLINE_ACCESS));
    }

    #[test]
    fn malformed_scope_is_invalid_scope_and_unknown_scope_too_when_refused() {
        let refusing = policy().with_unknown(UnknownScopes::Reject);
        for s in ["mcp:tools \"quoted\"", "mcp:tools\\x"] {
            for p in [policy(), refusing.clone()] {
                let err = p.resolve(Some(s), None).expect_err(s);
                assert_eq!(err.code(), "invalid_scope", "{s}");
            }
        }
        for s in ["admin", "openid email profile", "mcp:tools openid"] {
            let err = refusing.resolve(Some(s), None).expect_err(s);
            assert_eq!(err.code(), "invalid_scope", "{s}");
        }
    }

    #[test]
    fn unknown_scopes_are_ignored_by_default_and_what_is_left_decides() {
        let allowed = ScopeSet::parse("mcp:tools mcp:resources").expect("valid");
        let cases: [(&str, Option<&ScopeSet>, &str); 6] = [
            ("mcp:tools openid", None, "mcp:tools"),
            (
                "openid email profile",
                None,
                "mcp:prompts mcp:resources mcp:tools",
            ),
            (
                "openid offline_access",
                None,
                "mcp:prompts mcp:resources mcp:tools offline_access",
            ),
            (
                "offline_access",
                None,
                "mcp:prompts mcp:resources mcp:tools offline_access",
            ),
            ("openid", Some(&allowed), "mcp:resources mcp:tools"),
            ("mcp:resources admin", Some(&allowed), "mcp:resources"),
        ];
        for (asked, allowed, granted) in cases {
            let got = policy().resolve(Some(asked), allowed).expect(asked);
            assert_eq!(got.to_string(), granted, "{asked}");
        }
        // A known scope the client may not have is still refused.
        let err = policy()
            .resolve(Some("mcp:prompts openid"), Some(&allowed))
            .expect_err("not allowed");
        assert_eq!(err.code(), "invalid_scope");
    }

    #[test]
    fn scopes_outside_the_allowed_set_are_refused() {
        let allowed = ScopeSet::parse("mcp:tools").expect("valid");
        let err = policy()
            .resolve(Some("mcp:prompts"), Some(&allowed))
            .expect_err("narrowed");
        assert_eq!(err.code(), "invalid_scope");
        let ok = policy()
            .resolve(None, Some(&allowed))
            .expect("defaults intersect");
        assert_eq!(ok.to_string(), "mcp:tools");
    }
}
