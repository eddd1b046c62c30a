//! The operators' service (`AdminService`): the same core methods the `latchkey` commands
//! call, for a deployment the operator cannot exec into. Its guard admits only the holder of
//! the admin secret.

use crate::service::{Rpc, user};
use crate::status::to_status;
use latchkey_core::AuthCore;
use latchkey_core::model::Client;
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::admin_service_server::AdminService;
use serde_json::json;
use std::sync::Arc;
use tonic::{Request, Response};

pub struct AdminApi {
    core: Arc<AuthCore>,
}

impl AdminApi {
    pub fn new(core: Arc<AuthCore>) -> Self {
        Self { core }
    }
}

fn client(c: Client) -> pb::Client {
    pb::Client {
        tier: c.tier.as_str().to_owned(),
        token_endpoint_auth_method: c.auth_method.as_str().to_owned(),
        grant_types: c
            .grant_types
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        created_at: c.created_at.timestamp(),
        id: c.id,
        name: c.name,
        redirect_uris: c.redirect_uris,
        resources: c.resources,
        audiences: c.audiences,
        scope: c.scope.map(|s| s.to_string()),
    }
}

fn resource(p: latchkey_core::resource::ProtectedResource) -> pb::ProtectedResource {
    pb::ProtectedResource {
        url: p.resource.as_str().to_owned(),
        scopes: p.scopes.map(|s| s.to_string()),
        is_default: p.is_default,
        implies: p
            .implies
            .declared()
            .iter()
            .map(|(scope, implied)| pb::ScopeImplication {
                scope: scope.clone(),
                implied: implied.iter().cloned().collect::<Vec<_>>().join(" "),
            })
            .collect(),
    }
}

