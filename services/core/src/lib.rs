//! latchkey-core: every OAuth 2.1 rule of Latchkey.
//!
//! It owns every protocol decision: client registration and authentication, the
//! authorization request, PKCE, the grants, token minting and checking, revocation and
//! introspection. It depends on no transport and no ORM: the gRPC service in `latchkey-auth`
//! translates to and from it, and `latchkey-store` implements its storage traits.

mod audience;
pub mod audit;
pub mod authorize;
mod cache;
pub mod client_assertion;
pub mod client_auth;
pub mod client_network;
pub mod clock;
pub mod denylist;
mod directory;
pub mod error;
pub mod grant;
pub mod housekeeping;
pub mod installs;
pub mod introspection;
pub mod keys;
pub mod limits;
pub mod lockout;
mod metadata;
pub mod metadata_document;
pub mod model;
pub mod password;
pub mod pkce;
pub mod redirect_uri;
pub mod registration;
pub mod resource;
pub mod revocation;
pub mod scope;
pub mod scope_hierarchy;
pub mod sealing;
pub mod secret;
pub mod session;
pub mod settings;
pub mod signature_batch;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(any(test, feature = "test-util"))]
pub mod testing_keys;
pub mod token;
pub mod users;

use std::sync::Arc;

pub use error::{AuthError, AuthResult, Reason, TokenFault};
pub use settings::CoreSettings;

use clock::Clock;
use denylist::{Denylist, LocalBus, RevocationBus, RevocationEvent, RevokedKind};
use keys::KeyRing;
use session::SessionStore;
use store::Stores;
use tokio::sync::watch;
use uuid::Uuid;

