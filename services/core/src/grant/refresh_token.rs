//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection
//! (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).

use super::{TokenRequest, TokenResponse, check_resource};
use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{Client, GrantType};
use crate::scope::ScopeSet;
use crate::secret;

impl AuthCore {
    pub(super) async fn refresh_token_grant(
        &self,
        client: &Client,
        req: &TokenRequest,
    ) -> AuthResult<TokenResponse> {
        if !client.allows(GrantType::RefreshToken) {
            return Err(AuthError::UnauthorizedClient(Reason::GrantNotAllowed(
                "refresh_token",
            )));
        }
        let presented = req
            .refresh_token
            .as_deref()
            .ok_or(AuthError::InvalidRequest(Reason::Missing("refresh_token")))?;
        let now = self.clock.now();
        let hash = secret::hash(presented);
        let token = self
            .stores
            .grants
            .find_refresh_token(&hash)
            .await?
            .ok_or(AuthError::InvalidGrant(Reason::RefreshTokenUnusable))?;
        let grant = self
            .stores
            .grants
            .find_grant(token.grant_id)
            .await?
            .ok_or(AuthError::InvalidGrant(Reason::RefreshTokenUnusable))?;
        // RFC 6749 §6: the token must have been issued to the authenticated client.
        if grant.client_id != client.id {
            return Err(AuthError::InvalidGrant(Reason::ClientMismatch));
        }
        if token.consumed_at.is_some() {
            // A rotated token came back: someone holds a copy. Revoke the whole family.
            self.revoke_grant(grant.id, &client.id).await?;
            crate::audit::Audit {
                event: "refresh_reused",
                outcome: "denied",
                client_id: &client.id,
                client_tier: client.tier.as_str(),
                grant_id: &grant.id.to_string(),
                ..Default::default()
            }
            .emit();
            return Err(AuthError::InvalidGrant(Reason::RefreshTokenReused));
        }
        if grant.revoked_at.is_some() {
            return Err(AuthError::InvalidGrant(Reason::RefreshTokenUnusable));
        }
        // RFC 9700 §4.14.2: rotation keeps a family alive while it is used; the maximum age
        // ends it all the same, and the user authorizes again. Judged before the token's own
        // expiry, which the maximum age cuts short, so that the answer says why.
        if !self.within_max_age(&grant, now) {
            return Err(AuthError::InvalidGrant(Reason::GrantMaxAgeReached));
        }
        if token.expires_at <= now {
            return Err(AuthError::InvalidGrant(Reason::RefreshTokenUnusable));
        }
        // RFC 6749 §6: a narrower scope is allowed, a broader one is not. What was granted
        // is what a token of this grant carries: its scope with what the resource's hierarchy
        // implies now. The grant keeps the scope the user consented to, and each token gets
        // the hierarchy as it is when it is minted, so a narrowed hierarchy narrows the next
        // refresh too.
        let granted = self.token_scope(&grant.resource, &grant.scope);
        let scope = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            None => grant.scope.clone(),
            Some(s) => {
                let asked = self
                    .settings
                    .scopes
                    .known(ScopeSet::parse(s)?)
                    .map_err(|first| AuthError::InvalidScope(Reason::ScopeUnknown(first)))?;
                if let Some(extra) = asked.difference(&granted).first() {
                    return Err(AuthError::InvalidScope(Reason::ScopeBroadened(
                        (*extra).to_owned(),
                    )));
                }
                // Only scopes this server ignores: as if none were named.
                if asked.is_empty() {
                    grant.scope.clone()
                } else {
                    asked
                }
            }
        };
        check_resource(&req.resource, &grant.resource)?;
        self.ensure_resource_still_protected(&grant.resource)
            .await?;
        self.ensure_user_active(&grant).await?;

        let (new_value, new_record) =
            self.new_refresh_token(client, &grant, now)
                .ok_or(AuthError::UnauthorizedClient(Reason::GrantNotAllowed(
                    "refresh_token",
                )))?;
        if !self
            .stores
            .grants
            .rotate_refresh_token(&hash, now, &new_record)
            .await?
        {
            // Lost a race with a concurrent rotation of the same token: treat as reuse.
            self.revoke_grant(grant.id, &client.id).await?;
            return Err(AuthError::InvalidGrant(Reason::RefreshTokenReused));
        }
        let (access_token, expires_in, scope) = self.mint_access_token(
            client,
            grant.user_id.to_string(),
            &grant.resource,
            &scope,
            Some(grant.id.to_string()),
        )?;
        Ok(TokenResponse {
            access_token,
            expires_in,
            refresh_token: Some(new_value),
            scope,
            client_tier: client.tier,
            grant_type: GrantType::RefreshToken,
        })
    }
}
