//! A user's grants, per client and install. An install is the redirect URI the grant was made
//! for, with a loopback port left out (`redirect_uri::install_key`): the same app on the same
//! machine is one install across runs, while the user's other devices (another redirect URI)
//! are others. Revoking one install's grants leaves the others signed in.

use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::Grant;
use crate::redirect_uri::install_key;
use crate::users::normalize_email;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The live grants of one user to one client from one install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub client_id: String,
    pub client_name: Option<String>,
    /// `None` for grants made before installs were recorded.
    pub install: Option<String>,
    /// The resources granted, each once.
    pub resources: Vec<String>,
    /// Every scope granted, space-separated.
    pub scope: String,
    pub grants: u64,
    pub last_granted_at: DateTime<Utc>,
}

impl AuthCore {
    /// The user's live grants, by client and install, most recent first.
    pub async fn user_installs(&self, email: &str) -> AuthResult<Vec<Install>> {
        let user = self.user_by_email(email).await?;
        let grants = self.stores.grants.live_grants_of_user(user.id).await?;
        let mut by_install: BTreeMap<(String, Option<String>), Vec<Grant>> = BTreeMap::new();
        for g in grants {
            by_install
                .entry((g.client_id.clone(), g.install.clone()))
                .or_default()
                .push(g);
        }
        let mut out = Vec::with_capacity(by_install.len());
        for ((client_id, install), grants) in by_install {
            // The stored row, never `self.client`: that would fetch a document client's
            // metadata document over the network just to print its name.
            let client_name = self
                .stores
                .clients
                .find_client(&client_id)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.name);
            let mut resources: Vec<String> = grants.iter().map(|g| g.resource.clone()).collect();
            resources.sort();
            resources.dedup();
            let scope: std::collections::BTreeSet<&str> =
                grants.iter().flat_map(|g| g.scope.iter()).collect();
            out.push(Install {
                client_id,
                client_name,
                install,
                resources,
                scope: scope.into_iter().collect::<Vec<_>>().join(" "),
                grants: grants.len() as u64,
                last_granted_at: grants
                    .iter()
                    .map(|g| g.created_at)
                    .max()
                    .unwrap_or_default(),
            });
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.last_granted_at));
        Ok(out)
    }

    /// Revokes the user's live grants to `client_id`: only those of `install` (a redirect
    /// URI, judged as [`install_key`] judges it) when given, else every one. Their refresh
    /// tokens stop at once, their access tokens on every replica within the revocation
    /// fan-out. Returns how many grants were revoked.
    pub async fn revoke_user_grants(
        &self,
        email: &str,
        client_id: &str,
        install: Option<&str>,
    ) -> AuthResult<u64> {
        let user = self.user_by_email(email).await?;
        let install = install.map(install_key);
        let mut revoked = 0;
        for g in self.stores.grants.live_grants_of_user(user.id).await? {
            let this_install = install.is_none() || g.install == install;
            if g.client_id == client_id && this_install {
                self.revoke_grant(g.id, client_id).await?;
                revoked += 1;
            }
        }
        crate::audit::Audit {
            event: "grants_revoked",
            outcome: "success",
            client_id,
            user_id: &user.id.to_string(),
            detail: if install.is_some() {
                "install"
            } else {
                "client"
            },
            ..Default::default()
        }
        .emit();
        Ok(revoked)
    }

    async fn user_by_email(&self, email: &str) -> AuthResult<crate::model::User> {
        let email = normalize_email(email)?;
        self.stores
            .users
            .find_user_by_email(&email)
            .await?
            .ok_or(AuthError::NotFound(Reason::NoSuchUser))
    }
}
