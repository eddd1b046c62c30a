//! Test support: an in-memory implementation of every store trait, and a builder that puts an
//! [`AuthCore`] over it with a clock that moves only when told to.
//!
//! Compiled for this crate's own tests and, behind the `test-util` feature, for anyone who
//! wants to unit-test code on top of the core without a database. It is not a production
//! store: it keeps everything in one process and forgets it on exit.
//!
//! Every contract written on the traits in [`crate::store`] holds here too. The whole store
//! sits behind one lock, and no method awaits while holding it, so each call is one atomic
//! step: of two concurrent single-use calls (`redeem_code`, `rotate_refresh_token`,
//! `insert_client_redeeming`) exactly one wins, and a call that fails or loses writes nothing.
//! Relations behave like the database's foreign keys: deleting a client deletes its grants,
//! codes, refresh tokens and consents, and a grant or consent for a client or user that does
//! not exist is refused.

use crate::AuthCore;
use crate::clock::{Clock, ManualClock};
use crate::denylist::RevocationEvent;
use crate::error::AuthResult;
use crate::lockout::LockoutPolicy;
use crate::model::{
    AuthorizationCode, Client, ClientTier, Grant, InitialAccessToken, RefreshToken,
    StoredSigningKey, User,
};
use crate::registration::RegistrationPolicy;
use crate::resource::ProtectedResource;
use crate::scope::{ScopePolicy, ScopeSet};
use crate::session::MemorySessionStore;
use crate::settings::CoreSettings;
use crate::store::{
    AssertionStore, ClientStore, ClientUsage, DocumentStore, Expired, GrantStore, KeyStore,
    MaintenanceStore, ResourceStore, RevocationStore, StoreError, StoreResult, StoreStats,
    StoredDocument, Stores, UserStore,
};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// The issuer of a core built by [`TestCoreBuilder`].
pub const ISSUER: &str = "https://auth.example.com";
/// The supported and default scopes of a core built by [`TestCoreBuilder`].
pub const DEFAULT_SCOPES: &str = "mcp:tools mcp:resources mcp:prompts";

/// A user's consent as recorded by [`GrantStore::record_consent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: Uuid,
    pub client_id: String,
    pub install: String,
    pub scope: String,
    pub resource: String,
    pub granted_at: DateTime<Utc>,
}

/// Everything the store holds. Vectors keep insertion order, which is what the database's
/// `ORDER BY created_at` gives for records created one after another.
#[derive(Debug, Default)]
struct State {
    clients: Vec<Client>,
    initial_access_tokens: HashMap<String, InitialAccessToken>,
    users: Vec<User>,
    grants: HashMap<Uuid, Grant>,
    codes: HashMap<String, AuthorizationCode>,
    refresh_tokens: HashMap<String, RefreshToken>,
    consents: Vec<Consent>,
    revocations: Vec<RevocationEvent>,
    keys: Vec<StoredSigningKey>,
    resources: Vec<ProtectedResource>,
    usage: HashMap<String, (u64, i64)>,
    /// Used client assertions: (client, jti) to when they may be forgotten.
    assertions: HashMap<(String, String), DateTime<Utc>>,
    documents: HashMap<String, StoredDocument>,
}

impl State {
    fn client_mut(&mut self, id: &str) -> Option<&mut Client> {
        self.clients.iter_mut().find(|c| c.id == id)
    }

    fn has_client(&self, id: &str) -> bool {
        self.clients.iter().any(|c| c.id == id)
    }

    fn has_user(&self, id: Uuid) -> bool {
        self.users.iter().any(|u| u.id == id)
    }

    /// The checks the database makes before it stores a client row.
    fn check_new_client(&self, client: &Client) -> StoreResult<()> {
        if self.has_client(&client.id) {
            return Err(StoreError::Duplicate("client"));
        }
        Ok(())
    }

    /// The checks the database makes before it stores a refresh token row: unique hash, and
    /// a grant to belong to (foreign key).
    fn check_new_refresh(&self, refresh: &RefreshToken) -> StoreResult<()> {
        if self.refresh_tokens.contains_key(&refresh.token_hash) {
            return Err(StoreError::Duplicate("refresh token"));
        }
        if !self.grants.contains_key(&refresh.grant_id) {
            return Err(missing("grant"));
        }
        Ok(())
    }
}

