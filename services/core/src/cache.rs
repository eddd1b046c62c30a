//! Bounded in-memory caches on the hot paths: verified access tokens (so a token checked
//! many times costs one signature check) and registered clients (so client authentication
//! costs one SHA-256, not a database round trip).
//!
//! Neither cache can make a revoked token pass: revocation is checked on every call against
//! the denylist, after the cache. Cached clients live for at most [`CLIENT_TTL`].

use crate::model::Client;
use crate::token::AccessTokenClaims;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Verified tokens kept before the cache is swept.
const MAX_VERIFIED: usize = 50_000;
/// How long a cached client is trusted before it is read again.
pub(crate) const CLIENT_TTL: Duration = Duration::from_secs(2);
const MAX_CLIENTS: usize = 10_000;

/// Signature-checked tokens by their exact text.
#[derive(Default)]
pub(crate) struct VerifiedTokens(RwLock<HashMap<Box<str>, Arc<AccessTokenClaims>>>);

impl VerifiedTokens {
    pub fn get(&self, token: &str) -> Option<Arc<AccessTokenClaims>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }

    pub fn insert(&self, token: &str, claims: Arc<AccessTokenClaims>, now: i64) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_VERIFIED {
            map.retain(|_, c| c.exp > now);
            if map.len() >= MAX_VERIFIED {
                map.clear();
            }
        }
        map.insert(token.into(), claims);
    }

    pub fn clear(&self) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Registered clients by id, each with the instant it was read.
#[derive(Default)]
pub(crate) struct ClientCache(RwLock<HashMap<String, (Arc<Client>, Instant)>>);

impl ClientCache {
    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|(_, at)| at.elapsed() < CLIENT_TTL)
            .map(|(c, _)| c.clone())
    }

    pub fn insert(&self, client: Arc<Client>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS {
            map.retain(|_, (_, at)| at.elapsed() < CLIENT_TTL);
            if map.len() >= MAX_CLIENTS {
                map.clear();
            }
        }
        map.insert(client.id.clone(), (client, Instant::now()));
    }

    pub fn remove(&self, id: &str) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}
