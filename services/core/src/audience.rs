//! The audience and scope of a new grant or token, decided once for every grant type: the
//! authorization request (a user's grant) and `client_credentials` (no user) differ only in
//! where the audience may come from. The scope a token carries, with what its resource's
//! scope hierarchy implies, is decided here too ([`AuthCore::token_scope`]).

use crate::AuthCore;
use crate::error::AuthResult;
use crate::model::Client;
use crate::resource::{self, Resource};
use crate::scope::ScopeSet;

/// Whose grant it is, which decides where its audience may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behalf {
    /// A user's: any protected resource (RFC 8707), the default one when none is named.
    User,
    /// The client's own (no user): only a resource the operator listed on it.
    Client,
}

impl AuthCore {
    /// Resolves the RFC 8707 `resource` parameters to an audience, and the requested scope
    /// (or the defaults) to what the client and that resource both allow.
    pub(crate) fn audience_and_scope(
        &self,
        client: &Client,
        behalf: Behalf,
        requested_resources: &[String],
        requested_scope: Option<&str>,
    ) -> AuthResult<(Resource, ScopeSet)> {
        let registered = self.protected_resources();
        let (audience, protected) = match behalf {
            Behalf::User => resource::resolve(
                requested_resources,
                &registered,
                self.settings.open_resources,
                &self.settings.issuer,
            )?,
            Behalf::Client => resource::resolve_listed(
                requested_resources,
                &client.audiences,
                &registered,
                self.settings.open_resources,
            )?,
        };
        // A client allowed a scope may ask for what it implies alone (`admin` lets it ask for
        // `files:read` only): the token it would get with the wider scope grants that anyway.
        let client_scope = match (client.scope.as_ref(), protected) {
            (Some(c), Some(p)) if !p.implies.is_empty() => {
                Some(p.implies.expand(c, self.accepted_scopes(p)))
            }
            (c, _) => c.cloned(),
        };
        let allowed = allowed_scopes(
            client_scope.as_ref(),
            protected.and_then(|p| p.scopes.as_ref()),
        );
        let scope = self
            .settings
            .scopes
            .resolve(requested_scope, allowed.as_ref())?;
        Ok((audience, scope))
    }
}

impl AuthCore {
    /// The scope of an access token for `audience` from a grant of `granted`: `granted` and,
    /// when `audience` is a registered resource with a scope hierarchy, every scope it
    /// implies, transitively (MCP 2026-07-28). Every token is minted with it, the token
    /// response and introspection report it, and a refresh applies the hierarchy as it is
    /// then. This is the one place a hierarchy is applied: verifiers only read `scope`
    /// (see `scope_hierarchy` for why).
    pub(crate) fn token_scope(&self, audience: &str, granted: &ScopeSet) -> ScopeSet {
        let registered = self.protected_resources();
        match registered
            .iter()
            .find(|p| resource::same(p.resource.as_str(), audience))
        {
            Some(p) if !p.implies.is_empty() => p.implies.expand(granted, self.accepted_scopes(p)),
            _ => granted.clone(),
        }
    }

    /// The scopes a resource accepts now: its own list, or every scope this server supports.
    fn accepted_scopes<'a>(&'a self, p: &'a resource::ProtectedResource) -> &'a ScopeSet {
        p.scopes
            .as_ref()
            .unwrap_or_else(|| self.settings.scopes.supported())
    }
}

/// The scopes a client may get for a resource: its registered scopes, narrowed by the
/// resource's; `None` when neither restricts.
fn allowed_scopes(client: Option<&ScopeSet>, resource: Option<&ScopeSet>) -> Option<ScopeSet> {
    match (client, resource) {
        (Some(c), Some(r)) => Some(c.intersection(r)),
        (c, r) => c.or(r).cloned(),
    }
}
