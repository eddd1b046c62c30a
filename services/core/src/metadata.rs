//! RFC 8414 authorization server metadata. It advertises exactly what is implemented.

use crate::AuthCore;
use crate::model::{AuthMethod, GrantType};
use serde_json::{Value, json};

impl AuthCore {
    /// The metadata document, served at both well-known locations with the same issuer.
    pub fn metadata(&self) -> Value {
        let iss = &self.settings.issuer;
        let scopes: Vec<&str> = self.settings.scopes.supported().iter().collect();
        let client_auth = [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::None,
        ]
        .map(AuthMethod::as_str);
        json!({
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
            "introspection_endpoint_auth_methods_supported": [AuthMethod::ClientSecretBasic.as_str(), AuthMethod::ClientSecretPost.as_str()],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    /// The JWK Set of every verifying key.
    pub fn jwks(&self) -> Value {
        self.keys().jwks().clone()
    }
}
