//! The operator's commands (`latchkey user|client|resource|keys`), spoken as AdminService
//! calls: in process against the configured database, or over the network against a
//! deployment (`--remote URL` with the admin secret), for operators who cannot exec into a
//! pod. Either way the same core methods run, behind the same service; this module only turns
//! answers into the lines the commands print.

use latchkey_proto::v1 as pb;
use latchkey_proto::v1::admin_service_client::AdminServiceClient;
use latchkey_proto::v1::admin_service_server::AdminServiceServer;
use std::sync::Arc;
use tonic_types::StatusExt;

type Transport = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    tonic::codegen::StdError,
>;

/// The AdminService, wherever it runs.
pub type Admin = AdminServiceClient<Transport>;

/// The AdminService of this process, over the configured database.
pub fn in_process(core: Arc<latchkey_core::AuthCore>) -> Admin {
    use tower::ServiceExt;
    let service = AdminServiceServer::new(latchkey_auth::admin_api::AdminApi::new(core));
    let service = tower::service_fn(move |req: http::Request<tonic::body::Body>| {
        let mut service = service.clone();
        async move { tower::Service::call(&mut service, req).await }
    })
    .map_err(|e: std::convert::Infallible| -> tonic::codegen::StdError { match e {} });
    AdminServiceClient::new(Transport::new(service))
}

/// The AdminService of a deployment at `url`, presenting `admin_secret`, over TLS when `tls`
/// is given (an `https://` URL).
pub async fn remote(
    url: &str,
    admin_secret: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> anyhow::Result<Admin> {
    use tower::ServiceExt;
    let bearer: http::HeaderValue = format!("Bearer {admin_secret}")
        .parse()
        .map_err(|_| anyhow::anyhow!("the admin secret must be printable ASCII"))?;
    let channel = crate::grpc_transport::endpoint(url, tls)
        .map_err(|e| anyhow::anyhow!("--remote: {e}"))?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
    let with_credential = tower::ServiceBuilder::new()
        .map_request(move |mut req: http::Request<tonic::body::Body>| {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, bearer.clone());
            req
        })
        .service(channel)
        .map_err(Into::into);
    Ok(AdminServiceClient::new(Transport::new(with_credential)))
}

/// The operator's view of a refused call: the OAuth code and its description.
fn failed(status: tonic::Status) -> anyhow::Error {
    match status.get_details_error_info() {
        Some(info) => anyhow::anyhow!(
            "{}: {}",
            info.reason,
            info.metadata
                .get("error_description")
                .cloned()
                .unwrap_or_default()
        ),
        None => anyhow::anyhow!("{:?}: {}", status.code(), status.message()),
    }
}

fn dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(" ")
    }
}

fn time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

pub async fn user_add(admin: &mut Admin, email: &str, password: &str) -> anyhow::Result<String> {
    let u = admin
        .create_user(pb::CreateUserRequest {
            email: email.to_owned(),
            password: password.to_owned(),
        })
        .await
        .map_err(failed)?
        .into_inner();
    Ok(format!("added user {} ({})", u.email, u.id))
}

