//! The audience and scope of a new grant or token, decided once for every grant type: the
//! authorization request (a user's grant) and `client_credentials` (no user) differ only in
//! where the audience may come from.

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
        let allowed = allowed_scopes(
            client.scope.as_ref(),
            protected.and_then(|p| p.scopes.as_ref()),
        );
        let scope = self
            .settings
            .scopes
            .resolve(requested_scope, allowed.as_ref())?;
        Ok((audience, scope))
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
