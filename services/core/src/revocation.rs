//! Token revocation (RFC 7009).

use crate::AuthCore;
use crate::client_auth::PresentedCredentials;
use crate::error::{AuthError, AuthResult, Reason};
use crate::secret;
use crate::token;
use chrono::{DateTime, Utc};

impl AuthCore {
    /// Revokes a refresh token (and with it its whole grant, RFC 7009 §2.1) or an access token.
    ///
    /// An unknown or invalid token is answered with success (RFC 7009 §2.2). A token issued to
    /// another client is refused with `unauthorized_client` (RFC 7009 §2.1).
    pub async fn revoke(
        &self,
        token: &str,
        hint: Option<&str>,
        creds: &PresentedCredentials,
        repeated: &[String],
    ) -> AuthResult<()> {
        let client = self.authenticate_client(creds).await?;
        // RFC 6749 §3.2 / RFC 7009 §2.1: parameters must not repeat.
        if let Some(p) = repeated.first() {
            return Err(AuthError::InvalidRequest(Reason::Repeated(p.clone())));
        }
        if token.is_empty() {
            return Err(AuthError::InvalidRequest(Reason::Missing("token")));
        }
        let now = self.clock.now();
        let foreign = || {
            AuthError::UnauthorizedClient(Reason::Text("the token was not issued to this client"))
        };
        if let Some(rt) = self
            .stores
            .grants
            .find_refresh_token(&secret::hash(token))
            .await?
        {
            if let Some(grant) = self.stores.grants.find_grant(rt.grant_id).await? {
                if grant.client_id != client.id {
                    return Err(foreign());
                }
                self.stores.grants.revoke_grant(grant.id, now).await?;
                tracing::info!(client_id = %client.id, grant_id = %grant.id, "refresh token revoked");
            }
            return Ok(());
        }
        let _ = hint; // RFC 7009 §2.1: the hint is optional; we look the token up either way.
        if let Ok(claims) = token::verify(
            &self.keys,
            token,
            &self.settings.issuer,
            self.clock.now().timestamp(),
            self.settings.leeway_secs,
        ) {
            if claims.client_id != client.id {
                return Err(foreign());
            }
            let expires_at = DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or(now);
            self.stores
                .revocations
                .revoke_access_token(&claims.jti, expires_at)
                .await?;
            tracing::info!(client_id = %client.id, "access token revoked");
        }
        Ok(())
    }
}