/// A foreign key that points at nothing: the database refuses the row.
fn missing(what: &'static str) -> StoreError {
    StoreError::Backend(format!("foreign key violation: no such {what}").into())
}

/// Every store trait, in process memory. Put it behind an `Arc`; one store shared by two
/// cores stands in for two replicas over one database.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The lock over everything. A panic in a test while holding it poisons nothing that
    /// matters: the data is still consistent, since no method leaves it half-written.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store wired as the core's [`Stores`].
    pub fn stores(self: &Arc<Self>) -> Stores {
        Stores::from_backend(self.clone())
    }

    /// Every grant, in no particular order.
    pub fn grants(&self) -> Vec<Grant> {
        self.lock().grants.values().cloned().collect()
    }

    /// Every authorization code, in no particular order.
    pub fn codes(&self) -> Vec<AuthorizationCode> {
        self.lock().codes.values().cloned().collect()
    }

    /// Every refresh token, consumed or not, in no particular order.
    pub fn refresh_tokens(&self) -> Vec<RefreshToken> {
        self.lock().refresh_tokens.values().cloned().collect()
    }

    /// Every recorded consent, oldest first.
    pub fn consents(&self) -> Vec<Consent> {
        self.lock().consents.clone()
    }

    /// Every stored revocation event, oldest first.
    pub fn revocation_events(&self) -> Vec<RevocationEvent> {
        self.lock().revocations.clone()
    }

    /// Every initial access token, in no particular order.
    pub fn initial_access_tokens(&self) -> Vec<InitialAccessToken> {
        self.lock()
            .initial_access_tokens
            .values()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        let mut st = self.lock();
        st.check_new_client(client)?;
        st.clients.push(client.clone());
        Ok(())
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        Ok(self.lock().clients.iter().find(|c| c.id == id).cloned())
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        Ok(self.lock().clients.clone())
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let mut st = self.lock();
        let before = st.clients.len();
        st.clients.retain(|c| c.id != id);
        if st.clients.len() == before {
            return Ok(false);
        }
        // What the database's ON DELETE CASCADE removes: grants, and through them codes and
        // refresh tokens, and consents. Initial access tokens only remember who used them.
        st.grants.retain(|_, g| g.client_id != id);
        let State {
            grants,
            codes,
            refresh_tokens,
            consents,
            ..
        } = &mut *st;
        codes.retain(|_, c| grants.contains_key(&c.grant_id));
        refresh_tokens.retain(|_, r| grants.contains_key(&r.grant_id));
        consents.retain(|c| c.client_id != id);
        st.usage.remove(id);
        Ok(true)
    }

    async fn count_clients(&self, tier: ClientTier) -> StoreResult<u64> {
        Ok(self
            .lock()
            .clients
            .iter()
            .filter(|c| c.tier == tier)
            .count() as u64)
    }

    async fn clients_updated_since(&self, since: i64) -> StoreResult<Vec<Client>> {
        Ok(self
            .lock()
            .clients
            .iter()
            .filter(|c| c.updated_at.timestamp() >= since)
            .cloned()
            .collect())
    }

    async fn set_client_resources(
        &self,
        id: &str,
        resources: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut st = self.lock();
        Ok(match st.client_mut(id) {
            Some(c) => {
                c.resources = resources.to_vec();
                c.updated_at = now;
                true
            }
            None => false,
        })
    }

    async fn set_client_tier(
        &self,
        id: &str,
        tier: ClientTier,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut st = self.lock();
        Ok(match st.client_mut(id) {
            Some(c) => {
                c.tier = tier;
                c.updated_at = now;
                true
            }
            None => false,
        })
    }

    async fn replace_client_metadata(
        &self,
        client: &Client,
        registration_token_hash: &str,
    ) -> StoreResult<bool> {
        let mut st = self.lock();
        let Some(c) = st.client_mut(&client.id) else {
            return Ok(false);
        };
        // The database's `WHERE tier = ? AND registration_token_hash = ?`: an exact match,
        // as SQL compares; the secret itself was compared in constant time by the core.
        if c.tier != client.tier
            || c.registration_token_hash.as_deref() != Some(registration_token_hash)
        {
            return Ok(false);
        }
        c.name = client.name.clone();
        c.redirect_uris = client.redirect_uris.clone();
        c.grant_types = client.grant_types.clone();
        c.auth_method = client.auth_method;
        c.scope = client.scope.clone();
        c.metadata = client.metadata.clone();
        c.keys = client.keys.clone();
        c.secret_hash = client.secret_hash.clone();
        c.secret_expires_at = client.secret_expires_at;
        c.updated_at = client.updated_at;
        Ok(true)
    }

    async fn insert_initial_access_token(&self, token: &InitialAccessToken) -> StoreResult<()> {
        let mut st = self.lock();
        if st.initial_access_tokens.contains_key(&token.token_hash) {
            return Err(StoreError::Duplicate("initial access token"));
        }
        st.initial_access_tokens
            .insert(token.token_hash.clone(), token.clone());
        Ok(())
    }

    async fn find_initial_access_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<InitialAccessToken>> {
        Ok(self.lock().initial_access_tokens.get(token_hash).cloned())
    }

    async fn insert_client_redeeming(
        &self,
        client: &Client,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut st = self.lock();
        let usable = st
            .initial_access_tokens
            .get(token_hash)
            .is_some_and(|t| t.used_at.is_none() && t.expires_at > now);
        if !usable {
            return Ok(false);
        }
        // Check the client before spending the token: a failed insert rolls back the mark.
        st.check_new_client(client)?;
        if let Some(t) = st.initial_access_tokens.get_mut(token_hash) {
            t.used_at = Some(now);
        }
        st.clients.push(client.clone());
        Ok(true)
    }
}

