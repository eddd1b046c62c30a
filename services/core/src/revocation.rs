//! Token revocation (RFC 7009), and the administrative revocations (users, clients).

use crate::AuthCore;
use crate::client_auth::PresentedCredentials;
use crate::denylist::RevokedKind;
use crate::error::{AuthError, AuthResult, Reason};
use crate::secret;
use crate::token;

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
        // RFC 6749 §3.2 / RFC 7009 §2.1: parameters must not repeat.
        if let Some(p) = repeated.first() {
            return Err(AuthError::InvalidRequest(Reason::Repeated(p.clone())));
        }
        let client = self.authenticate_client(creds).await?;
        if token.is_empty() {
            return Err(AuthError::InvalidRequest(Reason::Missing("token")));
        }
        let foreign = || AuthError::UnauthorizedClient(Reason::TokenOfAnotherClient);
        // RFC 7009 §2.1: the hint only orders the lookups; both kinds are tried.
        let _ = hint;
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
                self.revoke_grant(grant.id, &client.id).await?;
            }
            return Ok(());
        }
        let keys = self.keys();
        let now = self.clock.now().timestamp();
        if let Ok(claims) = token::verify(
            &keys,
            token,
            &self.settings.issuer,
            now,
            self.settings.leeway_secs,
        ) {
            if claims.client_id != client.id {
                return Err(foreign());
            }
            // Already revoked (by this token, its grant, user or client): nothing to add, so
            // repeating the request cannot grow the revocation log.
            if self.denylist.is_revoked(&claims) {
                return Ok(());
            }
            let in_force = self
                .stores
                .revocations
                .count_token_revocations(&client.id, now)
                .await?;
            if in_force >= self.settings.max_token_revocations_per_client {
                return self.revoke_past_the_bound(&client.id, &claims).await;
            }
            let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(0);
            self.publish_revocation(
                RevokedKind::Token,
                claims.jti.clone(),
                claims.exp + leeway,
                Some(&client.id),
            )
            .await?;
        }
        Ok(())
    }

    /// A client has as many access-token revocations in force as it may: every replica holds
    /// each of them in memory until the token expires, so one client minting and revoking
    /// tokens in a loop must not grow that without bound. The token is still revoked, by
    /// revoking its whole grant: one event per grant, however many of its tokens follow.
    /// A token without a grant (`client_credentials`) stays valid until it expires, and the
    /// client is told to retry later (RFC 7009 §2.2.1 allows `temporarily_unavailable`'s 503).
    async fn revoke_past_the_bound(
        &self,
        client_id: &str,
        claims: &token::AccessTokenClaims,
    ) -> AuthResult<()> {
        let grant = claims
            .sid
            .as_deref()
            .and_then(|sid| uuid::Uuid::parse_str(sid).ok());
        tracing::warn!(
            %client_id,
            limit = self.settings.max_token_revocations_per_client,
            escalated = grant.is_some(),
            "client reached its bound on access-token revocations in force"
        );
        match grant {
            Some(grant) => self.revoke_grant(grant, client_id).await,
            None => Err(AuthError::TemporarilyUnavailable(
                Reason::TooManyRevocations,
            )),
        }
    }

    /// Deletes a client and everything issued to it; its access tokens stop working on every
    /// replica.
    pub async fn delete_client(&self, id: &str) -> AuthResult<bool> {
        if !crate::client_auth::is_client_id(id) {
            return Ok(false);
        }
        let existed = self.stores.clients.delete_client(id).await?;
        if existed {
            self.directory.forget(id);
            self.publish_revocation(
                RevokedKind::Client,
                id.to_owned(),
                self.access_token_horizon(),
                None,
            )
            .await?;
        }
        Ok(existed)
    }
}
