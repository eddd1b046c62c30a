//! The token endpoint (RFC 6749 §3.2): one entry point, one module per grant type.

mod authorization_code;
mod client_credentials;
mod refresh_token;

use crate::AuthCore;
use crate::client_auth::PresentedCredentials;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{Client, Grant, GrantType, RefreshToken};
use crate::scope::ScopeSet;
use crate::secret;
use crate::token::{self, AccessTokenClaims};
use chrono::{DateTime, Utc};
use tracing::Instrument;

/// A token request's parameters, as sent.
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    pub grant_type: String,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub resource: Vec<String>,
    pub client: PresentedCredentials,
    /// Names of parameters that appeared more than once.
    pub repeated: Vec<String>,
}

/// RFC 6749 §5.1 successful response.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    pub scope: String,
    /// The tier of the client it was issued to (for metrics).
    pub client_tier: crate::model::ClientTier,
    /// The grant type that issued it (for metrics).
    pub grant_type: GrantType,
}

impl AuthCore {
    /// Handles a token request for any supported grant type.
    pub async fn exchange_token(&self, req: TokenRequest) -> AuthResult<TokenResponse> {
        if let Some(p) = req.repeated.iter().find(|p| p.as_str() != "resource") {
            return Err(AuthError::InvalidRequest(Reason::Repeated(p.clone())));
        }
        // Reject an unknown grant type before touching client credentials.
        let grant_type = match GrantType::parse(&req.grant_type) {
            Some(g) => g,
            None if req.grant_type.is_empty() => {
                return Err(AuthError::InvalidRequest(Reason::Missing("grant_type")));
            }
            None => {
                return Err(AuthError::UnsupportedGrantType(Reason::Unsupported(
                    "grant_type",
                    req.grant_type.clone(),
                )));
            }
        };
        let client = self.authenticate_client(&req.client).await?;
        // The grant's span is made once the client is known, with both its fields: recording
        // one into a span already made formats the span's fields again.
        let span = tracing::info_span!(
            "exchange_token",
            grant_type = grant_type.as_str(),
            client_id = client.id.as_str()
        );
        let issued = async {
            match grant_type {
                GrantType::AuthorizationCode => self.authorization_code_grant(&client, &req).await,
                GrantType::RefreshToken => self.refresh_token_grant(&client, &req).await,
                GrantType::ClientCredentials => self.client_credentials_grant(&client, &req).await,
            }
        }
        .instrument(span)
        .await;
        if issued.is_ok() {
            self.count_use(&client.id);
            crate::audit::Audit {
                event: "token_issued",
                outcome: "success",
                client_id: &client.id,
                client_tier: client.tier.as_str(),
                detail: grant_type.as_str(),
                ..Default::default()
            }
            .emit();
        }
        issued
    }

    /// Signs an access token for `sub` at `aud` from a grant of `granted`. Returns the token,
    /// its lifetime, and its scope: `granted` with what `aud`'s scope hierarchy implies
    /// ([`AuthCore::token_scope`]). RFC 6749 §5.1: the token response's `scope` is that scope,
    /// so that it, the token's `scope` claim and introspection always agree.
    fn mint_access_token(
        &self,
        client: &Client,
        sub: String,
        aud: &str,
        granted: &ScopeSet,
        sid: Option<String>,
    ) -> AuthResult<(String, i64, String)> {
        let now = self.clock.now().timestamp();
        let ttl = self.settings.access_token_ttl.num_seconds();
        let scope = self.token_scope(aud, granted).to_string();
        let claims = AccessTokenClaims {
            iss: self.settings.issuer.clone(),
            sub,
            aud: aud.to_owned(),
            client_id: client.id.clone(),
            scope: scope.clone(),
            iat: now,
            exp: now + ttl,
            jti: secret::generate_id(),
            sid,
            nbf: None,
        };
        Ok((token::mint(&self.keys(), &claims)?, ttl, scope))
    }

    /// A new refresh token for `grant`, if the client may refresh: returns the value to hand
    /// out and the record to store.
    fn new_refresh_token(
        &self,
        client: &Client,
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Option<(String, RefreshToken)> {
        if !client.allows(crate::model::GrantType::RefreshToken) {
            return None;
        }
        let value = secret::generate();
        // Never past the grant's maximum age: the token expires when the grant must end, so
        // that introspection and the purge see it as the refresh grant does.
        let mut expires_at = now + self.settings.refresh_token_ttl;
        if let Some(max) = self.settings.refresh_max_age {
            expires_at = expires_at.min(grant.created_at + max);
        }
        let record = RefreshToken {
            token_hash: secret::hash(&value),
            grant_id: grant.id,
            expires_at,
            consumed_at: None,
        };
        Some((value, record))
    }

    /// RFC 9700 §4.14.2: whether a user's grant is still younger than the absolute maximum
    /// age of a refresh grant.
    pub(crate) fn within_max_age(&self, grant: &Grant, now: DateTime<Utc>) -> bool {
        self.settings
            .refresh_max_age
            .is_none_or(|max| now < grant.created_at + max)
    }

    /// Access tokens from a user grant: the user must still be allowed in.
    async fn ensure_user_active(&self, grant: &Grant) -> AuthResult<()> {
        match self.stores.users.find_user(grant.user_id).await? {
            Some(u) if !u.disabled => Ok(()),
            _ => Err(AuthError::InvalidGrant(Reason::UserDisabled)),
        }
    }
}

impl AuthCore {
    /// A user's grant keeps issuing tokens only while its resource is still protected here:
    /// deleting a resource (even the last one, in production) stops its codes and refresh
    /// tokens, not only new authorizations.
    async fn ensure_resource_still_protected(&self, bound: &str) -> AuthResult<()> {
        if self.resource_still_protected(bound) {
            Ok(())
        } else {
            Err(AuthError::InvalidGrant(Reason::ResourceNoLongerProtected))
        }
    }

    /// Whether a user's grant bound to `bound` may still issue tokens. Introspection asks
    /// too, so that it never calls a refresh token active that the grant would refuse.
    pub(crate) fn resource_still_protected(&self, bound: &str) -> bool {
        let registered = self.protected_resources();
        if registered.is_empty() {
            self.settings.open_resources
        } else {
            registered
                .iter()
                .any(|p| crate::resource::same(p.resource.as_str(), bound))
        }
    }
}

/// RFC 8707 §2.2: a `resource` at the token endpoint must be the one the grant is bound to.
fn check_resource(requested: &[String], bound: &str) -> AuthResult<()> {
    match requested {
        [] => Ok(()),
        [one] if crate::resource::same(crate::resource::Resource::parse(one)?.as_str(), bound) => {
            Ok(())
        }
        [_] => Err(AuthError::InvalidTarget(Reason::ResourceMismatch)),
        _ => Err(AuthError::InvalidTarget(Reason::MultipleResources)),
    }
}
