//! Token introspection (RFC 7662) and access-token verification for resource servers
//! (RFC 6750, RFC 9068 §4).

use crate::AuthCore;
use crate::client_auth::PresentedCredentials;
use crate::error::{AuthError, AuthResult, Reason};
use crate::scope::ScopeSet;
use crate::secret;
use crate::token::{self, AccessTokenClaims};
use uuid::Uuid;

/// RFC 7662 §2.2. An inactive token is a normal answer, not an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    pub scope: String,
    pub client_id: String,
    pub sub: String,
    pub aud: String,
    pub iss: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub token_type: String,
    pub username: String,
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
        if !audience.is_empty() {
            let wanted = crate::resource::Resource::parse(audience)
                .map(|r| r.as_str().to_owned())
                .unwrap_or_else(|_| audience.to_owned());
            if claims.aud != wanted {
                return Err(AuthError::InvalidToken(Reason::Token(
                    "token is for another audience",
                )));
            }
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
    ) -> AuthResult<Introspection> {
        self.authenticate_confidential_client(creds).await?;
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
                scope: c.scope,
                client_id: c.client_id,
                username: String::new(),
                sub: c.sub,
                aud: c.aud,
                iss: c.iss,
                exp: c.exp,
                iat: c.iat,
                jti: c.jti,
                token_type: "Bearer".into(),
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
        Ok(Some(Introspection {
            active: true,
            scope: ScopeSet::parse(&grant.scope)?.to_string(),
            client_id: grant.client_id,
            sub: user.id.to_string(),
            username: user.email,
            aud: grant.resource,
            iss: self.settings.issuer.clone(),
            exp: rt.expires_at.timestamp(),
            iat: 0,
            jti: String::new(),
            token_type: "refresh_token".into(),
        }))
    }
}
