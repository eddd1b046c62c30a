//! Dynamic client registration (RFC 7591), and the admin path that shares its rules.

use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{AuthMethod, Client, GrantType};
use crate::redirect_uri;
use crate::scope::ScopeSet;
use crate::secret;
use serde_json::{Map, Value, json};

const MAX_REDIRECT_URIS: usize = 20;
const MAX_TEXT_LEN: usize = 500;

/// Human-readable or informational metadata echoed back as registered (RFC 7591 §2).
const TEXT_FIELDS: &[&str] = &[
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
];

/// A registered client and, for a confidential one, its secret, shown this once.
#[derive(Debug)]
pub struct Registration {
    pub client: Client,
    pub client_secret: Option<String>,
}

impl Registration {
    /// The RFC 7591 §3.2.1 response body.
    pub fn to_json(&self) -> Value {
        let mut body = match &self.client.metadata {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        body.insert("client_id".into(), json!(self.client.id));
        body.insert(
            "client_id_issued_at".into(),
            json!(self.client.created_at.timestamp()),
        );
        if let Some(s) = &self.client_secret {
            body.insert("client_secret".into(), json!(s));
            body.insert("client_secret_expires_at".into(), json!(0));
        }
        Value::Object(body)
    }
}

/// An absolute https URL (or http on loopback, for development).
fn is_web_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| match u.scheme() {
        "https" => u.host().is_some(),
        "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        _ => false,
    })
}

fn bad(why: &'static str) -> AuthError {
    AuthError::InvalidClientMetadata(Reason::Text(why))
}

fn string_array(v: Option<&Value>, field: &'static str) -> AuthResult<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(bad(field)))
            .collect::<AuthResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(AuthError::InvalidClientMetadata(Reason::Malformed(field))),
    }
}

impl AuthCore {
    /// Registers a client from RFC 7591 metadata.
    pub async fn register_client(&self, metadata_json: &str) -> AuthResult<Registration> {
        let parsed: Value = serde_json::from_str(metadata_json)
            .map_err(|_| bad("the body is not a JSON object"))?;
        let Value::Object(input) = parsed else {
            return Err(bad("the body is not a JSON object"));
        };

        let auth_method = match input.get("token_endpoint_auth_method") {
            None | Some(Value::Null) => AuthMethod::ClientSecretBasic, // RFC 7591 §2 default
            Some(Value::String(s)) => AuthMethod::parse(s).ok_or_else(|| {
                AuthError::InvalidClientMetadata(Reason::Unsupported(
                    "token_endpoint_auth_method",
                    s.clone(),
                ))
            })?,
            Some(_) => {
                return Err(AuthError::InvalidClientMetadata(Reason::Malformed(
                    "token_endpoint_auth_method",
                )));
            }
        };
        let public = auth_method == AuthMethod::None;

        let grant_types = match string_array(input.get("grant_types"), "grant_types")? {
            None => vec![GrantType::AuthorizationCode], // RFC 7591 §2 default
            Some(names) if names.is_empty() => return Err(bad("grant_types must not be empty")),
            Some(names) => {
                let mut out = Vec::new();
                for n in names {
                    let g = GrantType::parse(&n).ok_or_else(|| {
                        AuthError::InvalidClientMetadata(Reason::Unsupported(
                            "grant_type",
                            n.clone(),
                        ))
                    })?;
                    if !out.contains(&g) {
                        out.push(g);
                    }
                }
                out
            }
        };
        let uses_code = grant_types.contains(&GrantType::AuthorizationCode);

        // RFC 7591 §2.1: response_types and grant_types must agree.
        let response_types = string_array(input.get("response_types"), "response_types")?
            .unwrap_or_else(|| {
                if uses_code {
                    vec!["code".into()]
                } else {
                    Vec::new()
                }
            });
        if let Some(other) = response_types.iter().find(|r| r.as_str() != "code") {
            return Err(AuthError::InvalidClientMetadata(Reason::Unsupported(
                "response_type",
                other.clone(),
            )));
        }
        if uses_code != response_types.iter().any(|r| r == "code") {
            return Err(bad("response_types and grant_types are inconsistent"));
        }
        if grant_types == [GrantType::RefreshToken] {
            return Err(bad("refresh_token alone is not a usable grant"));
        }
        if public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(bad("client_credentials requires a confidential client"));
        }

