//! Client authentication at the token, revocation and introspection endpoints and on the
//! gRPC verification plane (RFC 6749 §2.3, RFC 7591 `token_endpoint_auth_method`).

use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{AuthMethod, Client};
use crate::secret;
use std::sync::Arc;

/// The credentials exactly as the request presented them.
#[derive(Debug, Default, Clone)]
pub struct PresentedCredentials {
    /// From `Authorization: Basic`, decoded.
    pub basic: Option<(String, String)>,
    /// `client_id` from the body.
    pub client_id: Option<String>,
    /// `client_secret` from the body.
    pub client_secret: Option<String>,
    /// `client_assertion_type` and `client_assertion` from the body (RFC 7521 §4.2).
    pub assertion: Option<crate::client_assertion::ClientAssertion>,
}

/// The longest client identifier: ours are 22 characters, and a Client ID Metadata Document
/// URL is bounded like a redirect URI.
pub const MAX_CLIENT_ID_LEN: usize = 2048;

/// RFC 6749 Appendix A.1: `client-id = *VSCHAR` (%x20-7E). Anything else (a NUL, a newline,
/// non-ASCII) names no client, and is refused before it reaches the store.
pub fn is_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID_LEN
        && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// While a client authenticates, a metadata document that names no usable client is
/// `invalid_client` (RFC 6749 §5.2), with the document's fault, not `invalid_client_metadata`.
pub(crate) fn as_client_failure<T>(result: AuthResult<T>) -> AuthResult<T> {
    match result {
        Err(AuthError::InvalidClientMetadata(reason)) => Err(AuthError::InvalidClient(reason)),
        other => other,
    }
}

impl AuthCore {
    /// [`AuthCore::client`] for client authentication: a metadata document that names no
    /// usable client is `invalid_client` here (RFC 6749 §5.2), with the document's fault.
    pub(crate) async fn client_to_authenticate(&self, id: &str) -> AuthResult<Option<Arc<Client>>> {
        as_client_failure(self.client(id).await)
    }

    /// Identifies and authenticates the client.
    ///
    /// - RFC 6749 §2.3: a client MUST NOT use more than one method in one request.
    /// - RFC 6749 §2.3.1: HTTP Basic is always accepted from a confidential client.
    /// - A secret in the body is accepted only from a client registered for
    ///   `client_secret_post`.
    /// - A client registered for `private_key_jwt` authenticates with an assertion only
    ///   (RFC 7523 §2.2; see `client_assertion`).
    /// - A public client identifies itself with `client_id` alone.
    pub async fn authenticate_client(
        &self,
        creds: &PresentedCredentials,
    ) -> AuthResult<Arc<Client>> {
        let failed = || AuthError::InvalidClient(Reason::ClientAuthenticationFailed);
        let methods = [
            creds.basic.is_some(),
            creds.client_secret.is_some(),
            creds.assertion.is_some(),
        ];
        if methods.into_iter().filter(|m| *m).count() > 1 {
            return Err(AuthError::InvalidRequest(Reason::MultipleClientAuthMethods));
        }
        if let Some(assertion) = &creds.assertion {
            return self
                .authenticate_by_assertion(assertion, creds.client_id.as_deref())
                .await;
        }
        if let Some((id, presented)) = &creds.basic {
            if creds
                .client_id
                .as_ref()
                .is_some_and(|body_id| body_id != id)
            {
                return Err(AuthError::InvalidRequest(
                    Reason::BasicAndBodyClientIdDiffer,
                ));
            }
            return self.authenticate_basic(id, presented).await;
        }
        let id = creds
            .client_id
            .as_deref()
            .ok_or(AuthError::InvalidClient(Reason::Missing(
                "client authentication",
            )))?;
        let client = self.client_to_authenticate(id).await?.ok_or_else(failed)?;
        match (&creds.client_secret, &client.secret_hash) {
            (Some(presented), Some(hash)) => {
                if client.auth_method != AuthMethod::ClientSecretPost {
                    return Err(AuthError::InvalidClient(
                        Reason::ClientAuthMethodNotAllowed("client_secret_post"),
                    ));
                }
                if secret::verify(presented, hash) {
                    self.unexpired(client)
                } else {
                    Err(failed())
                }
            }
            // A public client presenting a secret, or a confidential one presenting none.
            (Some(_), None) | (None, Some(_)) => Err(failed()),
            // A client with keys must sign; only a public client names itself alone.
            (None, None) if client.auth_method != AuthMethod::None => Err(failed()),
            (None, None) => Ok(client),
        }
    }

    /// RFC 6749 §2.3.1: the client `id` with its secret, as HTTP Basic carries them.
    pub(crate) async fn authenticate_basic(
        &self,
        id: &str,
        presented: &str,
    ) -> AuthResult<Arc<Client>> {
        let failed = || AuthError::InvalidClient(Reason::ClientAuthenticationFailed);
        let client = self.client_to_authenticate(id).await?.ok_or_else(failed)?;
        match &client.secret_hash {
            Some(hash) if secret::verify(presented, hash) => self.unexpired(client),
            _ => Err(failed()),
        }
    }

    /// A client that presented its right secret, unless that secret has expired (RFC 7591
    /// §3.2.1 `client_secret_expires_at`). Only the holder of the secret learns that it
    /// expired; anyone else gets the plain failure.
    fn unexpired(&self, client: Arc<Client>) -> AuthResult<Arc<Client>> {
        match client.secret_expires_at {
            Some(at) if at <= self.clock.now() => {
                Err(AuthError::InvalidClient(Reason::ClientSecretExpired))
            }
            _ => Ok(client),
        }
    }

    /// Like [`Self::authenticate_client`], but only a confidential client passes.
    pub async fn authenticate_confidential_client(
        &self,
        creds: &PresentedCredentials,
    ) -> AuthResult<Arc<Client>> {
        confidential(self.authenticate_client(creds).await?)
    }
}

/// The client, if it is a confidential one.
pub(crate) fn confidential(client: Arc<Client>) -> AuthResult<Arc<Client>> {
    if client.is_confidential() {
        Ok(client)
    } else {
        Err(AuthError::InvalidClient(Reason::PublicClientNotAllowed))
    }
}