/// Emails are unique regardless of case, as the database's index on the normalized address.
fn same_email(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut st = self.lock();
        if st.users.iter().any(|u| same_email(&u.email, &user.email)) {
            return Err(StoreError::Duplicate("email"));
        }
        if st.has_user(user.id) {
            return Err(StoreError::Duplicate("user"));
        }
        st.users.push(user.clone());
        Ok(())
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        Ok(self
            .lock()
            .users
            .iter()
            .find(|u| same_email(&u.email, email))
            .cloned())
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        Ok(self.lock().users.iter().find(|u| u.id == id).cloned())
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let mut users = self.lock().users.clone();
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    async fn set_user_disabled(&self, email: &str, disabled: bool) -> StoreResult<Option<User>> {
        let mut st = self.lock();
        Ok(st
            .users
            .iter_mut()
            .find(|u| same_email(&u.email, email))
            .map(|u| {
                u.disabled = disabled;
                u.clone()
            }))
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn insert_grant_with_code(
        &self,
        grant: &Grant,
        code: &AuthorizationCode,
    ) -> StoreResult<()> {
        let mut st = self.lock();
        if !st.has_client(&grant.client_id) {
            return Err(missing("client"));
        }
        if !st.has_user(grant.user_id) {
            return Err(missing("user"));
        }
        if code.grant_id != grant.id {
            return Err(missing("grant"));
        }
        if st.grants.contains_key(&grant.id) {
            return Err(StoreError::Duplicate("grant"));
        }
        if st.codes.contains_key(&code.code_hash) {
            return Err(StoreError::Duplicate("authorization code"));
        }
        st.grants.insert(grant.id, grant.clone());
        st.codes.insert(code.code_hash.clone(), code.clone());
        Ok(())
    }

    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>> {
        Ok(self.lock().codes.get(code_hash).cloned())
    }

    async fn redeem_code(
        &self,
        code_hash: &str,
        now: DateTime<Utc>,
        refresh: Option<&RefreshToken>,
    ) -> StoreResult<bool> {
        let mut st = self.lock();
        let unused = st
            .codes
            .get(code_hash)
            .is_some_and(|c| c.consumed_at.is_none());
        if !unused {
            return Ok(false);
        }
        // Every check before the first write, so that a failure writes nothing.
        if let Some(r) = refresh {
            st.check_new_refresh(r)?;
        }
        if let Some(c) = st.codes.get_mut(code_hash) {
            c.consumed_at = Some(now);
        }
        if let Some(r) = refresh {
            st.refresh_tokens.insert(r.token_hash.clone(), r.clone());
        }
        Ok(true)
    }

    async fn find_grant(&self, id: Uuid) -> StoreResult<Option<Grant>> {
        Ok(self.lock().grants.get(&id).cloned())
    }

    async fn live_grants_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Grant>> {
        let mut grants: Vec<Grant> = self
            .lock()
            .grants
            .values()
            .filter(|g| g.user_id == user_id && g.revoked_at.is_none())
            .cloned()
            .collect();
        grants.sort_by_key(|g| g.created_at);
        Ok(grants)
    }

    async fn revoke_grant(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut st = self.lock();
        Ok(match st.grants.get_mut(&id) {
            Some(g) if g.revoked_at.is_none() => {
                g.revoked_at = Some(now);
                true
            }
            _ => false,
        })
    }

    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        Ok(self.lock().refresh_tokens.get(token_hash).cloned())
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: DateTime<Utc>,
        new: &RefreshToken,
    ) -> StoreResult<bool> {
        let mut st = self.lock();
        let unused = st
            .refresh_tokens
            .get(old_hash)
            .is_some_and(|r| r.consumed_at.is_none());
        if !unused {
            return Ok(false);
        }
        st.check_new_refresh(new)?;
        if let Some(r) = st.refresh_tokens.get_mut(old_hash) {
            r.consumed_at = Some(now);
        }
        st.refresh_tokens
            .insert(new.token_hash.clone(), new.clone());
        Ok(true)
    }

    async fn record_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        install: &str,
        scope: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut st = self.lock();
        if !st.has_client(client_id) {
            return Err(missing("client"));
        }
        if !st.has_user(user_id) {
            return Err(missing("user"));
        }
        st.consents.push(Consent {
            user_id,
            client_id: client_id.to_owned(),
            install: install.to_owned(),
            scope: scope.to_owned(),
            resource: resource.to_owned(),
            granted_at: now,
        });
        Ok(())
    }
}

