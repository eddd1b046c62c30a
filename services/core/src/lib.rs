//! latchkey-core: the OAuth 2.1 engine of Latchkey.
//!
//! It owns every protocol decision: client registration and authentication, the
//! authorization request, PKCE, the grants, token minting and checking, revocation and
//! introspection. It depends on no transport and no ORM: the gRPC service in `latchkey-auth`
//! translates to and from it, and `latchkey-store` implements its storage traits.

pub mod authorize;
pub mod client_auth;
pub mod clock;
pub mod error;
pub mod grant;
pub mod introspection;
pub mod keys;
mod metadata;
pub mod model;
pub mod password;
pub mod pkce;
pub mod redirect_uri;
pub mod registration;
pub mod resource;
pub mod revocation;
pub mod scope;
pub mod secret;
pub mod session;
pub mod settings;
pub mod store;
pub mod token;
pub mod users;

use std::sync::Arc;

pub use error::{AuthError, AuthResult, Reason};
pub use settings::CoreSettings;

use clock::Clock;
use keys::KeyRing;
use session::SessionStore;
use store::Stores;

/// The engine: settings, stores, keys and a clock. Cheap to share behind an `Arc`.
pub struct AuthCore {
    settings: CoreSettings,
    stores: Stores,
    sessions: Arc<dyn SessionStore>,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
}

impl AuthCore {
    pub fn new(
        settings: CoreSettings,
        stores: Stores,
        sessions: Arc<dyn SessionStore>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            settings,
            stores,
            sessions,
            keys,
            clock,
        }
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Loads the signing keys, generating and storing the first one on a fresh database.
    pub async fn load_or_create_keys(
        store: &dyn store::KeyStore,
        clock: &dyn Clock,
    ) -> AuthResult<KeyRing> {
        let mut stored = store.list_signing_keys().await?;
        if !stored.iter().any(|k| k.active) {
            let key = keys::generate(clock.now(), true)?;
            store.insert_signing_key(&key).await?;
            tracing::info!(kid = %key.kid, "generated the first signing key");
            stored.push(key);
        }
        KeyRing::new(&stored)
    }

    /// The protected resources: those from configuration, then the registered ones.
    async fn protected_resources(&self) -> AuthResult<Vec<resource::ProtectedResource>> {
        let mut all = self.settings.resources.clone();
        all.extend(self.stores.resources.list_resources().await?);
        Ok(all)
    }
}
