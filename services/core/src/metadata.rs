//! RFC 8414 authorization server metadata (it advertises exactly what is implemented), and
//! RFC 9728 metadata for the protected resources this server knows.

use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{AuthMethod, GrantType};
use crate::resource::Resource;
use serde_json::{Value, json};

impl AuthCore {
    /// The metadata document, served at both well-known locations with the same issuer.
    pub fn metadata(&self) -> Value {
        let iss = &self.settings.issuer;
        let scopes: Vec<&str> = self.settings.scopes.supported().iter().collect();
        let client_auth = [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt,
            AuthMethod::None,
        ]
        .map(AuthMethod::as_str);
        let confidential_auth = [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt,
        ]
        .map(AuthMethod::as_str);
        let signing_algs = crate::client_assertion::ALGORITHMS;
        let mut doc = json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/authorize"),
            "token_endpoint": format!("{iss}/token"),
            "registration_endpoint": format!("{iss}/register"),
            "revocation_endpoint": format!("{iss}/revoke"),
            "introspection_endpoint": format!("{iss}/introspect"),
            "jwks_uri": format!("{iss}/jwks.json"),
            "scopes_supported": scopes,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
            "token_endpoint_auth_methods_supported": client_auth,
            "revocation_endpoint_auth_methods_supported": client_auth,
            "introspection_endpoint_auth_methods_supported": confidential_auth,
            // RFC 8414 §2: the JWS algorithms of private_key_jwt at each endpoint.
            "token_endpoint_auth_signing_alg_values_supported": signing_algs,
            "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
            "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "authorization_response_iss_parameter_supported": true,
        });
        // draft-ietf-oauth-client-id-metadata-document §5: only while documents are read.
        if self.client_documents_enabled()
            && let Value::Object(m) = &mut doc
        {
            m.insert(
                "client_id_metadata_document_supported".into(),
                Value::Bool(true),
            );
        }
        // RFC 8414 §2: advertise registration only where a client can register.
        if self.settings.registration == crate::registration::RegistrationPolicy::Off
            && let Value::Object(m) = &mut doc
        {
            m.remove("registration_endpoint");
        }
        doc
    }

    /// RFC 9728 metadata for a protected resource this server knows, so that a resource
    /// guarded by ForwardAuth, which knows no OAuth, can still point clients here. Unknown
    /// resources are not found.
    pub async fn protected_resource_metadata(&self, resource: &str) -> AuthResult<Value> {
        let wanted = Resource::parse(resource)?;
        let found = self
            .protected_resources()
            .iter()
            .find(|r| r.resource == wanted)
            .cloned()
            .ok_or(AuthError::NotFound(Reason::NoSuchResource))?;
        let scopes: Vec<&str> = match &found.scopes {
            Some(s) => s.iter().collect(),
            None => self.settings.scopes.supported().iter().collect(),
        };
        Ok(found
            .resource
            .metadata_document(&self.settings.issuer, &scopes))
    }

    /// The JWK Set of every verifying key.
    pub fn jwks(&self) -> Value {
        self.keys().jwks().clone()
    }
}