/// How long a code is kept past its expiry, as the database store keeps it: a replay that
/// late still revokes what it issued.
const CODE_KEPT: Duration = Duration::hours(24);
/// The longest a code lives (the configuration refuses more).
const LONGEST_CODE: Duration = Duration::seconds(600);

impl State {
    fn grant_revoked(&self, id: &Uuid) -> bool {
        self.grants.get(id).is_some_and(|g| g.revoked_at.is_some())
    }

    /// What the purge keeps: the rules of [`MaintenanceStore::purge_expired`].
    fn code_kept(&self, c: &AuthorizationCode, now: DateTime<Utc>) -> bool {
        c.expires_at > now - CODE_KEPT
    }

    fn refresh_kept(&self, r: &RefreshToken, now: DateTime<Utc>) -> bool {
        r.expires_at > now && !self.grant_revoked(&r.grant_id)
    }

    fn grant_kept(&self, g: &Grant, now: DateTime<Utc>) -> bool {
        g.created_at > now - CODE_KEPT - LONGEST_CODE
            || self
                .codes
                .values()
                .any(|c| c.grant_id == g.id && self.code_kept(c, now))
            || self
                .refresh_tokens
                .values()
                .any(|r| r.grant_id == g.id && self.refresh_kept(r, now))
    }
}

