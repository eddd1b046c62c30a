//! Authorization sessions: the state between `/authorize`, the login form and the consent
//! form. They are short-lived and keyed by the SHA-256 of an unguessable handle that the
//! gateway keeps in an `HttpOnly` cookie.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

use crate::store::StoreResult;

/// A validated authorization request waiting for the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationSession {
    pub client_id: String,
    pub client_name: String,
    /// The redirect URI to answer on (validated against the client).
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri` (OAuth 2.1 §4.1.3).
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    /// SHA-256 of the anti-CSRF token embedded in the forms.
    pub csrf_hash: String,
    /// Set once the user has logged in.
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    /// Failed sign-in attempts so far.
    #[serde(default)]
    pub failed_logins: u32,
    pub expires_at: DateTime<Utc>,
}

/// Where authorization sessions live. The in-memory store serves one process; a shared store
/// (Redis) lets any replica continue a login another one started.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn put(&self, key: &str, session: &AuthorizationSession) -> StoreResult<()>;
    /// The session, unless it is unknown or expired at `now`.
    async fn get(&self, key: &str, now: DateTime<Utc>)
    -> StoreResult<Option<AuthorizationSession>>;
    /// Removes and returns the session, atomically: of two concurrent calls one gets it.
    async fn take(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>>;
}

/// Sessions in process memory, bounded in number.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<String, AuthorizationSession>>,
}

/// Past this many live sessions, expired ones are swept before inserting.
const SWEEP_THRESHOLD: usize = 10_000;
/// A hard cap so that a flood of `/authorize` requests cannot exhaust memory.
const MAX_SESSIONS: usize = 200_000;

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn put(&self, key: &str, session: &AuthorizationSession) -> StoreResult<()> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_THRESHOLD {
            let now = Utc::now();
            map.retain(|_, s| s.expires_at > now);
        }
        if map.len() >= MAX_SESSIONS && !map.contains_key(key) {
            return Err(crate::store::StoreError::Backend(
                "too many pending authorizations".into(),
            ));
        }
        map.insert(key.to_owned(), session.clone());
        Ok(())
    }

    async fn get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(key).filter(|s| s.expires_at > now).cloned())
    }

    async fn take(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.remove(key).filter(|s| s.expires_at > now))
    }
}
