//! RFC 7592: a self-registered client reads (§2.1), replaces (§2.2) and deletes (§2.3) its own
//! registration at its client configuration endpoint, `{issuer}/register/{client_id}`, with the
//! registration access token it was given at registration.
//!
//! Only `dynamic` clients are managed this way. An operator's client (the CLI, the admin API,
//! a registration with an initial access token) is the operator's to change, and a metadata
//! document's client is its document's; neither has a registration access token. Every
//! refusal before the request is authorized (no such client, a client of another tier, a
//! wrong token, another client's token) is the same 401 `invalid_token` with the same
//! description (RFC 7592 §2.1: 401 for a client that does not exist), so the endpoint tells
//! nobody whether a client id exists or what it is.
//!
//! What a client may set is exactly what it may register, checked by the one parser
//! (`check_metadata`) under the same tier rule (`keep_dynamic_grants`). What only an operator
//! sets (the tier, the resources it may get tokens for without a user, the resources it
//! serves, trusted redirects) is never read from a request, so no body can change it.
//!
//! The token does not rotate: RFC 7592 lets the server issue a new one with any response,
//! and nothing here needs to. A read or update response carries the token the client
//! presented, since §3 makes the field required and only its hash is stored.

use super::{MetadataFault, Registration, bad, metadata_object};
use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{AuthMethod, Client, ClientTier};
use crate::secret;
use serde_json::Value;

/// RFC 7592 §2.2: fields of the response that only the server sets; an update request must
/// not include them.
const SERVER_ASSIGNED: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// The one refusal of every request that does not open a client's configuration endpoint.
fn unusable() -> AuthError {
    AuthError::InvalidToken(Reason::RegistrationAccessTokenUnusable)
}

