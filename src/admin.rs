//! Administrative commands: users, clients, protected resources and signing keys, run
//! against the configured database through the core's rules.

use latchkey_core::AuthCore;
use serde_json::json;

/// What `client add` was asked for.
pub struct NewClient<'a> {
    pub name: &'a str,
    pub redirect_uris: &'a [String],
    pub grant_types: &'a [String],
    pub public: bool,
    pub scope: Option<&'a str>,
    /// Resources it serves (it may verify and introspect their tokens).
    pub resources: &'a [String],
    /// Resources it may get tokens for without a user (`client_credentials`).
    pub audiences: &'a [String],
}

/// Registers an `operator` client with the rules `/register` applies, and prints its
/// credentials once.
pub async fn client_add(core: &AuthCore, c: NewClient<'_>) -> anyhow::Result<String> {
    let NewClient {
        name,
        redirect_uris,
        grant_types,
        public,
        scope,
        resources,
        audiences,
    } = c;
    let mut meta = json!({
        "client_name": name,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": if public { "none" } else { "client_secret_basic" },
    });
    if !grant_types.is_empty() {
        meta["grant_types"] = json!(grant_types);
        if !grant_types.iter().any(|g| g == "authorization_code") {
            meta["response_types"] = json!([]);
        }
    } else if redirect_uris.is_empty() && !resources.is_empty() {
        // A resource server that only verifies tokens needs no grant.
        meta["grant_types"] = json!([]);
        meta["response_types"] = json!([]);
    }
    if let Some(s) = scope {
        meta["scope"] = json!(s);
    }
    let reg = core
        .register_operator_client(&meta.to_string(), audiences, resources)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code(), e.description()))?;
    let mut out = format!("client_id:     {}\n", reg.client.id);
    if !reg.client.audiences.is_empty() {
        out.push_str(&format!(
            "audiences:     {}\n",
            reg.client.audiences.join(" ")
        ));
    }
    if !reg.client.resources.is_empty() {
        out.push_str(&format!(
            "resources:     {}\n",
            reg.client.resources.join(" ")
        ));
    }
    if let Some(secret) = reg.client_secret {
        out.push_str(&format!(
            "client_secret: {secret}\n(shown once; only its hash is stored)\n"
        ));
    }
    Ok(out)
}

pub async fn client_list(core: &AuthCore) -> anyhow::Result<String> {
    let mut out = String::new();
    for c in core
        .list_clients()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.description()))?
    {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        let dash = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(" ")
            }
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\tredirect_uris={}\tresources={}\taudiences={}\n",
            c.id,
            c.tier.as_str(),
            c.name.as_deref().unwrap_or("-"),
            c.auth_method.as_str(),
            grants.join(","),
            dash(&c.redirect_uris),
            dash(&c.resources),
            dash(&c.audiences),
        ));
    }
    Ok(out)
}

/// Issues an initial access token (RFC 7591 §3): one registration at `/register` that
/// presents it becomes an `operator` client for `audiences`.
pub async fn client_initial_token(
    core: &AuthCore,
    audiences: &[String],
    scope: Option<&str>,
    ttl_secs: i64,
) -> anyhow::Result<String> {
    let issued = core
        .issue_initial_access_token(audiences, scope, ttl_secs)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code(), e.description()))?;
    Ok(format!(
        "initial_access_token: {}\naudiences:            {}\nscope:                {}\nexpires_at:           {}\n(single-use; shown once; only its hash is stored)\n",
        issued.token,
        issued.record.audiences.join(" "),
        issued
            .record
            .scope
            .as_deref()
            .unwrap_or("(what the resources accept)"),
        issued.record.expires_at.to_rfc3339(),
    ))
}

pub async fn client_delete(core: &AuthCore, id: &str) -> anyhow::Result<()> {
    if core
        .delete_client(id)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.description()))?
    {
        Ok(())
    } else {
        anyhow::bail!("no client {id}")
    }
}

pub async fn resource_add(
    core: &AuthCore,
    url: &str,
    scopes: Option<&str>,
    default: bool,
    owners: &[String],
) -> anyhow::Result<String> {
    let p = core
        .add_resource(url, scopes, default)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code(), e.description()))?;
    for owner in owners {
        core.add_resource_owner(p.resource.as_str(), owner)
            .await
            .map_err(|e| anyhow::anyhow!("{owner}: {}", e.description()))?;
    }
    Ok(format!(
        "{}{}",
        p.resource.as_str(),
        if p.is_default { " (default)" } else { "" }
    ))
}

pub async fn resource_list(core: &AuthCore) -> anyhow::Result<String> {
    let mut out = String::new();
    for r in core.protected_resource_list() {
        out.push_str(&format!(
            "{}\t{}\t{}\n",
            r.resource.as_str(),
            r.scopes.as_deref().unwrap_or("*"),
            if r.is_default { "default" } else { "" }
        ));
    }
    Ok(out)
}

pub async fn resource_delete(core: &AuthCore, url: &str) -> anyhow::Result<()> {
    if core
        .delete_resource(url)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.description()))?
    {
        Ok(())
    } else {
        anyhow::bail!("no resource {url}")
    }
}

pub async fn keys_list(core: &AuthCore) -> anyhow::Result<String> {
    let mut out = String::new();
    for k in core
        .key_states()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.description()))?
    {
        out.push_str(&format!(
            "{}\tcreated {}\tactivates {}\t{}\n",
            k.kid,
            k.created_at.to_rfc3339(),
            k.activates_at.to_rfc3339(),
            k.state.as_str()
        ));
    }
    Ok(out)
}

/// Publishes a new key; it starts signing after the publish lead.
pub async fn keys_rotate(core: &AuthCore) -> anyhow::Result<String> {
    core.rotate_keys()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.description()))
}
