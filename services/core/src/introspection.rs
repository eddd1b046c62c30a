//! Token introspection (RFC 7662) and access-token verification for resource servers
//! (RFC 6750, RFC 9068 §4).

use crate::AuthCore;
use crate::client_auth::PresentedCredentials;
use crate::error::{AuthError, AuthResult, Reason};
use crate::scope::ScopeSet;
use crate::secret;
use crate::token::{self, AccessTokenClaims};
use uuid::Uuid;

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

impl AuthCore {
    /// The claims of a live access token, or why it is not live. Signature, `typ`, `iss`,
    /// `exp`; then revocation of the token, of its grant, and of its user.
    pub async fn check_access_token(&self, token: &str) -> AuthResult<AccessTokenClaims> {
        let claims = token::verify(
            &self.keys,
            token,
            &self.settings.issuer,
            self.clock.now().timestamp(),
            self.settings.leeway_secs,
        )?;
        let revoked = || AuthError::InvalidToken(Reason::Token("token revoked"));
        if self
            .stores
            .revocations
            .is_access_token_revoked(&claims.jti)
            .await?
        {
            return Err(revoked());
        }
        if let Some(sid) = claims.sid.as_deref() {
            let grant_id = Uuid::parse_str(sid)
                .map_err(|_| AuthError::InvalidToken(Reason::Token("malformed token")))?;
            let grant = self.stores.grants.find_grant(grant_id).await?;
            let Some(grant) = grant.filter(|g| g.revoked_at.is_none()) else {
                return Err(revoked());
            };
            match self.stores.users.find_user(grant.user_id).await? {
                Some(u) if !u.disabled => {}
                _ => return Err(revoked()),
            }
        } else if self
            .stores
            .clients
            .find_client(&claims.client_id)
            .await?
            .is_none()
        {
            return Err(revoked());
        }
        Ok(claims)
    }

    /// Verifies an access token for a resource server: live, for `audience`, with every one
    /// of `required_scopes`.
    pub async fn verify_token(
        &self,
        token: &str,
        audience: &str,
        required_scopes: &[String],
    ) -> AuthResult<AccessTokenClaims> {
        let claims = self.check_access_token(token).await?;
        // RFC 8707 / MCP: a resource server must only accept tokens minted for it, so the
        // audience is required, never defaulted to "any".
        if audience.is_empty() {
            return Err(AuthError::InvalidRequest(Reason::Missing("audience")));
        }
        let wanted = crate::resource::Resource::parse(audience)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|_| audience.to_owned());
        if claims.aud != wanted {
            return Err(AuthError::InvalidToken(Reason::Token(
                "token is for another audience",
            )));
        }
        let granted = claims.scopes();
        let missing: Vec<&String> = required_scopes
            .iter()
            .filter(|s| !granted.contains(s))
            .collect();
        if !missing.is_empty() {
            let all = required_scopes.join(" ");
            return Err(AuthError::InsufficientScope(Reason::Owned(format!(
                "requires scope: {all}"
            ))));
        }
        Ok(claims)
    }

    /// RFC 7662 §2.1: the caller must be an authenticated confidential client.
    pub async fn introspect(
        &self,
        token: &str,
        hint: Option<&str>,
        creds: &PresentedCredentials,
        repeated: &[String],
    ) -> AuthResult<Introspection> {
        self.authenticate_confidential_client(creds).await?;
        // RFC 6749 §3.2 / RFC 7662 §2.1: parameters must not repeat.
        if let Some(p) = repeated.first() {
            return Err(AuthError::InvalidRequest(Reason::Repeated(p.clone())));
        }
        if token.is_empty() {
            return Err(AuthError::InvalidRequest(Reason::Missing("token")));
        }
        // The hint only orders the lookups (RFC 7662 §2.1).
        let access_first = hint != Some("refresh_token");
        let result = if access_first {
            match self.introspect_access(token).await? {
                Some(i) => Some(i),
                None => self.introspect_refresh(token).await?,
            }
        } else {
            match self.introspect_refresh(token).await? {
                Some(i) => Some(i),
                None => self.introspect_access(token).await?,
            }
        };
        Ok(result.unwrap_or_default())
    }

    async fn introspect_access(&self, token: &str) -> AuthResult<Option<Introspection>> {
        if token.split('.').count() != 3 {
            return Ok(None);
        }
        match self.check_access_token(token).await {
            Ok(c) => Ok(Some(Introspection {
                active: true,
                scope: Some(c.scope),
                client_id: Some(c.client_id),
                sub: Some(c.sub),
                aud: Some(c.aud),
                iss: Some(c.iss),
                exp: Some(c.exp),
                iat: Some(c.iat),
                jti: Some(c.jti),
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
            scope: Some(ScopeSet::parse(&grant.scope)?.to_string()),
            client_id: Some(grant.client_id),
            sub: Some(user.id.to_string()),
            aud: Some(grant.resource),
            iss: Some(self.settings.issuer.clone()),
            exp: Some(rt.expires_at.timestamp()),
            iat: Some(rt_issued_at(&rt, self.settings.refresh_token_ttl)),
            jti: None,
            token_type: None,
        }))
    }
}

/// A refresh token's issue time: its expiry minus its lifetime.
fn rt_issued_at(rt: &crate::model::RefreshToken, ttl: chrono::Duration) -> i64 {
    (rt.expires_at - ttl).timestamp()
}