#[async_trait]
impl MaintenanceStore for MemoryStore {
    async fn purge_expired(&self, now: DateTime<Utc>, dry_run: bool) -> StoreResult<Expired> {
        let mut st = self.lock();
        let now_s = now.timestamp();
        let dead_grants: Vec<Uuid> = st
            .grants
            .values()
            .filter(|g| !st.grant_kept(g, now))
            .map(|g| g.id)
            .collect();
        let expired = Expired {
            codes: st.codes.values().filter(|c| !st.code_kept(c, now)).count() as u64,
            refresh_tokens: st
                .refresh_tokens
                .values()
                .filter(|r| !st.refresh_kept(r, now))
                .count() as u64,
            grants: dead_grants.len() as u64,
            initial_access_tokens: st
                .initial_access_tokens
                .values()
                .filter(|t| t.expires_at <= now)
                .count() as u64,
            revocation_events: st
                .revocations
                .iter()
                .filter(|e| e.expires_at <= now_s)
                .count() as u64,
            sessions: 0,
            idle_clients: 0,
            client_assertions: st.assertions.values().filter(|e| **e <= now).count() as u64,
            client_documents: st
                .documents
                .values()
                .filter(|d| d.expires_at <= now)
                .count() as u64,
        };
        if !dry_run {
            let State {
                codes,
                refresh_tokens,
                grants,
                ..
            } = &mut *st;
            codes.retain(|_, c| c.expires_at > now - CODE_KEPT);
            refresh_tokens.retain(|_, r| {
                r.expires_at > now
                    && grants
                        .get(&r.grant_id)
                        .is_none_or(|g| g.revoked_at.is_none())
            });
            for id in &dead_grants {
                grants.remove(id);
            }
            // What the database's foreign keys would remove with the grants: nothing is left
            // (the purge found none that survive), but keep the relation honest.
            codes.retain(|_, c| grants.contains_key(&c.grant_id));
            refresh_tokens.retain(|_, r| grants.contains_key(&r.grant_id));
            st.initial_access_tokens.retain(|_, t| t.expires_at > now);
            st.revocations.retain(|e| e.expires_at > now_s);
            st.assertions.retain(|_, e| *e > now);
            st.documents.retain(|_, d| d.expires_at > now);
        }
        Ok(expired)
    }

    async fn idle_dynamic_clients(
        &self,
        idle_since: DateTime<Utc>,
        unused_since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<String>> {
        let st = self.lock();
        let since = idle_since.timestamp();
        let holds_live = |id: &str| {
            st.refresh_tokens.values().any(|r| {
                r.consumed_at.is_none()
                    && r.expires_at > now
                    && st
                        .grants
                        .get(&r.grant_id)
                        .is_some_and(|g| g.client_id == id && g.revoked_at.is_none())
            }) || st
                .codes
                .values()
                .any(|c| c.client_id == id && c.consumed_at.is_none() && c.expires_at > now)
        };
        let mut idle: Vec<&Client> = st
            .clients
            .iter()
            .filter(|c| c.tier == ClientTier::Dynamic)
            .filter(|c| match st.usage.get(&c.id) {
                None => c.created_at < idle_since || c.created_at < unused_since,
                Some(u) => u.1 < since && c.created_at < idle_since,
            })
            .filter(|c| !holds_live(&c.id))
            .collect();
        idle.sort_by_key(|c| c.created_at);
        Ok(idle
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|c| c.id.clone())
            .collect())
    }

    async fn stats(&self, now: DateTime<Utc>) -> StoreResult<StoreStats> {
        let st = self.lock();
        let mut by_tier: std::collections::BTreeMap<String, u64> = Default::default();
        for c in &st.clients {
            *by_tier.entry(c.tier.as_str().to_owned()).or_default() += 1;
        }
        let live: std::collections::HashSet<Uuid> = st
            .refresh_tokens
            .values()
            .filter(|r| r.consumed_at.is_none() && r.expires_at > now)
            .map(|r| r.grant_id)
            .filter(|g| st.grants.get(g).is_some_and(|g| g.revoked_at.is_none()))
            .collect();
        Ok(StoreStats {
            clients_by_tier: by_tier.into_iter().collect(),
            users: st.users.len() as u64,
            grants: st.grants.len() as u64,
            revoked_grants: st
                .grants
                .values()
                .filter(|g| g.revoked_at.is_some())
                .count() as u64,
            live_refresh_families: live.len() as u64,
            tokens_issued: st.usage.values().map(|u| u.0).sum(),
            last_use: st.usage.values().map(|u| u.1).max(),
        })
    }

