//! Token introspection (RFC 7662) and access-token verification for resource servers
//! (RFC 6750, RFC 9068 §4).
//!
//! Checking an access token touches no database: the signature against keys in memory, a
//! cache of tokens already verified, and the in-memory denylist that revocations fan out to.

use crate::AuthCore;
use crate::client_auth::PresentedCredentials;
use crate::error::{AuthError, AuthResult, Reason, TokenFault};
use crate::model::Client;
use crate::resource::Resource;
use crate::secret;
use crate::token::{self, AccessTokenClaims};
use std::sync::Arc;

/// RFC 7662 §2.2. An inactive token is a normal answer, not an error; it carries nothing
/// but `active: false`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    /// RFC 6749 §7.1 type of an access token; absent for a refresh token.
    pub token_type: Option<String>,
}

/// Who is asking to verify a token.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The gateway (ForwardAuth): any audience it is told to check.
    Gateway,
    /// A resource server: only the audiences it owns.
    ResourceServer(Arc<Client>),
}

fn normalize(resource: &str) -> String {
    Resource::parse(resource)
        .map(|r| r.as_str().to_owned())
        .unwrap_or_else(|_| resource.to_owned())
}

impl AuthCore {
    /// The claims of a live access token, or why it is not live: signature, `typ`, `iss`,
    /// `exp`/`nbf`, then revocation of the token, its grant, its user or its client.
    pub async fn check_access_token(&self, token: &str) -> AuthResult<Arc<AccessTokenClaims>> {
        let now = self.clock.now().timestamp();
        let claims = match self.verified.get(token) {
            Some(c) => c,
            None => {
                let signed = token::parse(&self.keys(), token)?;
                let (key, message, signature) = signed.signature_parts();
                if !self.signatures.verify(key, message, signature).await {
                    return Err(token::bad_signature());
                }
                let c = Arc::new(signed.claims(
                    &self.settings.issuer,
                    now,
                    self.settings.leeway_secs,
                )?);
                self.verified.insert(token, c.clone(), now);
                c
            }
        };
        let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(0);
        if claims.exp.saturating_add(leeway) <= now {
            return Err(AuthError::InvalidToken(Reason::Token(TokenFault::Expired)));
        }
        if self.denylist.is_revoked(&claims) {
            return Err(AuthError::InvalidToken(Reason::Token(TokenFault::Revoked)));
        }
        Ok(claims)
    }