/// `id` as one path segment (RFC 3986 §3.3): every byte but the unreserved characters is
/// percent-encoded, so an id can never add a segment or a query to the URI.
fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AuthCore {
    /// RFC 7592 §3 `registration_client_uri`: the client configuration endpoint of
    /// `client_id`, under the registration endpoint that RFC 8414 metadata advertises.
    pub(crate) fn registration_client_uri(&self, client_id: &str) -> String {
        format!(
            "{}/register/{}",
            self.settings.issuer,
            path_segment(client_id)
        )
    }

    /// RFC 7592 §2.1: the client's current registration, as the registration response gave
    /// it, with the RFC 7592 §3 fields.
    ///
    /// Its `client_secret` is not in it: only the secret's hash is stored, so it cannot be
    /// shown again. RFC 7592 §2.1 allows the values of a read to differ from those of the
    /// registration response, and the client keeps using the secret it holds;
    /// `client_secret_expires_at` still says when that one expires. No new secret is made on
    /// a read: that would silently end the one the client holds.
    pub async fn read_registration(
        &self,
        client_id: &str,
        registration_access_token: &str,
    ) -> AuthResult<Registration> {
        let client = self
            .managed_client(client_id, registration_access_token)
            .await?;
        Ok(self.management_response(client, None, registration_access_token))
    }

    /// RFC 7592 §2.2: replaces the client's metadata with `metadata_json`, as a registration
    /// would check it; fields left out are removed, or take their RFC 7591 defaults (replace,
    /// not merge). The `client_id` must be the client's own, and a `client_secret`, if sent,
    /// the current one. The tier and everything an operator set stay as they are.
    ///
    /// A confidential client keeps its kind of credential: a secret (kept, never shown
    /// again), or keys (which it may replace). A public client may become confidential, and
    /// gets a new secret in this response only if it takes one. A confidential client cannot
    /// become public, nor change a secret for keys or keys for a secret
    /// ([`MetadataFault::ConfidentialToPublic`], [`MetadataFault::CredentialKindChange`]).
    pub async fn replace_registration(
        &self,
        client_id: &str,
        registration_access_token: &str,
        metadata_json: &str,
    ) -> AuthResult<Registration> {
        let current = self
            .managed_client(client_id, registration_access_token)
            .await?;
        let input = metadata_object(metadata_json)?;
        if let Some(field) = SERVER_ASSIGNED.iter().find(|f| input.contains_key(**f)) {
            return Err(bad(MetadataFault::ServerAssigned(field)));
        }
        match input.get("client_id") {
            None | Some(Value::Null) => {
                return Err(AuthError::InvalidClientMetadata(Reason::Missing(
                    "client_id",
                )));
            }
            Some(Value::String(id)) if *id == current.id => {}
            Some(Value::String(_)) => return Err(bad(MetadataFault::ClientIdMismatch)),
            Some(_) => {
                return Err(AuthError::InvalidClientMetadata(Reason::Malformed(
                    "client_id",
                )));
            }
        }
        match input.get("client_secret") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                let matches = current
                    .secret_hash
                    .as_deref()
                    .is_some_and(|h| secret::verify(s, h));
                if !matches {
                    return Err(bad(MetadataFault::ClientSecretMismatch));
                }
            }
            Some(_) => {
                return Err(AuthError::InvalidClientMetadata(Reason::Malformed(
                    "client_secret",
                )));
            }
        }
        // The registration's own checks, then its tier's rule: `client_id` and
        // `client_secret`, checked above, are not metadata it keeps.
        let mut parsed = self.check_metadata(&input)?;
        parsed.keep_dynamic_grants()?;
        // Whoever holds the registration access token must not gain what the client's
        // credential gives: a confidential client stays confidential, with its kind of
        // credential. Between client_secret_basic and client_secret_post the secret is the
        // same; a private_key_jwt client may replace its keys (key rotation).
        if current.is_confidential() {
            if parsed.auth_method == AuthMethod::None {
                return Err(bad(MetadataFault::ConfidentialToPublic));
            }
            if parsed.auth_method.uses_secret() != current.auth_method.uses_secret() {
                return Err(bad(MetadataFault::CredentialKindChange));
            }
        }

        let now = self.clock.now();
        let mut next = current.clone();
        parsed.write_to(&mut next);
        // Moves on, so that every other replica's directory reads the new metadata.
        next.updated_at = now;
        // RFC 7592 §2.2: the client never sets its secret. One that keeps using a secret
        // keeps the one it has (and its expiry); a public client that takes a secret gets one
        // now, shown in this response only.
        let new_secret = match (
            next.auth_method.uses_secret(),
            current.secret_hash.is_some(),
        ) {
            (false, _) | (true, true) => None,
            (true, false) => Some(secret::generate()),
        };
        if let Some(s) = &new_secret {
            next.secret_hash = Some(secret::hash(s));
            next.secret_expires_at = self.dynamic_secret_expiry(now);
        }
        if !next.auth_method.uses_secret() {
            next.secret_hash = None;
            next.secret_expires_at = None;
        }

        // Conditional on the token and the tier read above: a client deleted, or made an
        // operator's, since then is not written, and is answered as one that does not exist.
        let token_hash = current.registration_token_hash.as_deref().unwrap_or("");
        if !self
            .stores
            .clients
            .replace_client_metadata(&next, token_hash)
            .await?
        {
            return Err(unusable());
        }
        self.remember_client(&next);
        crate::audit::Audit {
            event: "client_updated",
            outcome: "success",
            client_id: &next.id,
            client_tier: next.tier.as_str(),
            detail: next.auth_method.as_str(),
            ..Default::default()
        }
        .emit();
        Ok(self.management_response(next, new_secret, registration_access_token))
    }

    /// RFC 7592 §2.3: deletes the client, as an operator's delete does: its grants, codes and
    /// refresh tokens go with it, and its access tokens stop verifying on every replica (a
    /// client revocation). Its registration access token dies with the row.
    pub async fn delete_registration(
        &self,
        client_id: &str,
        registration_access_token: &str,
    ) -> AuthResult<()> {
        let client = self
            .managed_client(client_id, registration_access_token)
            .await?;
        // A client deleted by another request since it was read is gone all the same: the
        // answer is that of a client that does not exist.
        if !self.delete_client(&client.id).await? {
            return Err(unusable());
        }
        crate::audit::Audit {
            event: "client_deleted",
            outcome: "success",
            client_id: &client.id,
            client_tier: client.tier.as_str(),
            detail: "self",
            ..Default::default()
        }
        .emit();
        Ok(())
    }

    /// The `dynamic` client whose configuration endpoint `registration_access_token` opens.
    ///
    /// Read from the store, not the directory: another replica may have replaced or deleted
    /// it a moment ago, and the token is judged against the stored hash, in constant time.
    async fn managed_client(
        &self,
        client_id: &str,
        registration_access_token: &str,
    ) -> AuthResult<Client> {
        if registration_access_token.is_empty() {
            return Err(AuthError::InvalidToken(Reason::Missing(
                "registration access token (Authorization: Bearer)",
            )));
        }
        if !crate::client_auth::is_client_id(client_id) {
            return Err(unusable());
        }
        let client = self
            .stores
            .clients
            .find_client(client_id)
            .await?
            .ok_or_else(unusable)?;
        let opens = client.tier == ClientTier::Dynamic
            && client
                .registration_token_hash
                .as_deref()
                .is_some_and(|h| secret::verify(registration_access_token, h));
        if !opens {
            return Err(unusable());
        }
        Ok(client)
    }

    /// The body of a read or update (RFC 7592 §3): the registration response's, with the
    /// token the client presented and, only when one was just made, a new secret.
    fn management_response(
        &self,
        client: Client,
        client_secret: Option<String>,
        registration_access_token: &str,
    ) -> Registration {
        let registration_client_uri = Some(self.registration_client_uri(&client.id));
        Registration {
            client,
            client_secret,
            registration_access_token: Some(registration_access_token.to_owned()),
            registration_client_uri,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn a_client_id_is_percent_encoded_as_one_path_segment() {
        assert_eq!(path_segment("abc-DEF_123.~"), "abc-DEF_123.~");
        assert_eq!(path_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(
            path_segment("https://x.example/c"),
            "https%3A%2F%2Fx.example%2Fc"
        );
        assert_eq!(path_segment("é %"), "%C3%A9%20%25");
    }
}
