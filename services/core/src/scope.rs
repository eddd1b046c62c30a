//! Scopes (RFC 6749 §3.3): parsing, the server's scope policy, and subset checks.

use crate::error::{AuthError, Reason};
use std::collections::BTreeSet;
use std::fmt;

/// The scope that asks for a refresh token; always accepted.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// A set of scope tokens, kept sorted so that its string form is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited scope string. Each token must be `1*NQCHAR`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            // RFC 6749 §3.3: NQCHAR = %x21 / %x23-5B / %x5D-7E
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !valid {
                return Err(AuthError::InvalidScope(Reason::Malformed("scope")));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
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

/// Which scopes this server knows, and what a request without `scope` gets.
#[derive(Debug, Clone)]
pub struct ScopePolicy {
    supported: ScopeSet,
    default: ScopeSet,
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
        Ok(Self { supported, default })
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

    /// The scopes a request gets: the defaults when `scope` is absent or empty, otherwise the
    /// requested ones, each of which must be supported and, when `allowed` is given, allowed.
    pub fn resolve(
        &self,
        requested: Option<&str>,
        allowed: Option<&ScopeSet>,
    ) -> Result<ScopeSet, AuthError> {
        let requested = match requested {
            Some(s) if !s.trim().is_empty() => ScopeSet::parse(s)?,
            _ => {
                let defaults = match allowed {
                    Some(allowed) => self.default.intersection(allowed),
                    None => self.default.clone(),
                };
                // RFC 6749 §3.3: with no usable default, the request fails.
                if defaults.is_empty() {
                    return Err(AuthError::InvalidScope(Reason::NoDefaultScope));
                }
                return Ok(defaults);
            }
        };
        let unknown = requested.difference(&self.supported);
        if let Some(first) = unknown.first() {
            return Err(AuthError::InvalidScope(Reason::ScopeUnknown(
                (*first).to_owned(),
            )));
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
    fn unknown_or_malformed_scope_is_invalid_scope() {
        for s in ["admin", "mcp:tools \"quoted\"", "mcp:tools\\x"] {
            let err = policy().resolve(Some(s), None).expect_err(s);
            assert_eq!(err.code(), "invalid_scope", "{s}");
        }
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
