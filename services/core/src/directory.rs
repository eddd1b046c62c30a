//! What the token endpoint must know without asking the database: the registered clients and
//! the protected resources, held in memory on every replica.
//!
//! How a replica learns of a change, and how soon:
//! - its own writes (registration, resource and owner changes through the core) apply at once;
//! - a deleted client is refused as soon as the client revocation its deletion publishes
//!   reaches the denylist: at once through Redis, within the revocation poll otherwise;
//! - any other change (a client's owned resources or tier, a resource added or deleted by
//!   the CLI or another replica) is read by [`AuthCore::sync_directory`], which the
//!   maintenance task runs on the revocation poll's interval.
//!
//! A client not yet known here is read from the store once and kept; an unknown id is not
//! cached, so a client registered on another replica a moment ago is found. A poll that read a
//! client just before this replica changed it may put the older copy back; the next poll,
//! which reads every client changed in the last minute again, corrects it. Resources carry a
//! generation, so a poll never undoes this replica's own write.

use crate::AuthCore;
use crate::denylist::RevokedKind;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::Client;
use crate::resource::{ProtectedResource, Resource};
use crate::scope::ScopeSet;
use crate::scope_hierarchy::ScopeHierarchy;
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Clients kept before the map is emptied and refilled from the store on demand.
const MAX_CLIENTS: usize = 100_000;

/// The longest a change may take to reach another replica's directory: the revocation poll
/// (1 s by default) and a commit landing late. Client revocations also cover tokens minted
/// in this window, by a replica that has not learned of the deletion yet.
pub(crate) const PROPAGATION_SECS: i64 = 2;

/// The in-memory directory of one replica.
#[derive(Default)]
pub(crate) struct Directory {
    clients: RwLock<HashMap<String, Arc<Client>>>,
    /// The registered resources (those from configuration are in the settings), with a
    /// generation that every write moves on.
    resources: RwLock<(u64, Arc<Vec<ProtectedResource>>)>,
}

impl Directory {
    fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn put(&self, client: Arc<Client>) {
        let mut map = self.clients.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS && !map.contains_key(&client.id) {
            map.clear();
        }
        map.insert(client.id.clone(), client);
    }