pub async fn user_list(admin: &mut Admin) -> anyhow::Result<String> {
    let users = admin
        .list_users(pb::ListUsersRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .users;
    Ok(users
        .into_iter()
        .map(|u| {
            format!(
                "{}\t{}\t{}",
                u.id,
                u.email,
                if u.disabled { "disabled" } else { "active" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

pub async fn user_disable(admin: &mut Admin, email: &str) -> anyhow::Result<String> {
    let u = admin
        .disable_user(pb::DisableUserRequest {
            email: email.to_owned(),
        })
        .await
        .map_err(failed)?
        .into_inner();
    Ok(format!("disabled user {}", u.email))
}

/// One line per client and install: client, install, grants, scope, resources, last grant.
pub async fn user_grants(admin: &mut Admin, email: &str) -> anyhow::Result<String> {
    let installs = admin
        .list_user_grants(pb::ListUserGrantsRequest {
            email: email.to_owned(),
        })
        .await
        .map_err(failed)?
        .into_inner()
        .installs;
    if installs.is_empty() {
        return Ok(format!("no live grants for {email}\n"));
    }
    let mut out = String::new();
    for i in installs {
        let last = chrono::DateTime::from_timestamp(i.last_granted_at, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        out.push_str(&format!(
            "{}	{}	install={}	grants={}	scope={}	resources={}	last={}
",
            i.client_id,
            i.client_name.unwrap_or_default(),
            i.install.as_deref().unwrap_or("-"),
            i.grants,
            i.scope,
            i.resources.join(","),
            last
        ));
    }
    Ok(out)
}

pub async fn user_revoke(
    admin: &mut Admin,
    email: &str,
    client_id: &str,
    install: Option<String>,
) -> anyhow::Result<String> {
    let by_install = install.is_some();
    let r = admin
        .revoke_user_grants(pb::RevokeUserGrantsRequest {
            email: email.to_owned(),
            client_id: client_id.to_owned(),
            install,
        })
        .await
        .map_err(failed)?
        .into_inner();
    if r.revoked == 0 {
        // Nothing matched: say so, so that a mistyped install or client is not taken for a
        // signed-out device.
        let what = if by_install {
            "client and install"
        } else {
            "client"
        };
        return Ok(format!(
            "revoked 0 grants: {email} has no live grant to that {what} \
             (`latchkey user grants {email}` lists them)"
        ));
    }
    Ok(format!("revoked {} grants", r.revoked))
}

/// Registers an `operator` client with the rules `/register` applies, and prints its
/// credentials once. Scripts read the `client_id:` and `client_secret:` lines.
pub async fn client_add(admin: &mut Admin, req: pb::AddClientRequest) -> anyhow::Result<String> {
    let added = admin.add_client(req).await.map_err(failed)?.into_inner();
    let client = added.client.unwrap_or_default();
    let mut out = format!("client_id:     {}\n", client.id);
    if !client.audiences.is_empty() {
        out.push_str(&format!("audiences:     {}\n", client.audiences.join(" ")));
    }
    if !client.resources.is_empty() {
        out.push_str(&format!("resources:     {}\n", client.resources.join(" ")));
    }
    if let Some(secret) = added.client_secret {
        out.push_str(&format!(
            "client_secret: {secret}\n(shown once; only its hash is stored)\n"
        ));
    }
    if client.token_endpoint_auth_method == "private_key_jwt" {
        // No secret to print: say what the client sends instead (RFC 7523 §2.2, §3).
        out.push_str(
            "auth:          private_key_jwt: no secret; at /token, /revoke and /introspect the \
             client sends client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
             and a client_assertion JWT signed with its key (iss and sub: the client_id; aud: this \
             server's issuer; exp at most 5 minutes ahead; a new jti each time)\n",
        );
    }
    Ok(out)
}

pub async fn client_list(admin: &mut Admin) -> anyhow::Result<String> {
    let clients = admin
        .list_clients(pb::ListClientsRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .clients;
    let mut out = String::new();
    for c in clients {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\tredirect_uris={}\tresources={}\taudiences={}\n",
            c.id,
            c.tier,
            c.name.as_deref().unwrap_or("-"),
            c.token_endpoint_auth_method,
            c.grant_types.join(","),
            dash(&c.redirect_uris),
            dash(&c.resources),
            dash(&c.audiences),
        ));
    }
    Ok(out)
}

pub async fn client_delete(admin: &mut Admin, id: &str) -> anyhow::Result<String> {
    let deleted = admin
        .delete_client(pb::DeleteClientRequest {
            client_id: id.to_owned(),
        })
        .await
        .map_err(failed)?
        .into_inner()
        .deleted;
    if deleted {
        Ok(format!("deleted client {id}"))
    } else {
        anyhow::bail!("no client {id}")
    }
}

/// Issues an initial access token (RFC 7591 §3): one registration at `/register` that
/// presents it becomes an `operator` client for `audiences`.
pub async fn client_initial_token(
    admin: &mut Admin,
    audiences: &[String],
    scope: Option<&str>,
    ttl_secs: i64,
) -> anyhow::Result<String> {
    let issued = admin
        .issue_initial_access_token(pb::IssueInitialAccessTokenRequest {
            audiences: audiences.to_vec(),
            scope: scope.map(str::to_owned),
            ttl_secs,
        })
        .await
        .map_err(failed)?
        .into_inner();
    Ok(format!(
        "initial_access_token: {}\naudiences:            {}\nscope:                {}\nexpires_at:           {}\n(single-use; shown once; only its hash is stored)\n",
        issued.initial_access_token,
        issued.audiences.join(" "),
        issued
            .scope
            .as_deref()
            .unwrap_or("(what the resources accept)"),
        time(issued.expires_at),
    ))
}

/// `--implies SCOPE=IMPLIED`, split at the first `=`; the AuthService judges the scopes.
fn implication(arg: &str) -> anyhow::Result<pb::ScopeImplication> {
    match arg.split_once('=') {
        Some((scope, implied)) => Ok(pb::ScopeImplication {
            scope: scope.trim().to_owned(),
            implied: implied.trim().to_owned(),
        }),
        None => anyhow::bail!("--implies {arg:?}: expected SCOPE=IMPLIED (files:write=files:read)"),
    }
}

/// A scope hierarchy as `--implies` takes it: `scope=implied …`, separated by `; `.
fn implications(implies: &[pb::ScopeImplication]) -> String {
    implies
        .iter()
        .map(|i| format!("{}={}", i.scope, i.implied))
        .collect::<Vec<_>>()
        .join("; ")
}

pub async fn resource_add(
    admin: &mut Admin,
    url: &str,
    scopes: Option<&str>,
    default: bool,
    owners: &[String],
    implies: &[String],
) -> anyhow::Result<String> {
    let implies = implies
        .iter()
        .map(|a| implication(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let p = admin
        .add_resource(pb::AddResourceRequest {
            url: url.to_owned(),
            scopes: scopes.map(str::to_owned),
            default,
            owners: owners.to_vec(),
            implies,
        })
        .await
        .map_err(failed)?
        .into_inner();
    let mut out = format!(
        "added {}{}",
        p.url,
        if p.is_default { " (default)" } else { "" }
    );
    if !p.implies.is_empty() {
        out.push_str(&format!("\nimplies: {}", implications(&p.implies)));
    }
    Ok(out)
}

pub async fn resource_list(admin: &mut Admin) -> anyhow::Result<String> {
    let resources = admin
        .list_resources(pb::ListResourcesRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .resources;
    Ok(resources
        .into_iter()
        .map(|r| {
            let mut line = format!(
                "{}\t{}\t{}",
                r.url,
                r.scopes.as_deref().unwrap_or("*"),
                if r.is_default { "default" } else { "" }
            );
            if !r.implies.is_empty() {
                line.push_str(&format!("\timplies: {}", implications(&r.implies)));
            }
            line.push('\n');
            line
        })
        .collect())
}

pub async fn resource_delete(admin: &mut Admin, url: &str) -> anyhow::Result<String> {
    let deleted = admin
        .delete_resource(pb::DeleteResourceRequest {
            url: url.to_owned(),
        })
        .await
        .map_err(failed)?
        .into_inner()
        .deleted;
    if deleted {
        Ok(format!("deleted {url}"))
    } else {
        anyhow::bail!("no resource {url}")
    }
}

pub async fn keys_list(admin: &mut Admin) -> anyhow::Result<String> {
    let keys = admin
        .list_keys(pb::ListKeysRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .keys;
    Ok(keys
        .into_iter()
        .map(|k| {
            format!(
                "{}\tcreated {}\tactivates {}\t{}\n",
                k.kid,
                time(k.created_at),
                time(k.activates_at),
                k.state
            )
        })
        .collect())
}

/// Publishes a new key; it starts signing after the publish lead.
pub async fn keys_rotate(admin: &mut Admin) -> anyhow::Result<String> {
    let kid = admin
        .rotate_keys(pb::RotateKeysRequest {})
        .await
        .map_err(failed)?
        .into_inner()
        .kid;
    Ok(format!(
        "published key {kid} (it signs after the publish lead; running servers pick it up on their next key reload)"
    ))
}

pub async fn stats(admin: &mut Admin) -> anyhow::Result<String> {
    let s = admin
        .get_stats(pb::GetStatsRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    let mut out = String::new();
    for c in &s.clients {
        out.push_str(&format!("clients.{}\t{}\n", c.tier, c.count));
    }
    out.push_str(&format!("users\t{}\n", s.users));
    out.push_str(&format!("grants\t{}\n", s.grants));
    out.push_str(&format!("grants.revoked\t{}\n", s.revoked_grants));
    out.push_str(&format!(
        "refresh_families.live\t{}\n",
        s.live_refresh_families
    ));
    out.push_str(&format!("tokens_issued\t{}\n", s.tokens_issued));
    out.push_str(&format!(
        "last_use\t{}\n",
        s.last_use.map(time).unwrap_or_else(|| "-".into())
    ));
    Ok(out)
}

pub async fn purge(admin: &mut Admin, dry_run: bool) -> anyhow::Result<String> {
    let p = admin
        .purge_expired(pb::PurgeExpiredRequest { dry_run })
        .await
        .map_err(failed)?
        .into_inner();
    let verb = if p.dry_run { "would delete" } else { "deleted" };
    Ok(format!(
        "{verb}: {} authorization codes, {} refresh tokens, {} grants, {} initial access tokens, {} revocation events, {} authorization sessions, {} idle self-registered clients, {} used client assertions, {} fetched client documents",
        p.codes,
        p.refresh_tokens,
        p.grants,
        p.initial_access_tokens,
        p.revocation_events,
        p.sessions,
        p.idle_clients,
        p.client_assertions,
        p.client_documents
    ))
}

/// A consistent copy of the database while it is in use: SQLite's online copy
/// (`VACUUM INTO`), or, for PostgreSQL, the `pg_dump` command to run.
pub async fn backup(database_url: &str, dest: &std::path::Path) -> anyhow::Result<String> {
    if database_url.starts_with("postgres") {
        return Ok(format!(
            "PostgreSQL is backed up with its own tools; for example:\n  pg_dump --format=custom --file={} \"$LATCHKEY_DATABASE_URL\"",
            dest.display()
        ));
    }
    if dest.exists() {
        anyhow::bail!("{} exists; choose a new file", dest.display());
    }
    let path = dest
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the backup path must be UTF-8"))?;
    let store = latchkey_store::SeaStore::connect(database_url).await?;
    // A string literal in SQL: single quotes doubled.
    let literal = path.replace('\'', "''");
    latchkey_store::execute_unprepared(store.connection(), &format!("VACUUM INTO '{literal}'"))
        .await?;
    Ok(format!("backed up to {}", dest.display()))
}
