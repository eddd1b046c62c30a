//! Upgrading a database made before client tiers: every existing client gets a tier, and
//! none keeps a grant without a user unless an operator set it up; and none is deleted for
//! disuse that happened before usage was recorded.

use crate::common::*;
use latchkey_core::store::ClientStore;
use latchkey_migration::{Migrator, MigratorTrait};
use serde_json::Value;

#[tokio::test]
async fn existing_clients_get_a_tier_and_dynamic_ones_lose_grants_without_a_user() {
    let db_url = fresh_database().await;
    let _guard = DbGuard(db_url.clone());
    let db = sea_orm::Database::connect(&db_url).await.expect("connect");
    // The schema as the previous release left it.
    Migrator::up(&db, Some(3)).await.expect("old schema");
    let secret = "an-old-client-secret";
    let hash = latchkey_core::secret::hash(secret);
    let rows = [
        // (id, grant_types, redirect_uris, owns RESOURCE)
        ("old-rs", "client_credentials", "[]", true),
        (
            "old-both",
            "authorization_code refresh_token client_credentials",
            "[\"https://app.example.com/cb\"]",
            false,
        ),
        ("old-cc-only", "client_credentials", "[]", false),
        (
            "old-code",
            "authorization_code",
            "[\"https://app.example.com/cb\"]",
            false,
        ),
    ];
    for (id, grants, redirects, owns) in rows {
        let listed: Vec<&str> = grants.split(' ').collect();
        let metadata = serde_json::json!({ "grant_types": listed }).to_string();
        latchkey_store::execute_unprepared(
            &db,
            &format!(
                "INSERT INTO clients (id, secret_hash, name, redirect_uris, grant_types, auth_method, scope, metadata, created_at) \
                 VALUES ('{id}', '{hash}', '{id}', '{redirects}', '{grants}', 'client_secret_basic', NULL, '{metadata}', 1)"
            ),
        )
        .await
        .expect("old client");
        if owns {
            latchkey_store::execute_unprepared(
                &db,
                &format!(
                    "INSERT INTO client_resources (client_id, resource) VALUES ('{id}', '{RESOURCE}')"
                ),
            )
            .await
            .expect("owned resource");
        }
    }
    db.close().await.ok();

    // The new release starts on it and migrates.
    let app = spawn_app_with(|s| s.database_url = db_url.clone()).await;
    let app = &app;
    let find = |id: &'static str| async move {
        app.store()
            .await
            .find_client(id)
            .await
            .expect("find")
            .expect("client")
    };
    let names = |c: &latchkey_core::model::Client| -> Vec<&'static str> {
        c.grant_types.iter().map(|g| g.as_str()).collect()
    };
    let rs = find("old-rs").await;
    assert_eq!(rs.tier.as_str(), "operator", "it owns a resource");
    assert_eq!(rs.audiences, vec![RESOURCE.to_owned()]);
    assert!(rs.trusted_redirects, "an operator set it up");
    assert_eq!(names(&rs), ["client_credentials"]);
    let both = find("old-both").await;
    assert_eq!(both.tier.as_str(), "dynamic");
    assert!(!both.trusted_redirects);
    assert_eq!(names(&both), ["authorization_code", "refresh_token"]);
    assert_eq!(
        both.metadata["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"]),
        "what RFC 7592 readers see agrees"
    );
    let cc_only = find("old-cc-only").await;
    assert_eq!(cc_only.tier.as_str(), "dynamic");
    assert!(cc_only.grant_types.is_empty());
    let code = find("old-code").await;
    assert_eq!(
        (code.tier.as_str(), names(&code)),
        ("dynamic", vec!["authorization_code"])
    );

    let cc = |id: &'static str| async move {
        app.token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await
    };
    let (s, body) = cc("old-rs").await;
    assert_eq!(
        s, 200,
        "the operator's resource server keeps its grant: {body}"
    );
    for id in ["old-both", "old-cc-only", "old-code"] {
        let (s, body): (u16, Value) = cc(id).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("unauthorized_client")),
            "{id}"
        );
    }

    // Registered long ago, with no usage recorded before the upgrade: their idle period starts
    // at the upgrade, so maintenance does not delete them for disuse now, but 90 days on.
    app.core().purge_expired(false).await.expect("purge");
    for id in ["old-both", "old-cc-only", "old-code"] {
        find(id).await;
    }
    app.advance(91 * 24 * 3600);
    let gone = app.core().purge_expired(false).await.expect("purge");
    assert_eq!(gone.idle_clients, 3, "{gone:?}");
    find("old-rs").await;
}