    pub(crate) fn forget(&self, id: &str) {
        self.clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn resources(&self) -> Arc<Vec<ProtectedResource>> {
        self.resources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn resources_generation(&self) -> u64 {
        self.resources.read().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Takes `resources` as read when the generation was `read_at`, unless something was
    /// written since: a poll that read before this replica's own write must not undo it.
    fn set_resources_read_at(&self, read_at: u64, resources: Vec<ProtectedResource>) {
        let mut r = self.resources.write().unwrap_or_else(|p| p.into_inner());
        if r.0 == read_at {
            *r = (read_at + 1, Arc::new(resources));
        }
    }

    fn set_resources(&self, resources: Vec<ProtectedResource>) {
        let mut r = self.resources.write().unwrap_or_else(|p| p.into_inner());
        *r = (r.0 + 1, Arc::new(resources));
    }
}

impl AuthCore {
    /// A registered client: from memory, or read from the store once. A client whose
    /// deletion this replica has learned of is gone, whatever memory holds.
    ///
    /// An https `client_id` is a Client ID Metadata Document URL: its client comes from the
    /// document (see `metadata_document`), never from the store, and is no client at all
    /// when documents are switched off. A document that names no usable client is an error
    /// that says why.
    pub(crate) async fn client(&self, id: &str) -> AuthResult<Option<Arc<Client>>> {
        if !crate::client_auth::is_client_id(id) {
            return Ok(None);
        }
        if self.denylist.covers(RevokedKind::Client, id) {
            self.directory.forget(id);
            return Ok(None);
        }
        if crate::metadata_document::is_document_url(id) {
            if !self.client_documents_enabled() {
                return Ok(None);
            }
            return self.document_client(id, false).await.map(Some);
        }
        if let Some(c) = self.directory.client(id) {
            return Ok(Some(c));
        }
        let found = self.stores.clients.find_client(id).await?.map(Arc::new);
        if let Some(c) = &found {
            self.directory.put(c.clone());
        }
        Ok(found)
    }

    /// Keeps a client this replica just wrote.
    pub(crate) fn remember_client(&self, client: &Client) {
        self.directory.put(Arc::new(client.clone()));
    }

    /// The protected resources: those from configuration, then the registered ones. From
    /// memory, and without a copy when none come from configuration (the token endpoint asks
    /// on every request).
    pub(crate) fn protected_resources(&self) -> Arc<Vec<ProtectedResource>> {
        let registered = self.directory.resources();
        if self.settings.resources.is_empty() {
            return registered;
        }
        let mut all = self.settings.resources.clone();
        all.extend(registered.iter().cloned());
        Arc::new(all)
    }

    /// The protected resources, for listing.
    pub fn protected_resource_list(&self) -> Vec<ProtectedResource> {
        self.protected_resources().to_vec()
    }

    /// Reads what changed in the store since `since` (Unix seconds): clients changed by the
    /// CLI or another replica, and the registered resources. Returns how many clients were
    /// refreshed.
    pub async fn sync_directory(&self, since: i64) -> AuthResult<usize> {
        let changed = self.stores.clients.clients_updated_since(since).await?;
        let n = changed.len();
        for c in changed {
            self.directory.put(Arc::new(c));
        }
        let read_at = self.directory.resources_generation();
        let resources = self.stores.resources.list_resources().await?;
        self.directory.set_resources_read_at(read_at, resources);
        Ok(n)
    }

    /// Adds a protected resource (an operator's action). The first one is the default; a
    /// new default replaces the old one.
    pub async fn add_resource(
        &self,
        url: &str,
        scopes: Option<&str>,
        default: bool,
    ) -> AuthResult<ProtectedResource> {
        self.add_resource_with_hierarchy(url, scopes, default, &[])
            .await
    }

    /// Adds a protected resource with a scope hierarchy (MCP 2026-07-28): `implies` pairs a
    /// scope with the space-separated scopes it implies. Each must be one of the resource's
    /// `scopes`, or of the server's when it lists none, and the implications must form no
    /// cycle ([`ScopeHierarchy::declare`]).
    pub async fn add_resource_with_hierarchy(
        &self,
        url: &str,
        scopes: Option<&str>,
        default: bool,
        implies: &[(String, String)],
    ) -> AuthResult<ProtectedResource> {
        let resource = Resource::parse(url)?;
        let scopes = match scopes {
            None => None,
            Some(s) => {
                let set = ScopeSet::parse(s)?;
                if let Some(unknown) = self.settings.scopes.first_unsupported(&set) {
                    return Err(AuthError::InvalidScope(Reason::ScopeUnknown(unknown)));
                }
                Some(set)
            }
        };
        let implies = ScopeHierarchy::declare(
            implies.iter().map(|(s, i)| (s.as_str(), i.as_str())),
            scopes
                .as_ref()
                .unwrap_or_else(|| self.settings.scopes.supported()),
        )?;
        let existing = self.stores.resources.list_resources().await?;
        let p = ProtectedResource {
            resource,
            scopes,
            is_default: default || existing.is_empty(),
            implies,
        };
        match self.stores.resources.insert_resource(&p).await {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => {
                return Err(AuthError::Conflict(Reason::ResourceAlreadyRegistered));
            }
            Err(e) => return Err(e.into()),
        }
        self.directory
            .set_resources(self.stores.resources.list_resources().await?);
        Ok(p)
    }

    /// Deletes a protected resource. Its codes and refresh tokens stop working; its access
    /// tokens live out their lifetime. Returns whether it existed.
    pub async fn delete_resource(&self, url: &str) -> AuthResult<bool> {
        let normal = Resource::parse(url)
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|_| url.to_owned());
        let mut existed = self.stores.resources.delete_resource(&normal).await?;
        // An earlier version stored a host-only resource as written, slash included.
        if !existed
            && !normal.ends_with('/')
            && Resource::from_stored(format!("{normal}/")).as_str() == normal
        {
            existed = self
                .stores
                .resources
                .delete_resource(&format!("{normal}/"))
                .await?;
        }
        self.directory
            .set_resources(self.stores.resources.list_resources().await?);
        Ok(existed)
    }

    /// Adds `url` to the resources `owner` serves.
    pub async fn add_resource_owner(&self, url: &str, owner: &str) -> AuthResult<Vec<String>> {
        let client = self
            .stores
            .clients
            .find_client(owner)
            .await?
            .ok_or(AuthError::NotFound(Reason::NoSuchClient))?;
        let mut owned = client.resources.clone();
        owned.push(Resource::parse(url)?.as_str().to_owned());
        self.set_client_resources(owner, &owned).await
    }

    /// Every registered client, from the store.
    pub async fn list_clients(&self) -> AuthResult<Vec<Client>> {
        Ok(self.stores.clients.list_clients().await?)
    }
}
