//! The cache of verified access tokens on the hot path, so a token checked many times costs
//! one signature check. It cannot make a revoked token pass: revocation is checked on every
//! call against the denylist, after the cache. (Clients and resources are held by the
//! directory, `directory.rs`.)

use crate::token::AccessTokenClaims;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// foldhash, not SipHash: the key is a whole JWT (hundreds of bytes), hashed on every
/// VerifyToken. Flooding needs keys that collide, and only a token whose signature verified
/// is ever inserted, so a caller cannot choose them; the seed is random per map besides.
type TokenHasher = foldhash::fast::RandomState;

/// Verified tokens kept before the cache is swept.
const MAX_VERIFIED: usize = 50_000;

/// Signature-checked tokens by their exact text.
#[derive(Default)]
pub(crate) struct VerifiedTokens(RwLock<HashMap<Box<str>, Arc<AccessTokenClaims>, TokenHasher>>);

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