/// RFC 7591 metadata for an operator's client, from what the command line asks for.
pub fn client_metadata(r: &pb::AddClientRequest) -> serde_json::Value {
    let mut meta = json!({
        "client_name": r.name,
        "redirect_uris": r.redirect_uris,
        "token_endpoint_auth_method": if r.public { "none" } else { "client_secret_basic" },
    });
    // Keys make it a private_key_jwt client; the core refuses keys beside `public`.
    if r.jwks_uri.is_some() || r.jwks.is_some() {
        if !r.public {
            meta["token_endpoint_auth_method"] = json!("private_key_jwt");
        }
        if let Some(uri) = &r.jwks_uri {
            meta["jwks_uri"] = json!(uri);
        }
        if let Some(set) = &r.jwks {
            // Text that is not JSON (a PEM file given by mistake, say) is sent as a value
            // that is no JWK Set, which the core refuses as such. Sent as text, its line
            // breaks would be refused first, as control characters in the metadata.
            meta["jwks"] = serde_json::from_str(set).unwrap_or(json!(false));
        }
    }
    if !r.grant_types.is_empty() {
        meta["grant_types"] = json!(r.grant_types);
        if !r.grant_types.iter().any(|g| g == "authorization_code") {
            meta["response_types"] = json!([]);
        }
    } else if r.redirect_uris.is_empty() && !r.resources.is_empty() {
        // A resource server that only verifies tokens needs no grant.
        meta["grant_types"] = json!([]);
        meta["response_types"] = json!([]);
    }
    if let Some(s) = &r.scope {
        meta["scope"] = json!(s);
    }
    meta
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Rpc<pb::User> {
        let r = req.into_inner();
        let u = self
            .core
            .create_user(&r.email, &r.password)
            .await
            .map_err(to_status)?;
        Ok(Response::new(user(u)))
    }

    async fn list_users(&self, _: Request<pb::ListUsersRequest>) -> Rpc<pb::ListUsersResponse> {
        let users = self.core.list_users().await.map_err(to_status)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(user).collect(),
        }))
    }

    async fn disable_user(&self, req: Request<pb::DisableUserRequest>) -> Rpc<pb::User> {
        let u = self
            .core
            .disable_user(&req.into_inner().email)
            .await
            .map_err(to_status)?;
        Ok(Response::new(user(u)))
    }

    async fn list_user_grants(
        &self,
        req: Request<pb::ListUserGrantsRequest>,
    ) -> Rpc<pb::ListUserGrantsResponse> {
        let installs = self
            .core
            .user_installs(&req.into_inner().email)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListUserGrantsResponse {
            installs: installs
                .into_iter()
                .map(|i| pb::UserInstall {
                    client_id: i.client_id,
                    client_name: i.client_name,
                    install: i.install,
                    resources: i.resources,
                    scope: i.scope,
                    grants: i.grants,
                    last_granted_at: i.last_granted_at.timestamp(),
                })
                .collect(),
        }))
    }

    async fn revoke_user_grants(
        &self,
        req: Request<pb::RevokeUserGrantsRequest>,
    ) -> Rpc<pb::RevokeUserGrantsResponse> {
        let r = req.into_inner();
        let revoked = self
            .core
            .revoke_user_grants(&r.email, &r.client_id, r.install.as_deref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeUserGrantsResponse { revoked }))
    }

    async fn add_client(&self, req: Request<pb::AddClientRequest>) -> Rpc<pb::AddClientResponse> {
        let r = req.into_inner();
        let reg = self
            .core
            .register_operator_client(&client_metadata(&r).to_string(), &r.audiences, &r.resources)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AddClientResponse {
            client: Some(client(reg.client)),
            client_secret: reg.client_secret,
        }))
    }

    async fn list_clients(
        &self,
        _: Request<pb::ListClientsRequest>,
    ) -> Rpc<pb::ListClientsResponse> {
        let clients = self.core.list_clients().await.map_err(to_status)?;
        Ok(Response::new(pb::ListClientsResponse {
            clients: clients.into_iter().map(client).collect(),
        }))
    }

    async fn delete_client(
        &self,
        req: Request<pb::DeleteClientRequest>,
    ) -> Rpc<pb::DeleteClientResponse> {
        let deleted = self
            .core
            .delete_client(&req.into_inner().client_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteClientResponse { deleted }))
    }

    async fn issue_initial_access_token(
        &self,
        req: Request<pb::IssueInitialAccessTokenRequest>,
    ) -> Rpc<pb::IssueInitialAccessTokenResponse> {
        let r = req.into_inner();
        let issued = self
            .core
            .issue_initial_access_token(&r.audiences, r.scope.as_deref(), r.ttl_secs)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::IssueInitialAccessTokenResponse {
            initial_access_token: issued.token,
            audiences: issued.record.audiences,
            scope: issued.record.scope.map(|s| s.to_string()),
            expires_at: issued.record.expires_at.timestamp(),
        }))
    }

    async fn add_resource(
        &self,
        req: Request<pb::AddResourceRequest>,
    ) -> Rpc<pb::ProtectedResource> {
        let r = req.into_inner();
        let implies: Vec<(String, String)> = r
            .implies
            .into_iter()
            .map(|i| (i.scope, i.implied))
            .collect();
        let p = self
            .core
            .add_resource_with_hierarchy(&r.url, r.scopes.as_deref(), r.default, &implies)
            .await
            .map_err(to_status)?;
        for owner in &r.owners {
            self.core
                .add_resource_owner(p.resource.as_str(), owner)
                .await
                .map_err(to_status)?;
        }
        Ok(Response::new(resource(p)))
    }

    async fn list_resources(
        &self,
        _: Request<pb::ListResourcesRequest>,
    ) -> Rpc<pb::ListResourcesResponse> {
        Ok(Response::new(pb::ListResourcesResponse {
            resources: self
                .core
                .protected_resource_list()
                .into_iter()
                .map(resource)
                .collect(),
        }))
    }

    async fn delete_resource(
        &self,
        req: Request<pb::DeleteResourceRequest>,
    ) -> Rpc<pb::DeleteResourceResponse> {
        let deleted = self
            .core
            .delete_resource(&req.into_inner().url)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DeleteResourceResponse { deleted }))
    }

    async fn list_keys(&self, _: Request<pb::ListKeysRequest>) -> Rpc<pb::ListKeysResponse> {
        let keys = self.core.key_states().await.map_err(to_status)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys
                .into_iter()
                .map(|k| pb::SigningKey {
                    state: k.state.as_str().to_owned(),
                    kid: k.kid,
                    created_at: k.created_at.timestamp(),
                    activates_at: k.activates_at.timestamp(),
                })
                .collect(),
        }))
    }

    async fn get_stats(&self, _: Request<pb::GetStatsRequest>) -> Rpc<pb::Stats> {
        let s = self.core.stats().await.map_err(to_status)?;
        Ok(Response::new(pb::Stats {
            clients: s
                .clients_by_tier
                .into_iter()
                .map(|(tier, count)| pb::ClientCount { tier, count })
                .collect(),
            users: s.users,
            grants: s.grants,
            revoked_grants: s.revoked_grants,
            live_refresh_families: s.live_refresh_families,
            tokens_issued: s.tokens_issued,
            last_use: s.last_use,
        }))
    }

    async fn purge_expired(
        &self,
        req: Request<pb::PurgeExpiredRequest>,
    ) -> Rpc<pb::PurgeExpiredResponse> {
        let dry_run = req.into_inner().dry_run;
        let e = self.core.purge_expired(dry_run).await.map_err(to_status)?;
        Ok(Response::new(pb::PurgeExpiredResponse {
            codes: e.codes,
            refresh_tokens: e.refresh_tokens,
            initial_access_tokens: e.initial_access_tokens,
            revocation_events: e.revocation_events,
            dry_run,
            grants: e.grants,
            sessions: e.sessions,
            idle_clients: e.idle_clients,
            client_assertions: e.client_assertions,
            client_documents: e.client_documents,
        }))
    }

    async fn rotate_keys(&self, _: Request<pb::RotateKeysRequest>) -> Rpc<pb::RotateKeysResponse> {
        let kid = self.core.rotate_keys().await.map_err(to_status)?;
        Ok(Response::new(pb::RotateKeysResponse { kid }))
    }
}
