//! Conversions between sea-orm models and core records.

use crate::entity::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use latchkey_core::denylist::{RevocationEvent, RevokedKind};
use latchkey_core::model::{
    AuthMethod, AuthorizationCode, Client, ClientKeys, ClientTier, Grant, GrantType,
    InitialAccessToken, RefreshToken, StoredSigningKey, User,
};
use latchkey_core::resource::{ProtectedResource, Resource};
use latchkey_core::scope::ScopeSet;
use latchkey_core::scope_hierarchy::ScopeHierarchy;
use latchkey_core::store::StoreError;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

pub(crate) fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Backend(format!("corrupt {what} row").into())
}

/// Scopes are parsed once, here at the store's edge; a stored value that does not parse is
/// corrupt.
fn scope_set(s: Option<&str>, what: &'static str) -> Result<Option<ScopeSet>, StoreError> {
    s.map(|s| ScopeSet::parse(s).map_err(|_| corrupt(what)))
        .transpose()
}

fn uuid(s: &str, what: &'static str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| corrupt(what))
}

pub(crate) fn user(m: users::Model) -> Result<User, StoreError> {
    Ok(User {
        id: uuid(&m.id, "user")?,
        email: m.email,
        password_hash: m.password_hash,
        disabled: m.disabled,
        created_at: at(m.created_at),
    })
}

pub(crate) fn user_model(u: &User) -> users::Model {
    users::Model {
        id: u.id.to_string(),
        email: u.email.clone(),
        password_hash: u.password_hash.clone(),
        disabled: u.disabled,
        created_at: ts(u.created_at),
    }
}

pub(crate) fn client(m: clients::Model, resources: Vec<String>) -> Result<Client, StoreError> {
    let grant_types = m
        .grant_types
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("client")))
        .collect::<Result<_, _>>()?;
    Ok(Client {
        redirect_uris: serde_json::from_str(&m.redirect_uris).map_err(|_| corrupt("client"))?,
        metadata: serde_json::from_str(&m.metadata).map_err(|_| corrupt("client"))?,
        auth_method: AuthMethod::parse(&m.auth_method).ok_or_else(|| corrupt("client"))?,
        grant_types,
        id: m.id,
        secret_hash: m.secret_hash,
        name: m.name,
        scope: scope_set(m.scope.as_deref(), "client")?,
        resources,
        tier: ClientTier::parse(&m.tier).ok_or_else(|| corrupt("client"))?,
        audiences: serde_json::from_str(&m.audiences).map_err(|_| corrupt("client"))?,
        trusted_redirects: m.trusted_redirects,
        updated_at: at(m.updated_at),
        created_at: at(m.created_at),
        secret_expires_at: m.secret_expires_at.map(at),
        registration_token_hash: m.registration_token_hash,
        keys: match (m.jwks, m.jwks_uri) {
            (Some(set), _) => Some(ClientKeys::Jwks(
                serde_json::from_str(&set).map_err(|_| corrupt("client"))?,
            )),
            (None, Some(uri)) => Some(ClientKeys::JwksUri(uri)),
            (None, None) => None,
        },
    })
}

pub(crate) fn client_model(c: &Client) -> clients::Model {
    clients::Model {
        id: c.id.clone(),
        secret_hash: c.secret_hash.clone(),
        name: c.name.clone(),
        redirect_uris: serde_json::Value::from(c.redirect_uris.clone()).to_string(),
        grant_types: c
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        auth_method: c.auth_method.as_str().to_owned(),
        scope: c.scope.as_ref().map(ToString::to_string),
        metadata: c.metadata.to_string(),
        created_at: ts(c.created_at),
        tier: c.tier.as_str().to_owned(),
        audiences: serde_json::Value::from(c.audiences.clone()).to_string(),
        trusted_redirects: c.trusted_redirects,
        updated_at: ts(c.updated_at),
        secret_expires_at: c.secret_expires_at.map(ts),
        registration_token_hash: c.registration_token_hash.clone(),
        jwks: match &c.keys {
            Some(ClientKeys::Jwks(set)) => Some(set.to_string()),
            _ => None,
        },
        jwks_uri: match &c.keys {
            Some(ClientKeys::JwksUri(uri)) => Some(uri.clone()),
            _ => None,
        },
    }
}

pub(crate) fn initial_access_token(
    m: initial_access_tokens::Model,
) -> Result<InitialAccessToken, StoreError> {
    Ok(InitialAccessToken {
        audiences: serde_json::from_str(&m.audiences)
            .map_err(|_| corrupt("initial access token"))?,
        token_hash: m.token_hash,
        scope: scope_set(m.scope.as_deref(), "initial access token")?,
        created_at: at(m.created_at),
        expires_at: at(m.expires_at),
        used_at: m.used_at.map(at),
    })
}

pub(crate) fn initial_access_token_model(t: &InitialAccessToken) -> initial_access_tokens::Model {
    initial_access_tokens::Model {
        token_hash: t.token_hash.clone(),
        audiences: serde_json::Value::from(t.audiences.clone()).to_string(),
        scope: t.scope.as_ref().map(ToString::to_string),
        created_at: ts(t.created_at),
        expires_at: ts(t.expires_at),
        used_at: t.used_at.map(ts),
        used_by: None,
    }
}