    /// Authenticates a resource server: a confidential client that owns at least one
    /// protected resource.
    pub async fn authenticate_resource_server(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> AuthResult<Arc<Client>> {
        let client = crate::client_auth::confidential(
            self.authenticate_basic(client_id, client_secret).await?,
        )?;
        if client.resources.is_empty() {
            return Err(AuthError::AccessDenied(Reason::OwnsNoResource));
        }
        Ok(client)
    }

    /// Verifies an access token for a resource server: live, for `audience`, with every one
    /// of `required_scopes`. A resource server may name only an audience it owns; with
    /// exactly one, it may leave `audience` empty.
    pub async fn verify_token(
        &self,
        caller: &Caller,
        token: &str,
        audience: &str,
        required_scopes: &[String],
    ) -> AuthResult<Arc<AccessTokenClaims>> {
        let wanted = match (caller, audience.is_empty()) {
            (Caller::ResourceServer(c), true) => match c.resources.as_slice() {
                [only] => only.clone(),
                _ => return Err(AuthError::InvalidRequest(Reason::Missing("audience"))),
            },
            // RFC 8707 / MCP: a token is only good for the resource it was minted for, so the
            // audience is never defaulted to "any".
            (Caller::Gateway, true) => {
                return Err(AuthError::InvalidRequest(Reason::Missing("audience")));
            }
            // The caller's own resource names are already normal: skip the URL parse.
            (Caller::ResourceServer(c), false) if c.resources.iter().any(|r| r == audience) => {
                audience.to_owned()
            }
            (_, false) => normalize(audience),
        };
        if let Caller::ResourceServer(c) = caller
            && !c.resources.contains(&wanted)
        {
            return Err(AuthError::AccessDenied(Reason::AudienceNotOwned));
        }
        let claims = self.check_access_token(token).await?;
        crate::token::check_for_resource(&claims, &wanted, required_scopes)?;
        Ok(claims)
    }

    /// RFC 7662. The caller must be an authenticated confidential client, and learns only
    /// about tokens for a resource it owns or tokens issued to itself; anything else is
    /// inactive to it (RFC 7662 §4: no token scanning).
    pub async fn introspect(
        &self,
        token: &str,
        hint: Option<&str>,
        creds: &PresentedCredentials,
        repeated: &[String],
    ) -> AuthResult<Introspection> {
        // RFC 6749 §3.2 / RFC 7662 §2.1: parameters must not repeat.
        if let Some(p) = repeated.first() {
            return Err(AuthError::InvalidRequest(Reason::Repeated(p.clone())));
        }
        let caller = self.authenticate_confidential_client(creds).await?;
        if token.is_empty() {
            return Err(AuthError::InvalidRequest(Reason::Missing("token")));
        }
        // The hint only orders the lookups (RFC 7662 §2.1).
        let found = if hint == Some("refresh_token") {
            match self.introspect_refresh(token).await? {
                Some(i) => Some(i),
                None => self.introspect_access(token).await?,
            }
        } else {
            match self.introspect_access(token).await? {
                Some(i) => Some(i),
                None => self.introspect_refresh(token).await?,
            }
        };
        let visible = found.filter(|i| {
            i.client_id.as_deref() == Some(caller.id.as_str())
                || i.aud
                    .as_ref()
                    .is_some_and(|aud| caller.resources.contains(aud))
        });
        Ok(visible.unwrap_or_default())
    }

    async fn introspect_access(&self, token: &str) -> AuthResult<Option<Introspection>> {
        if token.split('.').count() != 3 {
            return Ok(None);
        }
        match self.check_access_token(token).await {
            Ok(c) => Ok(Some(Introspection {
                active: true,
                scope: Some(c.scope.clone()),
                client_id: Some(c.client_id.clone()),
                sub: Some(c.sub.clone()),
                aud: Some(c.aud.clone()),
                iss: Some(c.iss.clone()),
                exp: Some(c.exp),
                iat: Some(c.iat),
                jti: Some(c.jti.clone()),
                token_type: Some("Bearer".into()),
            })),
            Err(AuthError::InvalidToken(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn introspect_refresh(&self, token: &str) -> AuthResult<Option<Introspection>> {
        let now = self.clock.now();
        let Some(rt) = self
            .stores
            .grants
            .find_refresh_token(&secret::hash(token))
            .await?
        else {
            return Ok(None);
        };
        if rt.consumed_at.is_some() || rt.expires_at <= now {
            return Ok(None);
        }
        let Some(grant) = self
            .stores
            .grants
            .find_grant(rt.grant_id)
            .await?
            .filter(|g| g.revoked_at.is_none())
        else {
            return Ok(None);
        };
        // RFC 7662 §2.2: active means usable. A grant whose resource was deleted issues no
        // more tokens (see the refresh grant), so its refresh tokens are inactive too; so are
        // those of a grant past its maximum age.
        if !self.resource_still_protected(&grant.resource) || !self.within_max_age(&grant, now) {
            return Ok(None);
        }
        let Some(user) = self
            .stores
            .users
            .find_user(grant.user_id)
            .await?
            .filter(|u| !u.disabled)
        else {
            return Ok(None);
        };
        // No token_type: RFC 7662 §2.2 means an RFC 6749 §7.1 access token type, and a refresh
        // token has none. No username: the subject identifies the user well enough.
        Ok(Some(Introspection {
            active: true,
            // What a refresh would issue now: the grant's scope with what the resource's
            // hierarchy implies (the token response said as much).
            scope: Some(self.token_scope(&grant.resource, &grant.scope).to_string()),
            client_id: Some(grant.client_id),
            sub: Some(user.id.to_string()),
            aud: Some(grant.resource),
            iss: Some(self.settings.issuer.clone()),
            exp: Some(rt.expires_at.timestamp()),
            // Not stored: a token lives its TTL, unless the grant's maximum age cut it short,
            // and it is never older than its grant.
            iat: Some(
                (rt.expires_at - self.settings.refresh_token_ttl)
                    .max(grant.created_at)
                    .timestamp(),
            ),
            jti: None,
            token_type: None,
        }))
    }
}
