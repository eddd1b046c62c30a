//! The storage contracts, one narrow trait per aggregate. `latchkey-store` implements them
//! with sea-orm; nothing here knows about SQL.
//!
//! Single-use contracts are part of the trait: an implementation must make `redeem_code` and
//! `rotate_refresh_token` atomic, so that of two concurrent calls for the same code or token,
//! exactly one returns `true`.

use crate::denylist::RevocationEvent;
use crate::model::{
    AuthorizationCode, Client, ClientTier, Grant, InitialAccessToken, RefreshToken,
    StoredSigningKey, User,
};
use crate::resource::ProtectedResource;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key already exists (duplicate email, client id, resource).
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A shared-state service (Redis) cannot be reached; the operation may be retried later.
    #[error("{0} unavailable")]
    Unavailable(String),
    /// The database cannot be reached: a connection could not be had in time, broke, or is
    /// known to be down (the store fails fast for a short while after a failure). The
    /// request may be retried after `retry_after_secs`. A write that failed this way did not
    /// happen, except that a commit cut off in flight may have landed.
    #[error("database unavailable")]
    DatabaseUnavailable { retry_after_secs: u64 },
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<StoreError> for crate::error::AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(what) => {
                tracing::warn!(%what, "shared state unavailable");
                Self::TemporarilyUnavailable(crate::error::Reason::DependencyUnavailable)
            }
            // Not logged per request: the store logs when the database goes away and when it
            // is back, and an outage under load would otherwise write a line per request.
            StoreError::DatabaseUnavailable { retry_after_secs } => {
                Self::TemporarilyUnavailable(crate::error::Reason::DatabaseUnavailable {
                    retry_after_secs,
                })
            }
            e => Self::internal(e),
        }
    }
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Fails with `Duplicate` if the id exists.
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>>;
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// The clients created or changed at or after `since` (Unix seconds).
    async fn clients_updated_since(&self, since: i64) -> StoreResult<Vec<Client>>;
    /// Deletes the client and everything issued to it (grants, codes, refresh tokens,
    /// consents, usage figures, owned resources). Returns whether it existed.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;
    /// How many clients of `tier` exist.
    async fn count_clients(&self, tier: ClientTier) -> StoreResult<u64>;
    /// Replaces the protected resources the client owns, as changed at `now`. Returns
    /// whether the client exists.
    async fn set_client_resources(
        &self,
        id: &str,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Sets the client's tier, as changed at `now`. Returns whether the client exists.
    async fn set_client_tier(
        &self,
        id: &str,
        tier: ClientTier,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// RFC 7592 §2.2: writes what a client's metadata sets (`name`, `redirect_uris`,
    /// `grant_types`, `auth_method`, `scope`, `metadata`, `keys`, `secret_hash`,
    /// `secret_expires_at`) and `updated_at` from `client`, in one statement, and nothing
    /// else: its tier, audiences, owned resources, redirect trust and registration token
    /// stay as they are. Written only while the stored client still has `client.tier` and
    /// `registration_token_hash`, so a replacement never lands on a client that was deleted,
    /// or made an operator's, after it was read. Returns whether it was written.
    async fn replace_client_metadata(
        &self,
        client: &Client,
        registration_token_hash: &str,
    ) -> StoreResult<bool>;
    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()>;
    async fn find_initial_access_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<InitialAccessToken>>;
    /// Single-use: marks the initial access token used by `client` and inserts `client`, in
    /// one transaction. Returns `false`, writing nothing, when the token is already used or
    /// has expired at `now`; of two concurrent calls with one token exactly one returns `true`.
    async fn insert_client_redeeming(
        &self,
        client: &Client,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Duplicate` if the email (case-insensitively) exists.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Sets the disabled flag; returns the updated user, or `None` if there is no such email.
    async fn set_user_disabled(&self, email: &str, disabled: bool) -> StoreResult<Option<User>>;
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new grant together with the authorization code that will redeem it.
    async fn insert_grant_with_code(
        &self,
        grant: &Grant,
        code: &AuthorizationCode,
    ) -> StoreResult<()>;
    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>>;
    /// Single-use: marks the code consumed and stores `refresh` (if any) in one transaction.
    /// Returns `false`, writing nothing, when the code was already consumed; of two concurrent
    /// calls exactly one returns `true`.
    async fn redeem_code(
        &self,
        code_hash: &str,
        now: DateTime<Utc>,
        refresh: Option<&RefreshToken>,
    ) -> StoreResult<bool>;
    async fn find_grant(&self, id: Uuid) -> StoreResult<Option<Grant>>;
    /// The user's grants that are not revoked, oldest first.
    async fn live_grants_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Grant>>;
    /// Marks the grant revoked (idempotent). Its refresh tokens and access tokens stop working.
    /// Returns whether this call revoked it (false: it was already revoked, or is unknown).
    async fn revoke_grant(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;
    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;
    /// Single-use: marks `old_hash` consumed and stores `new` in one transaction. Returns
    /// `false`, writing nothing, when `old_hash` was already consumed; of two concurrent calls
    /// exactly one returns `true`.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: DateTime<Utc>,
        new: &RefreshToken,
    ) -> StoreResult<bool>;
    /// Records a user's consent for a client from one install (for audit and for the consent
    /// screen).
    async fn record_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        install: &str,
        scope: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// The client assertions already used (`private_key_jwt`, RFC 7523 §3 `jti`), shared by
/// every replica.
#[async_trait]
pub trait AssertionStore: Send + Sync {
    /// Single-use: records that `client_id` used the assertion `jti`, which may be accepted
    /// until `expires_at`. Returns `false`, writing nothing, when that pair is recorded and
    /// not expired at `now`; of two concurrent calls for one pair exactly one returns `true`.
    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// A Client ID Metadata Document as fetched, kept so that replicas share one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    pub client_id: String,
    /// The document's bytes, as fetched (the fetcher bounds them).
    pub body: Vec<u8>,
    pub fetched_at: DateTime<Utc>,
    /// Until when it may be used without fetching it again.
    pub expires_at: DateTime<Utc>,
}

/// Fetched metadata documents, shared by every replica.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    async fn find_document(&self, client_id: &str) -> StoreResult<Option<StoredDocument>>;
    /// Stores `doc`, replacing what was kept for its client.
    async fn put_document(&self, doc: &StoredDocument) -> StoreResult<()>;
}

/// The revocation event log every replica replays (see `denylist`).
#[async_trait]
pub trait RevocationStore: Send + Sync {
    async fn record_revocation(&self, ev: &RevocationEvent) -> StoreResult<()>;
    /// Events recorded at or after `since` that are still in force at `now`.
    async fn revocations_since(&self, since: i64, now: i64) -> StoreResult<Vec<RevocationEvent>>;
    /// Deletes the events that can no longer affect a valid token at `now`; returns how many.
    async fn prune_revocations(&self, now: i64) -> StoreResult<u64>;
    /// How many access-token (`token`) events that `client_id` made are still in force at
    /// `now`.
    async fn count_token_revocations(&self, client_id: &str, now: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()>;
}

#[async_trait]
pub trait ResourceStore: Send + Sync {
    async fn list_resources(&self) -> StoreResult<Vec<ProtectedResource>>;
    /// Adds a resource; when it is the default, the previous default stops being one.
    async fn insert_resource(&self, resource: &ProtectedResource) -> StoreResult<()>;
    async fn delete_resource(&self, url: &str) -> StoreResult<bool>;
}

/// What can no longer be used, counted or deleted by [`MaintenanceStore::purge_expired`]
/// (and, for sessions and idle clients, by the core's purge around it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub codes: u64,
    pub refresh_tokens: u64,
    pub initial_access_tokens: u64,
    pub revocation_events: u64,
    /// Grants with nothing left that could issue a token.
    pub grants: u64,
    /// Authorization sessions past their expiry (an in-memory store; Redis expires its own).
    pub sessions: u64,
    /// `dynamic` clients deleted after going unused.
    pub idle_clients: u64,
    /// Used client assertion ids past their expiry.
    pub client_assertions: u64,
    /// Fetched metadata documents past their freshness.
    pub client_documents: u64,
}

/// Counts for an operator.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Clients by tier name.
    pub clients_by_tier: Vec<(String, u64)>,
    pub users: u64,
    pub grants: u64,
    pub revoked_grants: u64,
    /// Grants with a refresh token that can still be used.
    pub live_refresh_families: u64,
    pub tokens_issued: u64,
    /// The latest use of any client (Unix seconds), if any was recorded.
    pub last_use: Option<i64>,
}

/// One client's use since the last batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUsage {
    pub client_id: String,
    pub tokens_issued: u64,
    pub last_used_at: i64,
}

/// Housekeeping and figures, for maintenance and operators.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Deletes (or, with `dry_run`, only counts) what can no longer be used at `now`:
    /// - codes a day past their expiry (kept that long so a late replay still revokes);
    /// - refresh tokens past their expiry, and every refresh token of a revoked grant (used
    ///   ones of a live grant are kept until their expiry: reuse detection);
    /// - grants older than a code's lifetime and a day that no longer hold a code or a
    ///   refresh token that survives this purge (their access tokens need no row);
    /// - initial access tokens past their expiry, used or not;
    /// - revocation events that can no longer affect a valid token;
    /// - used client assertion ids past their expiry, and fetched documents past their
    ///   freshness.
    ///
    /// The `sessions` and `idle_clients` counts are left at zero.
    async fn purge_expired(&self, now: DateTime<Utc>, dry_run: bool) -> StoreResult<Expired>;
    /// Up to `limit` `dynamic` clients, oldest first, that hold neither a refresh token usable
    /// at `now` nor an unused, unexpired code, and that either have not been used (issued a
    /// token, as the usage figures record it) since `idle_since`, nor created since then, or
    /// were created before `unused_since` and never used at all.
    async fn idle_dynamic_clients(
        &self,
        idle_since: DateTime<Utc>,
        unused_since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<String>>;
    async fn stats(&self, now: DateTime<Utc>) -> StoreResult<StoreStats>;
    /// Adds a batch of usage to the stored figures (counts add up; last use only moves
    /// forward). Clients deleted since are skipped.
    async fn record_usage(&self, batch: &[ClientUsage]) -> StoreResult<()>;
}

/// Every store the core needs, as shared trait objects.
#[derive(Clone)]
pub struct Stores {
    pub clients: Arc<dyn ClientStore>,
    pub users: Arc<dyn UserStore>,
    pub grants: Arc<dyn GrantStore>,
    pub revocations: Arc<dyn RevocationStore>,
    pub keys: Arc<dyn KeyStore>,
    pub resources: Arc<dyn ResourceStore>,
    pub maintenance: Arc<dyn MaintenanceStore>,
    pub assertions: Arc<dyn AssertionStore>,
    pub documents: Arc<dyn DocumentStore>,
}

impl Stores {
    /// Wires one backend that implements every trait.
    pub fn from_backend<S>(backend: Arc<S>) -> Self
    where
        S: ClientStore
            + UserStore
            + GrantStore
            + RevocationStore
            + KeyStore
            + ResourceStore
            + MaintenanceStore
            + AssertionStore
            + DocumentStore
            + 'static,
    {
        Self {
            clients: backend.clone(),
            users: backend.clone(),
            grants: backend.clone(),
            revocations: backend.clone(),
            keys: backend.clone(),
            resources: backend.clone(),
            maintenance: backend.clone(),
            assertions: backend.clone(),
            documents: backend,
        }
    }
}
