//! The client credentials grant (RFC 6749 §4.4). It writes nothing to the database: the
//! token is self-contained and the client is its own subject (RFC 9068 §2.2: `sub` is the
//! `client_id` when no user is involved).
//!
//! No user stands behind such a token, so only an operator's client may have one, and only
//! for the resources and scopes the operator listed on it. Anyone can register a client, so
//! without this rule anyone could mint a token that a protected resource accepts.

use super::{TokenRequest, TokenResponse};
use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{Client, GrantType};

impl AuthCore {
    pub(super) async fn client_credentials_grant(
        &self,
        client: &Client,
        req: &TokenRequest,
    ) -> AuthResult<TokenResponse> {
        // RFC 6749 §4.4: only confidential clients; here, only an operator's.
        if !client.is_confidential()
            || !client.is_operator()
            || !client.allows(GrantType::ClientCredentials)
            || client.audiences.is_empty()
        {
            return Err(AuthError::UnauthorizedClient(Reason::GrantNotAllowed(
                "client_credentials",
            )));
        }
        let (aud, scope) = self.audience_and_scope(
            client,
            crate::audience::Behalf::Client,
            &req.resource,
            req.scope.as_deref(),
        )?;
        if scope.contains(crate::scope::OFFLINE_ACCESS) {
            return Err(AuthError::InvalidScope(Reason::OfflineAccessWithoutUser));
        }
        let (access_token, expires_in, scope) =
            self.mint_access_token(client, client.id.clone(), aud.as_str(), &scope, None)?;
        Ok(TokenResponse {
            access_token,
            expires_in,
            refresh_token: None,
            scope,
            client_tier: client.tier,
            grant_type: GrantType::ClientCredentials,
        })
    }
}
