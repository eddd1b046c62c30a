//! The authorization code grant (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636 §4.6).

use super::{TokenRequest, TokenResponse, check_resource};
use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{Client, GrantType};
use crate::pkce::CodeChallenge;
use crate::secret;

impl AuthCore {
    pub(super) async fn authorization_code_grant(
        &self,
        client: &Client,
        req: &TokenRequest,
    ) -> AuthResult<TokenResponse> {
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(AuthError::UnauthorizedClient(Reason::GrantNotAllowed(
                "authorization_code",
            )));
        }
        let code = req
            .code
            .as_deref()
            .ok_or(AuthError::InvalidRequest(Reason::Missing("code")))?;
        let verifier = req
            .code_verifier
            .as_deref()
            .ok_or(AuthError::InvalidRequest(Reason::Missing("code_verifier")))?;
        let now = self.clock.now();
        let code_hash = secret::hash(code);
        let record = self
            .stores
            .grants
            .find_code(&code_hash)
            .await?
            .ok_or(AuthError::InvalidGrant(Reason::CodeUnusable))?;
        // RFC 6749 §4.1.3: the code must have been issued to this client. Checked before
        // the replay rule, so that another client presenting a stolen, used code cannot
        // revoke the rightful client's grant.
        if record.client_id != client.id {
            return Err(AuthError::InvalidGrant(Reason::ClientMismatch));
        }
        // RFC 6749 §4.1.2 and RFC 9700 §4.5: a code used twice by its client revokes what it
        // issued.
        if record.consumed_at.is_some() {
            self.revoke_grant(record.grant_id, &client.id).await?;
            crate::audit::Audit {
                event: "code_replayed",
                outcome: "denied",
                client_id: &client.id,
                client_tier: client.tier.as_str(),
                grant_id: &record.grant_id.to_string(),
                ..Default::default()
            }
            .emit();
            return Err(AuthError::InvalidGrant(Reason::CodeReplayed));
        }
        if record.expires_at <= now {
            return Err(AuthError::InvalidGrant(Reason::CodeUnusable));
        }
        // RFC 6749 §4.1.3: if the authorization request carried redirect_uri, the token
        // request must carry the identical value. If it did not (one registered URI), the
        // token request may omit it or name that URI.
        let redirect_ok = match (&record.redirect_uri, &req.redirect_uri) {
            (Some(bound), Some(given)) => bound == given,
            (Some(_), None) => false,
            (None, None) => true,
            (None, Some(given)) => {
                client.redirect_uris.len() == 1 && client.redirect_uris[0] == *given
            }
        };
        if !redirect_ok {
            return Err(AuthError::InvalidGrant(Reason::RedirectUriMismatch));
        }
        CodeChallenge::from_stored(record.code_challenge.clone()).verify(verifier)?;
        let grant = self
            .stores
            .grants
            .find_grant(record.grant_id)
            .await?
            .filter(|g| g.revoked_at.is_none())
            .ok_or(AuthError::InvalidGrant(Reason::CodeUnusable))?;
        check_resource(&req.resource, &grant.resource)?;
        self.ensure_resource_still_protected(&grant.resource)
            .await?;
        self.ensure_user_active(&grant).await?;

        let refresh = self.new_refresh_token(client, &grant, now);
        let won = self
            .stores
            .grants
            .redeem_code(&code_hash, now, refresh.as_ref().map(|(_, r)| r))
            .await?;
        if !won {
            // Lost a race with another redemption of the same code: that is a replay too.
            self.revoke_grant(grant.id, &client.id).await?;
            return Err(AuthError::InvalidGrant(Reason::CodeReplayed));
        }
        let (access_token, expires_in, scope) = self.mint_access_token(
            client,
            grant.user_id.to_string(),
            &grant.resource,
            &grant.scope,
            Some(grant.id.to_string()),
        )?;

        Ok(TokenResponse {
            access_token,
            expires_in,
            refresh_token: refresh.map(|(v, _)| v),
            scope,
            client_tier: client.tier,
            grant_type: GrantType::AuthorizationCode,
        })
    }
}