/// The core: settings, stores, keys, the in-memory directory and a clock. Cheap to share
/// behind an `Arc`.
pub struct AuthCore {
    settings: CoreSettings,
    stores: Stores,
    sessions: Arc<dyn SessionStore>,
    /// The key ring; replaced whole on rotation, watched by `WatchKeys`.
    keys: watch::Sender<Arc<KeyRing>>,
    clock: Arc<dyn Clock>,
    denylist: Arc<Denylist>,
    bus: Arc<dyn RevocationBus>,
    verified: cache::VerifiedTokens,
    signatures: Arc<signature_batch::SignatureBatch>,
    directory: directory::Directory,
    usage: housekeeping::Usage,
    first_uses: housekeeping::FirstUses,
    lockout: Arc<dyn lockout::LockoutStore>,
    /// Passwords checked with argon2 so far (see [`AuthCore::password_checks`]).
    password_checks: std::sync::atomic::AtomicU64,
    /// Fetches Client ID Metadata Documents; without one, https `client_id`s name no client.
    documents: Option<Arc<dyn metadata_document::ClientDocuments>>,
    document_cache: metadata_document::DocumentCache,
    /// Key sets fetched from clients' `jwks_uri`.
    key_sets: client_assertion::KeySetCache,
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
            keys: watch::channel(keys).0,
            clock,
            denylist: Arc::new(Denylist::default()),
            bus: Arc::new(LocalBus),
            verified: cache::VerifiedTokens::default(),
            signatures: Arc::default(),
            directory: directory::Directory::default(),
            usage: housekeeping::Usage::default(),
            first_uses: housekeeping::FirstUses::default(),
            lockout: Arc::new(lockout::MemoryLockout::default()),
            password_checks: std::sync::atomic::AtomicU64::new(0),
            documents: None,
            document_cache: metadata_document::DocumentCache::default(),
            key_sets: client_assertion::KeySetCache::default(),
        }
    }

    /// Reads Client ID Metadata Documents with `fetcher` (the binary's SSRF-safe client).
    pub fn with_client_documents(
        mut self,
        fetcher: Arc<dyn metadata_document::ClientDocuments>,
    ) -> Self {
        self.documents = Some(fetcher);
        self
    }

    /// Keeps authorization sessions in `store` (Redis, shared by replicas).
    pub fn with_session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.sessions = store;
        self
    }

    /// Keeps sign-in lockout state in `store` (Redis, shared by replicas).
    pub fn with_lockout_store(mut self, store: Arc<dyn lockout::LockoutStore>) -> Self {
        self.lockout = store;
        self
    }

    /// Fans revocations out to other replicas through `bus` (Redis pub/sub).
    pub fn with_revocation_bus(mut self, bus: Arc<dyn RevocationBus>) -> Self {
        self.bus = bus;
        self
    }

    /// How many sign-in attempts this core has checked with argon2 since it started (the
    /// stand-in check for an unknown account included). Every other attempt was refused
    /// before its password was looked at: this is the number the lockout bounds.
    pub fn password_checks(&self) -> u64 {
        self.password_checks
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// The current instant on the core's clock: the only clock, for the core and for the
    /// maintenance it is asked to do.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// This replica's revocation state.
    pub fn denylist(&self) -> &Arc<Denylist> {
        &self.denylist
    }

    /// The current key ring.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.borrow().clone()
    }

    /// Notified whenever the key ring changes.
    pub fn watch_keys(&self) -> watch::Receiver<Arc<KeyRing>> {
        self.keys.subscribe()
    }

    /// Replaces the key ring with a different set of keys. Cached verifications are dropped,
    /// since a retired key's tokens must stop verifying.
    pub fn replace_keys(&self, ring: Arc<KeyRing>) {
        self.verified.clear();
        self.keys.send_replace(ring);
    }

    /// Loads the signing keys, generating and storing the first one on a fresh database.
    pub async fn load_or_create_keys(
        store: &dyn store::KeyStore,
        clock: &dyn Clock,
        settings: &CoreSettings,
    ) -> AuthResult<KeyRing> {
        let mut stored = store.list_signing_keys().await?;
        if stored.is_empty() {
            let now = clock.now();
            let key = keys::generate(now, now, settings.key_encryption_key.as_ref())?;
            store.insert_signing_key(&key).await?;
            crate::audit::Audit {
                event: "key_generated",
                outcome: "success",
                kid: &key.kid,
                ..Default::default()
            }
            .emit();
            stored.push(key);
        }
        KeyRing::build(
            &stored,
            settings.key_encryption_key.as_ref(),
            clock.now().timestamp(),
            Self::retire_after(settings),
        )
    }

    /// A superseded key verifies for this long: the longest an access token it signed lives.
    fn retire_after(settings: &CoreSettings) -> i64 {
        settings.access_token_ttl.num_seconds()
            + i64::try_from(settings.leeway_secs).unwrap_or(0)
            + 60
    }

    /// Publishes a new signing key that starts signing after the publish lead
    /// (publish-before-use). Returns its `kid`.
    pub async fn rotate_keys(&self) -> AuthResult<String> {
        let now = self.clock.now();
        let key = keys::generate(
            now,
            now + chrono::Duration::seconds(self.settings.key_publish_secs),
            self.settings.key_encryption_key.as_ref(),
        )?;
        self.stores.keys.insert_signing_key(&key).await?;
        crate::audit::Audit {
            event: "key_published",
            outcome: "success",
            kid: &key.kid,
            ..Default::default()
        }
        .emit();
        self.reload_keys().await?;
        Ok(key.kid)
    }

    /// Every stored signing key and where it stands now.
    pub async fn key_states(&self) -> AuthResult<Vec<keys::KeyStatus>> {
        let now = self.clock.now();
        let ring = self.keys();
        let signing = ring.active_kid_at(now.timestamp()).map(str::to_owned);
        let published = ring.kids();
        Ok(self
            .stores
            .keys
            .list_signing_keys()
            .await?
            .into_iter()
            .map(|k| {
                let state = if Some(&k.kid) == signing.as_ref() {
                    keys::KeyState::Signing
                } else if k.activates_at > now {
                    keys::KeyState::Published
                } else if published.contains(&k.kid.as_str()) {
                    keys::KeyState::VerifyOnly
                } else {
                    keys::KeyState::Retired
                };
                keys::KeyStatus {
                    kid: k.kid,
                    created_at: k.created_at,
                    activates_at: k.activates_at,
                    state,
                }
            })
            .collect())
    }

    /// Rebuilds the key ring from the database (new keys published, old ones retired).
    /// Returns whether the set of keys changed.
    pub async fn reload_keys(&self) -> AuthResult<bool> {
        let stored = self.stores.keys.list_signing_keys().await?;
        let ring = KeyRing::build(
            &stored,
            self.settings.key_encryption_key.as_ref(),
            self.clock.now().timestamp(),
            Self::retire_after(&self.settings),
        )?;
        let changed = ring.kids() != self.keys().kids();
        if changed {
            self.replace_keys(Arc::new(ring));
        } else {
            // Same keys: keep the cache of verified tokens, but take the fresh ring.
            self.keys.send_replace(Arc::new(ring));
        }
        Ok(changed)
    }

    /// Scheduled rotation: publishes the next key when the current one has signed for the
    /// rotation period less the publish lead, unless a next key is already published.
    pub async fn rotate_if_due(&self) -> AuthResult<Option<String>> {
        let period = self.settings.key_rotation_secs;
        if period <= 0 {
            return Ok(None);
        }
        let now = self.clock.now().timestamp();
        let ring = self.keys();
        let since = ring.active_since(now).unwrap_or(now);
        if ring.has_pending(now) || now - since < period - self.settings.key_publish_secs {
            return Ok(None);
        }
        self.rotate_keys().await.map(Some)
    }

    /// Records a revocation: stored (so restarted and lagging replicas learn it), applied
    /// here at once, and published to the other replicas. `client_id` names the client whose
    /// request made it, if any.
    pub async fn publish_revocation(
        &self,
        kind: RevokedKind,
        subject: String,
        expires_at: i64,
        client_id: Option<&str>,
    ) -> AuthResult<()> {
        let now = self.clock.now().timestamp();
        let revoked_at = match kind {
            RevokedKind::Token | RevokedKind::Grant => now,
            // These match tokens by issue time. Tokens minted in the next moments still fall
            // under the event: by another replica that trusted its cached client or user a
            // little longer, or by one whose clock runs ahead.
            RevokedKind::User | RevokedKind::Client => now + self.revocation_margin(),
        };
        let ev = RevocationEvent {
            id: Uuid::new_v4().to_string(),
            kind,
            subject,
            revoked_at,
            expires_at,
            client_id: client_id.map(str::to_owned),
        };
        self.stores.revocations.record_revocation(&ev).await?;
        self.denylist.apply(&ev);
        if let Err(e) = self.bus.publish(&ev).await {
            // The database poll still carries it to every replica within a second.
            tracing::warn!(error = %e, "revocation fan-out failed; replicas will learn it from the database");
        }
        crate::audit::Audit {
            event: "revocation",
            outcome: "success",
            detail: kind.as_str(),
            ..Default::default()
        }
        .emit();
        Ok(())
    }

    /// Seconds past a user or client revocation during which newly minted tokens are still
    /// revoked: the clock leeway between replicas plus the client cache's lifetime.
    fn revocation_margin(&self) -> i64 {
        let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(0);
        leeway + directory::PROPAGATION_SECS + 1
    }

    /// The instant after which no access token that a revocation made now can cover (issued
    /// up to now plus [`Self::revocation_margin`], by a replica whose clock may be off by
    /// the leeway) can still be valid.
    fn access_token_horizon(&self) -> i64 {
        let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(0);
        self.clock.now().timestamp()
            + self.revocation_margin()
            + self.settings.access_token_ttl.num_seconds()
            + 2 * leeway
    }

    /// Revokes a grant: its refresh tokens in the database, its access tokens everywhere.
    /// `client_id` is the client whose request revokes it.
    pub(crate) async fn revoke_grant(&self, grant_id: Uuid, client_id: &str) -> AuthResult<()> {
        let newly = self
            .stores
            .grants
            .revoke_grant(grant_id, self.clock.now())
            .await?;
        // Revoking again adds nothing: one event per grant, however often it is asked for.
        // Unless the event is missing here: the call that marked the grant may have failed
        // before publishing it, and its retry must still publish.
        if !newly
            && self
                .denylist
                .covers(RevokedKind::Grant, &grant_id.to_string())
        {
            return Ok(());
        }
        self.publish_revocation(
            RevokedKind::Grant,
            grant_id.to_string(),
            self.access_token_horizon(),
            Some(client_id),
        )
        .await
    }

    /// Applies the revocations recorded since `since` (Unix seconds) that are still in force,
    /// and forgets expired ones. Returns how many were new here.
    pub async fn sync_revocations(&self, since: i64) -> AuthResult<usize> {
        let now = self.clock.now().timestamp();
        let events = self
            .stores
            .revocations
            .revocations_since(since, now)
            .await?;
        let new = events.iter().filter(|ev| self.denylist.apply(ev)).count();
        self.denylist.purge(now);
        Ok(new)
    }

    /// Deletes stored revocation events that no longer affect any valid token, so the log
    /// stays as small as what is in force.
    pub async fn prune_revocations(&self) -> AuthResult<u64> {
        let now = self.clock.now().timestamp();
        Ok(self.stores.revocations.prune_revocations(now).await?)
    }
}