    async fn record_usage(&self, batch: &[ClientUsage]) -> StoreResult<()> {
        let mut st = self.lock();
        for u in batch {
            if !st.has_client(&u.client_id) {
                continue;
            }
            let e = st
                .usage
                .entry(u.client_id.clone())
                .or_insert((0, u.last_used_at));
            e.0 += u.tokens_issued;
            e.1 = e.1.max(u.last_used_at);
        }
        Ok(())
    }
}

#[async_trait]
impl AssertionStore for MemoryStore {
    async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut st = self.lock();
        let key = (client_id.to_owned(), jti.to_owned());
        if st.assertions.get(&key).is_some_and(|e| *e > now) {
            return Ok(false);
        }
        st.assertions.insert(key, expires_at);
        Ok(true)
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    async fn find_document(&self, client_id: &str) -> StoreResult<Option<StoredDocument>> {
        Ok(self.lock().documents.get(client_id).cloned())
    }

    async fn put_document(&self, doc: &StoredDocument) -> StoreResult<()> {
        self.lock()
            .documents
            .insert(doc.client_id.clone(), doc.clone());
        Ok(())
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn record_revocation(&self, ev: &RevocationEvent) -> StoreResult<()> {
        let mut st = self.lock();
        if st.revocations.iter().any(|e| e.id == ev.id) {
            return Err(StoreError::Duplicate("revocation event"));
        }
        st.revocations.push(ev.clone());
        Ok(())
    }

    async fn revocations_since(&self, since: i64, now: i64) -> StoreResult<Vec<RevocationEvent>> {
        Ok(self
            .lock()
            .revocations
            .iter()
            .filter(|e| e.revoked_at >= since && e.expires_at > now)
            .cloned()
            .collect())
    }

    async fn prune_revocations(&self, now: i64) -> StoreResult<u64> {
        let mut st = self.lock();
        let before = st.revocations.len();
        st.revocations.retain(|e| e.expires_at > now);
        Ok((before - st.revocations.len()) as u64)
    }

    async fn count_token_revocations(&self, client_id: &str, now: i64) -> StoreResult<u64> {
        Ok(self
            .lock()
            .revocations
            .iter()
            .filter(|e| {
                e.kind == crate::denylist::RevokedKind::Token
                    && e.client_id.as_deref() == Some(client_id)
                    && e.expires_at > now
            })
            .count() as u64)
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let mut keys = self.lock().keys.clone();
        keys.sort_by_key(|k| k.activates_at);
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<()> {
        let mut st = self.lock();
        if st.keys.iter().any(|k| k.kid == key.kid) {
            return Err(StoreError::Duplicate("signing key"));
        }
        st.keys.push(key.clone());
        Ok(())
    }
}

#[async_trait]
impl ResourceStore for MemoryStore {
    async fn list_resources(&self) -> StoreResult<Vec<ProtectedResource>> {
        Ok(self.lock().resources.clone())
    }

    async fn insert_resource(&self, resource: &ProtectedResource) -> StoreResult<()> {
        let mut st = self.lock();
        // The duplicate check comes first: a refused insert must not clear the old default.
        if st.resources.iter().any(|r| r.resource == resource.resource) {
            return Err(StoreError::Duplicate("resource"));
        }
        if resource.is_default {
            for r in &mut st.resources {
                r.is_default = false;
            }
        }
        st.resources.push(resource.clone());
        Ok(())
    }

    async fn delete_resource(&self, url: &str) -> StoreResult<bool> {
        let mut st = self.lock();
        let before = st.resources.len();
        st.resources.retain(|r| r.resource.as_str() != url);
        Ok(st.resources.len() < before)
    }
}

/// A core over a [`MemoryStore`], with the handles a test needs to arrange and observe it.
pub struct TestCore {
    pub core: Arc<AuthCore>,
    /// The core's clock: advance it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The core's storage: seed fixtures and inspect results here.
    pub store: Arc<MemoryStore>,
    /// The core's authorization sessions.
    pub sessions: Arc<MemorySessionStore>,
}

impl TestCore {
    pub fn builder() -> TestCoreBuilder {
        TestCoreBuilder::default()
    }
}

/// The settings of a core built by [`TestCoreBuilder`], before any adjustment: the
/// production defaults for lifetimes and lockout, a development server's open resources,
/// and open registration.
pub fn test_settings() -> CoreSettings {
    // Both are safe by construction: a constant of well-formed tokens, and a default that is
    // the supported set itself.
    let scopes = ScopeSet::parse(DEFAULT_SCOPES).expect("DEFAULT_SCOPES holds valid scope tokens");
    let policy = ScopePolicy::new(scopes.clone(), scopes)
        .expect("the default scopes are the supported ones, so they are all supported");
    CoreSettings {
        issuer: ISSUER.to_owned(),
        access_token_ttl: Duration::seconds(3600),
        refresh_token_ttl: Duration::days(30),
        code_ttl: Duration::seconds(300),
        session_ttl: Duration::seconds(600),
        leeway_secs: 5,
        scopes: policy,
        key_encryption_key: None,
        key_publish_secs: 900,
        key_rotation_secs: 0,
        lockout: LockoutPolicy::default(),
        resources: Vec::new(),
        open_resources: true,
        registration: RegistrationPolicy::Open,
        max_dynamic_clients: 50_000,
        max_sessions_per_network: 100,
        max_token_revocations_per_client: 1000,
        dynamic_client_idle: Some(Duration::days(90)),
        dynamic_client_unused: Some(Duration::hours(24)),
        dynamic_client_secret_ttl: None,
        refresh_max_age: Some(Duration::days(90)),
        client_documents: crate::metadata_document::DocumentPolicy::default(),
    }
}

/// Builds a [`TestCore`]: adjust the settings, pick the starting instant, or share a store
/// with another core, then `build`.
pub struct TestCoreBuilder {
    settings: CoreSettings,
    start: DateTime<Utc>,
    store: Option<Arc<MemoryStore>>,
    session_capacity: usize,
    documents: Option<Arc<dyn crate::metadata_document::ClientDocuments>>,
}

impl std::fmt::Debug for TestCoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCoreBuilder")
            .field("settings", &self.settings)
            .field("start", &self.start)
            .field("documents", &self.documents.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for TestCoreBuilder {
    fn default() -> Self {
        Self {
            settings: test_settings(),
            // 2026-01-01T00:00:00Z: a fixed instant, so that a failure replays the same way.
            start: DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(1_767_225_600),
            store: None,
            session_capacity: crate::session::DEFAULT_CAPACITY,
            documents: None,
        }
    }
}

impl TestCoreBuilder {
    /// Changes the settings, starting from [`test_settings`].
    pub fn settings(mut self, adjust: impl FnOnce(&mut CoreSettings)) -> Self {
        adjust(&mut self.settings);
        self
    }

    /// Where the manual clock starts.
    pub fn starting_at(mut self, at: DateTime<Utc>) -> Self {
        self.start = at;
        self
    }

    /// Builds over `store` instead of a fresh one: two cores over one store stand in for two
    /// replicas over one database.
    pub fn store(mut self, store: Arc<MemoryStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How many authorization sessions the core's in-memory session store holds.
    pub fn session_capacity(mut self, capacity: usize) -> Self {
        self.session_capacity = capacity;
        self
    }

    /// Reads Client ID Metadata Documents with `fetcher`.
    pub fn client_documents(
        mut self,
        fetcher: Arc<dyn crate::metadata_document::ClientDocuments>,
    ) -> Self {
        self.documents = Some(fetcher);
        self
    }

    /// Builds the core, generating its signing key in the store (or loading the one there).
    pub async fn build(self) -> AuthResult<TestCore> {
        let clock = Arc::new(ManualClock::new(self.start));
        let store = self.store.unwrap_or_default();
        let keys =
            AuthCore::load_or_create_keys(store.as_ref(), clock.as_ref(), &self.settings).await?;
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let sessions = Arc::new(MemorySessionStore::new(self.session_capacity));
        let mut core = AuthCore::new(
            self.settings,
            store.stores(),
            sessions.clone(),
            Arc::new(keys),
            dyn_clock,
        );
        if let Some(fetcher) = self.documents {
            core = core.with_client_documents(fetcher);
        }
        Ok(TestCore {
            core: Arc::new(core),
            clock,
            store,
            sessions,
        })
    }
}