        let redirect_uris =
            string_array(input.get("redirect_uris"), "redirect_uris")?.unwrap_or_default();
        if uses_code && redirect_uris.is_empty() {
            return Err(AuthError::InvalidRedirectUri(Reason::Text(
                "the authorization_code grant needs at least one redirect URI",
            )));
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(AuthError::InvalidRedirectUri(Reason::Text(
                "too many redirect URIs",
            )));
        }
        for uri in &redirect_uris {
            redirect_uri::validate_for_registration(uri, public)?;
        }

        let scope = match input.get("scope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let set = ScopeSet::parse(s).map_err(|_| bad("scope is malformed"))?;
                if let Some(unknown) = set.difference(self.settings.scopes.supported()).first() {
                    return Err(AuthError::InvalidClientMetadata(Reason::ScopeUnknown(
                        (*unknown).to_owned(),
                    )));
                }
                (!set.is_empty()).then(|| set.to_string())
            }
            Some(_) => return Err(AuthError::InvalidClientMetadata(Reason::Malformed("scope"))),
        };

        // Keep the fields we understand, checked, and echo them back (RFC 7591 §3.2.1).
        let mut metadata = Map::new();
        for field in TEXT_FIELDS {
            match input.get(*field) {
                None | Some(Value::Null) => {}
                // RFC 7591 §5: URLs shown to users must be safe to link (no javascript:).
                Some(Value::String(s)) if field.ends_with("_uri") && !is_web_url(s) => {
                    return Err(AuthError::InvalidClientMetadata(Reason::Malformed(field)));
                }
                Some(Value::String(s)) if s.len() <= MAX_TEXT_LEN => {
                    metadata.insert((*field).into(), json!(s));
                }
                Some(_) => return Err(AuthError::InvalidClientMetadata(Reason::Malformed(field))),
            }
        }
        if let Some(contacts) = string_array(input.get("contacts"), "contacts")? {
            metadata.insert("contacts".into(), json!(contacts));
        }
        if input.contains_key("jwks") || input.contains_key("jwks_uri") {
            return Err(bad(
                "jwks and jwks_uri are not supported: no private_key_jwt",
            ));
        }
        metadata.insert("redirect_uris".into(), json!(redirect_uris));
        metadata.insert(
            "token_endpoint_auth_method".into(),
            json!(auth_method.as_str()),
        );
        metadata.insert(
            "grant_types".into(),
            json!(grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
        );
        metadata.insert("response_types".into(), json!(response_types));
        if let Some(s) = &scope {
            metadata.insert("scope".into(), json!(s));
        }

        let client_secret = (!public).then(secret::generate);
        let client = Client {
            id: secret::generate_id(),
            secret_hash: client_secret.as_deref().map(secret::hash),
            name: metadata
                .get("client_name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            redirect_uris,
            grant_types,
            auth_method,
            scope,
            metadata: Value::Object(metadata),
            // Self-registered clients own nothing; an administrator assigns resources.
            resources: Vec::new(),
            created_at: self.clock.now(),
        };
        self.stores.clients.insert_client(&client).await?;
        crate::audit::Audit {
            event: "client_registered",
            outcome: "success",
            client_id: &client.id,
            detail: auth_method.as_str(),
            ..Default::default()
        }
        .emit();
        Ok(Registration {
            client,
            client_secret,
        })
    }
}

impl AuthCore {
    /// Declares which protected resources a confidential client serves (administrators only;
    /// a client can never claim a resource through registration).
    pub async fn set_client_resources(
        &self,
        client_id: &str,
        urls: &[String],
    ) -> AuthResult<Vec<String>> {
        let client = self
            .stores
            .clients
            .find_client(client_id)
            .await?
            .ok_or(AuthError::NotFound(Reason::Text("no such client")))?;
        if !client.is_confidential() && !urls.is_empty() {
            return Err(AuthError::InvalidRequest(Reason::Text(
                "only a confidential client can own a resource",
            )));
        }
        let mut normalized = Vec::new();
        for u in urls {
            let r = crate::resource::Resource::parse(u)?.as_str().to_owned();
            if !normalized.contains(&r) {
                normalized.push(r);
            }
        }
        self.stores
            .clients
            .set_client_resources(client_id, &normalized)
            .await?;
        self.clients.remove(client_id);
        Ok(normalized)
    }
}