pub(crate) fn grant(m: grants::Model) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: uuid(&m.id, "grant")?,
        user_id: uuid(&m.user_id, "grant")?,
        client_id: m.client_id,
        scope: ScopeSet::parse(&m.scope).map_err(|_| corrupt("grant"))?,
        resource: m.resource,
        install: m.install,
        created_at: at(m.created_at),
        revoked_at: m.revoked_at.map(at),
    })
}

pub(crate) fn grant_model(g: &Grant) -> grants::Model {
    grants::Model {
        id: g.id.to_string(),
        client_id: g.client_id.clone(),
        user_id: g.user_id.to_string(),
        scope: g.scope.to_string(),
        resource: g.resource.clone(),
        install: g.install.clone(),
        created_at: ts(g.created_at),
        revoked_at: g.revoked_at.map(ts),
    }
}

pub(crate) fn code(m: authorization_codes::Model) -> Result<AuthorizationCode, StoreError> {
    Ok(AuthorizationCode {
        grant_id: uuid(&m.grant_id, "code")?,
        code_hash: m.code_hash,
        client_id: m.client_id,
        redirect_uri: m.redirect_uri,
        code_challenge: m.code_challenge,
        expires_at: at(m.expires_at),
        consumed_at: m.consumed_at.map(at),
    })
}

pub(crate) fn code_model(c: &AuthorizationCode) -> authorization_codes::Model {
    authorization_codes::Model {
        code_hash: c.code_hash.clone(),
        grant_id: c.grant_id.to_string(),
        client_id: c.client_id.clone(),
        redirect_uri: c.redirect_uri.clone(),
        code_challenge: c.code_challenge.clone(),
        expires_at: ts(c.expires_at),
        consumed_at: c.consumed_at.map(ts),
    }
}

pub(crate) fn refresh(m: refresh_tokens::Model) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        grant_id: uuid(&m.grant_id, "refresh token")?,
        token_hash: m.token_hash,
        expires_at: at(m.expires_at),
        consumed_at: m.consumed_at.map(at),
    })
}

pub(crate) fn refresh_model(r: &RefreshToken) -> refresh_tokens::Model {
    refresh_tokens::Model {
        token_hash: r.token_hash.clone(),
        grant_id: r.grant_id.to_string(),
        expires_at: ts(r.expires_at),
        consumed_at: r.consumed_at.map(ts),
    }
}

pub(crate) fn key(m: signing_keys::Model) -> Result<StoredSigningKey, StoreError> {
    Ok(StoredSigningKey {
        private_der: STANDARD
            .decode(&m.private_key)
            .map_err(|_| corrupt("signing key"))?,
        public_key: STANDARD
            .decode(&m.public_key)
            .map_err(|_| corrupt("signing key"))?,
        kid: m.kid,
        created_at: at(m.created_at),
        activates_at: at(m.activates_at),
    })
}

pub(crate) fn key_model(k: &StoredSigningKey) -> signing_keys::Model {
    signing_keys::Model {
        kid: k.kid.clone(),
        private_key: STANDARD.encode(&k.private_der),
        public_key: STANDARD.encode(&k.public_key),
        created_at: ts(k.created_at),
        activates_at: ts(k.activates_at),
    }
}

pub(crate) fn resource(m: protected_resources::Model) -> ProtectedResource {
    let implies = scope_hierarchy(m.scope_implications.as_deref(), &m.url);
    ProtectedResource {
        resource: Resource::from_stored(m.url),
        scopes: m.scopes.as_deref().and_then(|s| ScopeSet::parse(s).ok()),
        is_default: m.is_default,
        implies,
    }
}

/// A stored scope hierarchy. One that does not read back (it cannot, unless the row was
/// edited by hand) is dropped with a warning: without it, tokens carry only the scopes that
/// were granted, which is narrower, never wider.
fn scope_hierarchy(stored: Option<&str>, url: &str) -> ScopeHierarchy {
    let Some(json) = stored else {
        return ScopeHierarchy::default();
    };
    let read = serde_json::from_str::<BTreeMap<String, BTreeSet<String>>>(json)
        .map_err(|e| e.to_string())
        .and_then(|d| ScopeHierarchy::from_declared(d).map_err(|f| f.to_string()));
    match read {
        Ok(h) => h,
        Err(why) => {
            tracing::warn!(resource = %url, error = %why, "ignoring a corrupt scope hierarchy");
            ScopeHierarchy::default()
        }
    }
}

/// The column value of a scope hierarchy: `None` when there is none.
pub(crate) fn scope_implications(h: &ScopeHierarchy) -> Option<String> {
    (!h.is_empty()).then(|| serde_json::to_string(h.declared()).unwrap_or_default())
}

pub(crate) fn revocation(m: revocation_events::Model) -> Result<RevocationEvent, StoreError> {
    Ok(RevocationEvent {
        kind: RevokedKind::parse(&m.kind).ok_or_else(|| corrupt("revocation event"))?,
        id: m.id,
        subject: m.subject,
        revoked_at: m.revoked_at,
        expires_at: m.expires_at,
        client_id: m.client_id,
    })
}
