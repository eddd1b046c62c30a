//! RFC 7592: a self-registered client reads, replaces and deletes its own registration with
//! its registration access token; nobody else can, and no request changes what only an
//! operator sets.

mod common;

use common::*;
use latchkey_core::AuthError;
use latchkey_core::authorize::StartOutcome;
use latchkey_core::clock::Clock;
use latchkey_core::error::Reason;
use latchkey_core::model::{AuthMethod, Client, ClientTier, GrantType};
use latchkey_core::registration::{MetadataFault, Registration};
use latchkey_core::secret;
use latchkey_core::store::ClientStore;
use serde_json::{Value, json};

/// A confidential web app for the code and refresh grants, with informational fields.
fn web_app() -> Value {
    json!({
        "client_name": "Web App",
        "logo_uri": "https://app.example.com/logo.png",
        "contacts": ["ops@app.example.com"],
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

/// A public native app for the code and refresh grants.
fn native_app() -> Value {
    json!({
        "client_name": "Native App",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

async fn register(t: &TestCore, metadata: Value) -> Registration {
    t.core
        .register_client(&metadata.to_string(), None)
        .await
        .expect("registered")
}

fn token(reg: &Registration) -> String {
    reg.registration_access_token
        .clone()
        .expect("a dynamic client has a registration access token")
}

/// `metadata` as an update of `reg`'s client: its `client_id` added.
fn update(reg: &Registration, mut metadata: Value) -> String {
    metadata["client_id"] = json!(reg.client.id);
    metadata.to_string()
}

async fn stored(t: &TestCore, id: &str) -> Option<Client> {
    t.store.find_client(id).await.expect("store")
}

/// The one refusal of a request the token does not authorize.
fn is_unusable<T: std::fmt::Debug>(result: latchkey_core::AuthResult<T>) -> bool {
    matches!(
        result,
        Err(AuthError::InvalidToken(
            Reason::RegistrationAccessTokenUnusable
        ))
    )
}

#[tokio::test]
async fn a_dynamic_registration_carries_a_registration_access_token_stored_only_as_its_hash() {
    let t = core().await;

    let reg = register(&t, web_app()).await;

    let body = reg.to_json();
    let token = token(&reg);
    assert_eq!(body["registration_access_token"], json!(token));
    assert_eq!(
        body["registration_client_uri"],
        json!(format!("{ISSUER}/register/{}", reg.client.id))
    );
    assert!(token.len() >= 43, "256 bits, base64url");
    let row = stored(&t, &reg.client.id).await.expect("stored");
    assert_eq!(row.registration_token_hash, Some(secret::hash(&token)));
    assert_ne!(row.registration_token_hash.as_deref(), Some(token.as_str()));
    let other = register(&t, web_app()).await;
    assert_ne!(
        other.registration_access_token, reg.registration_access_token,
        "each registration gets its own token"
    );
}

#[tokio::test]
async fn operator_clients_get_no_registration_access_token() {
    let t = core().await;
    let by_cli = t
        .core
        .register_operator_client(&web_app().to_string(), &[], &[])
        .await
        .expect("operator client");
    let iat = t
        .core
        .issue_initial_access_token(&[RESOURCE.to_owned()], None, 3600)
        .await
        .expect("initial access token");
    let by_iat = t
        .core
        .register_client(&web_app().to_string(), Some(&iat.token))
        .await
        .expect("registered with the initial access token");

    for (reg, how) in [(by_cli, "the CLI"), (by_iat, "an initial access token")] {
        assert_eq!(reg.client.tier, ClientTier::Operator, "{how}");
        assert_eq!(reg.registration_access_token, None, "{how}");
        assert_eq!(reg.client.registration_token_hash, None, "{how}");
        let body = reg.to_json();
        assert!(body.get("registration_access_token").is_none(), "{how}");
        assert!(body.get("registration_client_uri").is_none(), "{how}");
    }
}

#[tokio::test]
async fn a_read_answers_with_the_registration_response_but_never_the_secret() {
    let t = core_with(|s| s.dynamic_client_secret_ttl = Some(chrono::Duration::days(30))).await;
    let reg = register(&t, web_app()).await;
    let registered = reg.to_json();

    let read = t
        .core
        .read_registration(&reg.client.id, &token(&reg))
        .await
        .expect("read")
        .to_json();

    // RFC 7592 §2.1: only hashes are stored, so the secret cannot be shown again; the
    // client keeps the one it has, and learns when it expires.
    let mut without_secret = registered.clone();
    without_secret
        .as_object_mut()
        .expect("an object")
        .remove("client_secret");
    assert_eq!(read, without_secret);
    assert!(read.get("client_secret").is_none());
    assert_eq!(
        read["client_secret_expires_at"],
        registered["client_secret_expires_at"]
    );
    assert_ne!(read["client_secret_expires_at"], json!(0));
    let row = stored(&t, &reg.client.id).await.expect("stored");
    assert_eq!(row.secret_hash, reg.client.secret_hash, "no new secret");
}

#[tokio::test]
async fn a_replacement_replaces_the_metadata_and_moves_updated_at_for_every_replica() {
    let t = core().await;
    let replica = TestCore::builder()
        .store(t.store.clone())
        .build()
        .await
        .expect("a second core over the same store");
    let reg = register(&t, web_app()).await;
    let secret = reg.client_secret.clone().expect("confidential");
    let before = t.clock.now();
    // The replica knows the client as registered.
    let old = authorization_request(&reg.client.id);
    assert!(matches!(
        replica.core.start_authorization(old.clone()).await,
        Ok(StartOutcome::Prompt(_))
    ));
    advance(&t, 10);

    let new_redirect = "https://app.example.com/new-callback";
    let replaced = t
        .core
        .replace_registration(
            &reg.client.id,
            &token(&reg),
            &update(
                &reg,
                json!({
                    "client_name": "Web App 2",
                    "redirect_uris": [new_redirect],
                    "client_secret": secret,
                }),
            ),
        )
        .await
        .expect("replaced");

    let body = replaced.to_json();
    assert_eq!(body["client_name"], "Web App 2");
    assert_eq!(body["redirect_uris"], json!([new_redirect]));
    assert!(body.get("logo_uri").is_none(), "omitted fields are removed");
    assert!(body.get("contacts").is_none(), "omitted fields are removed");
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code"]),
        "an omitted grant_types takes the RFC 7591 default"
    );
    assert!(body.get("client_secret").is_none(), "the secret is kept");
    assert_eq!(body["registration_access_token"], json!(token(&reg)));
    assert_eq!(
        body["client_id_issued_at"],
        reg.to_json()["client_id_issued_at"]
    );
    let row = stored(&t, &reg.client.id).await.expect("stored");
    assert_eq!(row.name.as_deref(), Some("Web App 2"));
    assert_eq!(row.redirect_uris, [new_redirect]);
    assert_eq!(row.grant_types, [GrantType::AuthorizationCode]);
    assert_eq!(row.updated_at, t.clock.now());
    assert_eq!(row.created_at, reg.client.created_at);
    assert_eq!(row.secret_hash, reg.client.secret_hash);
    let authenticated = t
        .core
        .authenticate_client(&basic_with(&reg.client.id, &secret))
        .await;
    assert!(authenticated.is_ok(), "the secret still works");

    // This replica uses the new redirect URI at once; the other, once it reads the clients
    // changed since its last look.
    let mut new = authorization_request(&reg.client.id);
    new.redirect_uri = Some(new_redirect.into());
    assert!(matches!(
        t.core.start_authorization(new.clone()).await,
        Ok(StartOutcome::Prompt(_))
    ));
    assert!(t.core.start_authorization(old.clone()).await.is_err());
    let refreshed = replica
        .core
        .sync_directory(before.timestamp() + 1)
        .await
        .expect("sync");
    assert_eq!(
        refreshed, 1,
        "updated_at moved past the replica's last look"
    );
    assert!(matches!(
        replica.core.start_authorization(new).await,
        Ok(StartOutcome::Prompt(_))
    ));
    assert!(replica.core.start_authorization(old).await.is_err());
}

fn basic_with(id: &str, secret: &str) -> latchkey_core::client_auth::PresentedCredentials {
    latchkey_core::client_auth::PresentedCredentials {
        basic: Some((id.into(), secret.into())),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_replacement_cannot_change_what_only_an_operator_sets() {
    let t = core().await;
    let reg = register(&t, web_app()).await;

    let replaced = t
        .core
        .replace_registration(
            &reg.client.id,
            &token(&reg),
            &update(
                &reg,
                json!({
                    "redirect_uris": [REDIRECT],
                    "grant_types": ["authorization_code", "client_credentials"],
                    "tier": "operator",
                    "audiences": [RESOURCE],
                    "resources": [RESOURCE],
                    "trusted_redirects": true,
                }),
            ),
        )
        .await
        .expect("replaced, with what a dynamic client may have");

    let row = stored(&t, &reg.client.id).await.expect("stored");
    assert_eq!(row.tier, ClientTier::Dynamic);
    assert!(row.audiences.is_empty());
    assert!(row.resources.is_empty());
    assert!(!row.trusted_redirects);
    assert_eq!(row.grant_types, [GrantType::AuthorizationCode]);
    assert_eq!(
        replaced.to_json()["grant_types"],
        json!(["authorization_code"])
    );
    assert!(replaced.to_json().get("tier").is_none());

    let userless = t
        .core
        .replace_registration(
            &reg.client.id,
            &token(&reg),
            &update(&reg, json!({"grant_types": ["client_credentials"]})),
        )
        .await;
    assert!(matches!(
        userless,
        Err(AuthError::InvalidClientMetadata(Reason::Metadata(
            MetadataFault::UserlessGrantNeedsOperator
        )))
    ));
}

#[tokio::test]
async fn a_replacement_is_checked_as_a_registration_and_a_refused_one_changes_nothing() {
    let t = core().await;
    let reg = register(&t, web_app()).await;
    let other = register(&t, web_app()).await;
    let secret = reg.client_secret.clone().expect("confidential");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut m = web_app();
        m["client_id"] = json!(reg.client.id);
        f(&mut m);
        m.to_string()
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with(&|m| m["redirect_uris"] = json!(["javascript:alert(1)"])),
            "invalid_redirect_uri",
            "a redirect URI a registration may not have",
        ),
        (
            with(&|m| m["redirect_uris"] = json!([])),
            "invalid_redirect_uri",
            "the code grant without a redirect URI",
        ),
        (
            with(&|m| m["jwks_uri"] = json!("https://app.example.com/jwks")),
            "invalid_client_metadata",
            "client keys",
        ),
        (
            with(&|m| m["client_name"] = json!("Web\u{202e}App")),
            "invalid_client_metadata",
            "a bidirectional override in the name",
        ),
        (
            with(&|m| {
                m.as_object_mut().expect("object").remove("client_id");
            }),
            "invalid_client_metadata",
            "no client_id",
        ),
        (
            with(&|m| m["client_id"] = json!(other.client.id)),
            "invalid_client_metadata",
            "another client's id",
        ),
        (
            with(&|m| m["client_id"] = json!(7)),
            "invalid_client_metadata",
            "a client_id that is not a string",
        ),
        (
            with(&|m| m["client_secret"] = json!("a secret of my own choosing")),
            "invalid_client_metadata",
            "a client_secret that is not the current one",
        ),
        (
            with(&|m| m["client_secret"] = json!(other.client_secret)),
            "invalid_client_metadata",
            "another client's secret",
        ),
        (
            with(&|m| m["registration_access_token"] = json!(token(&reg))),
            "invalid_client_metadata",
            "registration_access_token sent back",
        ),
        (
            with(&|m| m["registration_client_uri"] = json!("https://x.example/")),
            "invalid_client_metadata",
            "registration_client_uri sent back",
        ),
        (
            with(&|m| m["client_secret_expires_at"] = json!(0)),
            "invalid_client_metadata",
            "client_secret_expires_at sent back",
        ),
        (
            with(&|m| m["client_id_issued_at"] = json!(0)),
            "invalid_client_metadata",
            "client_id_issued_at sent back",
        ),
        (
            with(&|m| m["token_endpoint_auth_method"] = json!("none")),
            "invalid_client_metadata",
            "a confidential client made public",
        ),
        (
            "[1, 2]".to_owned(),
            "invalid_client_metadata",
            "not a JSON object",
        ),
    ];

    for (body, code, why) in cases {
        advance(&t, 1);
        let got = t
            .core
            .replace_registration(&reg.client.id, &token(&reg), &body)
            .await;
        assert_eq!(err_code(got, why), code, "{why}");
        let row = stored(&t, &reg.client.id).await.expect("stored");
        assert_eq!(row.metadata, reg.client.metadata, "unchanged: {why}");
        assert_eq!(row.updated_at, reg.client.updated_at, "unchanged: {why}");
        assert_eq!(row.secret_hash, reg.client.secret_hash, "unchanged: {why}");
    }
    // The current secret, sent back, is accepted.
    let ok = t
        .core
        .replace_registration(
            &reg.client.id,
            &token(&reg),
            &with(&|m| m["client_secret"] = json!(secret)),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn a_public_client_that_becomes_confidential_gets_a_new_secret_shown_once() {
    let t = core_with(|s| s.dynamic_client_secret_ttl = Some(chrono::Duration::days(30))).await;
    let reg = register(&t, native_app()).await;
    assert_eq!(reg.client_secret, None);
    advance(&t, 60);

    let replaced = t
        .core
        .replace_registration(
            &reg.client.id,
            &token(&reg),
            &update(
                &reg,
                json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
            ),
        )
        .await
        .expect("replaced");

    let secret = replaced.client_secret.clone().expect("a new secret");
    let body = replaced.to_json();
    assert_eq!(body["client_secret"], json!(secret));
    assert_eq!(
        body["client_secret_expires_at"],
        json!((t.clock.now() + chrono::Duration::days(30)).timestamp())
    );
    let row = stored(&t, &reg.client.id).await.expect("stored");
    assert_eq!(row.secret_hash, Some(secret::hash(&secret)));
    assert_eq!(row.auth_method, AuthMethod::ClientSecretPost);
    let read = t
        .core
        .read_registration(&reg.client.id, &token(&reg))
        .await
        .expect("read")
        .to_json();
    assert!(read.get("client_secret").is_none(), "shown once");
}

#[tokio::test]
async fn deleting_a_registration_deletes_the_client_its_grants_and_its_access_tokens() {
    let t = core().await;
    let reg = register(&t, native_app()).await;
    let user = seed_user(&t, EMAIL).await;
    let g = grant(&t, &reg.client.id, user.id);
    let issued = tokens(&t, public(&reg.client.id), &g).await;
    let refresh = issued.refresh_token.clone().expect("a refresh token");
    assert!(is_live(&t, &issued.access_token).await);

    t.core
        .delete_registration(&reg.client.id, &token(&reg))
        .await
        .expect("deleted");

    assert!(stored(&t, &reg.client.id).await.is_none());
    assert!(t.store.grants().is_empty(), "its grants are gone");
    assert!(
        t.store.refresh_tokens().is_empty(),
        "its refresh tokens are gone"
    );
    assert!(
        !is_live(&t, &issued.access_token).await,
        "an access token issued before the delete no longer verifies"
    );
    let refreshed = t
        .core
        .exchange_token(refresh_request(public(&reg.client.id), &refresh))
        .await;
    assert_eq!(
        err_code(refreshed, "refresh after delete"),
        "invalid_client"
    );
    assert!(is_unusable(
        t.core.read_registration(&reg.client.id, &token(&reg)).await
    ));
    assert!(is_unusable(
        t.core
            .delete_registration(&reg.client.id, &token(&reg))
            .await
    ));
}

#[tokio::test]
async fn every_request_the_token_does_not_authorize_gets_the_same_answer_and_changes_nothing() {
    let t = core().await;
    let reg = register(&t, web_app()).await;
    let other = register(&t, web_app()).await;
    // Clients of other tiers, and a dynamic one from before registration access tokens,
    // each given a hash of a token the test knows, so only the tier (or the missing hash)
    // refuses them.
    let known = secret::generate();
    let mut operator = client("operator-app").operator(&[]).0;
    operator.registration_token_hash = Some(secret::hash(&known));
    t.store.insert_client(&operator).await.expect("seeded");
    let mut document = client("https://app.example.com/client.json")
        .tier(ClientTier::MetadataDocument)
        .0;
    document.registration_token_hash = Some(secret::hash(&known));
    t.store.insert_client(&document).await.expect("seeded");
    let legacy = client("legacy-app").seed(&t).await;

    let cases: Vec<(&str, String, &str)> = vec![
        (reg.client.id.as_str(), secret::generate(), "a wrong token"),
        (
            reg.client.id.as_str(),
            token(&other),
            "another client's token",
        ),
        (
            reg.client.id.as_str(),
            format!("{} ", token(&reg)),
            "the token with a space",
        ),
        (
            reg.client.id.as_str(),
            token(&reg)[..42].to_owned(),
            "a truncated token",
        ),
        (
            reg.client.id.as_str(),
            reg.client.secret_hash.clone().expect("hash"),
            "the secret's hash",
        ),
        (
            "no-such-client",
            token(&reg),
            "a client that does not exist",
        ),
        ("", token(&reg), "an empty client id"),
        (
            "bad\u{7}id",
            token(&reg),
            "a client id that is no client id",
        ),
        ("operator-app", known.clone(), "an operator's client"),
        (
            "https://app.example.com/client.json",
            known.clone(),
            "a metadata document's client",
        ),
        (
            legacy.id.as_str(),
            token(&reg),
            "a dynamic client without a registration token",
        ),
    ];
    let body = update(&reg, json!({"redirect_uris": [REDIRECT]}));
    for (id, tok, why) in &cases {
        let read = t.core.read_registration(id, tok).await;
        let replace = t.core.replace_registration(id, tok, &body).await;
        let delete = t.core.delete_registration(id, tok).await;
        for (op, got) in [
            ("read", read.map(|_| ())),
            ("replace", replace.map(|_| ())),
            ("delete", delete),
        ] {
            let description = got.as_ref().err().map(|e| e.description());
            assert!(is_unusable(got), "{op}, {why}");
            assert_eq!(
                description.as_deref(),
                Some("the registration access token is invalid, or does not manage this client"),
                "{op}, {why}: one description for every cause"
            );
        }
    }
    let missing = t.core.read_registration(&reg.client.id, "").await;
    assert!(matches!(
        missing,
        Err(AuthError::InvalidToken(Reason::Missing(_)))
    ));

    for id in [
        &reg.client.id,
        &other.client.id,
        &operator.id,
        &document.id,
        &legacy.id,
    ] {
        let row = stored(&t, id).await.expect("still there");
        assert_eq!(
            row.updated_at.timestamp(),
            row.created_at.timestamp(),
            "unchanged: {id}"
        );
    }
    assert_eq!(
        stored(&t, &reg.client.id).await.expect("stored").metadata,
        reg.client.metadata
    );
}

#[tokio::test]
async fn a_client_made_an_operators_is_no_longer_managed_by_its_token() {
    let t = core().await;
    let reg = register(&t, web_app()).await;

    t.core
        .set_client_resources(&reg.client.id, &[RESOURCE.to_owned()])
        .await
        .expect("the operator assigns a resource");

    assert!(is_unusable(
        t.core.read_registration(&reg.client.id, &token(&reg)).await
    ));
    assert!(is_unusable(
        t.core
            .replace_registration(
                &reg.client.id,
                &token(&reg),
                &update(&reg, json!({"redirect_uris": [REDIRECT]}))
            )
            .await
    ));
    assert!(is_unusable(
        t.core
            .delete_registration(&reg.client.id, &token(&reg))
            .await
    ));
    assert!(stored(&t, &reg.client.id).await.is_some());
}

#[tokio::test]
async fn the_store_writes_a_replacement_only_while_the_tier_and_token_are_as_read() {
    let t = core().await;
    let reg = register(&t, web_app()).await;
    let hash = reg.client.registration_token_hash.clone().expect("hash");
    let mut next = reg.client.clone();
    next.name = Some("Renamed".into());
    next.tier = ClientTier::Dynamic;

    let wrong_token = t
        .store
        .replace_client_metadata(&next, &secret::hash("another token"))
        .await
        .expect("store");
    t.store
        .set_client_tier(&reg.client.id, ClientTier::Operator, t.clock.now())
        .await
        .expect("store");
    let after_tier_change = t
        .store
        .replace_client_metadata(&next, &hash)
        .await
        .expect("store");
    t.store
        .set_client_tier(&reg.client.id, ClientTier::Dynamic, t.clock.now())
        .await
        .expect("store");
    let as_read = t
        .store
        .replace_client_metadata(&next, &hash)
        .await
        .expect("store");
    let mut gone = next.clone();
    gone.id = "no-such-client".into();
    let missing = t
        .store
        .replace_client_metadata(&gone, &hash)
        .await
        .expect("store");

    assert!(!wrong_token, "another token's hash");
    assert!(!after_tier_change, "the tier changed since");
    assert!(as_read, "tier and token as read");
    assert!(!missing, "no such client");
    let row = stored(&t, &reg.client.id).await.expect("stored");
    assert_eq!(row.name.as_deref(), Some("Renamed"));
    assert_eq!(row.registration_token_hash, Some(hash));
}

fn with_assertion(assertion: String) -> latchkey_core::client_auth::PresentedCredentials {
    latchkey_core::client_auth::PresentedCredentials {
        assertion: Some(latchkey_core::client_assertion::ClientAssertion {
            assertion_type: latchkey_core::client_assertion::JWT_BEARER.into(),
            assertion,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_confidential_client_keeps_its_kind_of_credential_and_a_key_client_rotates_its_keys() {
    use latchkey_core::model::ClientKeys;
    use latchkey_core::testing_keys::{TestKey, claims, jwks};
    let t = core().await;
    let (old_key, new_key) = (TestKey::eddsa(), TestKey::es256());
    let mut signing = web_app();
    signing["token_endpoint_auth_method"] = json!("private_key_jwt");
    signing["jwks"] = jwks(&[&old_key]);
    let keyed = register(&t, signing.clone()).await;
    let secreted = register(&t, web_app()).await;
    let public_one = register(&t, native_app()).await;

    // A key client rotates its keys: the new one authenticates, the old one no longer does.
    let mut rotated = signing.clone();
    rotated["jwks"] = jwks(&[&new_key]);
    let replaced = t
        .core
        .replace_registration(&keyed.client.id, &token(&keyed), &update(&keyed, rotated))
        .await
        .expect("keys replaced");
    assert_eq!(replaced.client_secret, None);
    assert!(replaced.to_json().get("client_secret_expires_at").is_none());
    let row = stored(&t, &keyed.client.id).await.expect("stored");
    assert_eq!(row.keys, Some(ClientKeys::Jwks(jwks(&[&new_key]))));
    assert_eq!(row.secret_hash, None);
    let now = t.clock.now().timestamp();
    let by_new = new_key.sign(&claims(&keyed.client.id, ISSUER, now));
    let by_old = old_key.sign(&claims(&keyed.client.id, ISSUER, now));
    assert!(
        t.core
            .authenticate_client(&with_assertion(by_new))
            .await
            .is_ok()
    );
    assert!(
        t.core
            .authenticate_client(&with_assertion(by_old))
            .await
            .is_err()
    );

    // Neither kind of confidential client changes its kind, nor becomes public.
    let mut to_secret = signing.clone();
    to_secret["token_endpoint_auth_method"] = json!("client_secret_basic");
    to_secret.as_object_mut().expect("object").remove("jwks");
    let mut to_public = to_secret.clone();
    to_public["token_endpoint_auth_method"] = json!("none");
    let mut to_keys = web_app();
    to_keys["token_endpoint_auth_method"] = json!("private_key_jwt");
    to_keys["jwks"] = jwks(&[&new_key]);
    for (reg, body, fault, why) in [
        (
            &keyed,
            to_secret.clone(),
            MetadataFault::CredentialKindChange,
            "keys to a secret",
        ),
        (
            &keyed,
            to_public.clone(),
            MetadataFault::ConfidentialToPublic,
            "keys to none",
        ),
        (
            &secreted,
            to_keys.clone(),
            MetadataFault::CredentialKindChange,
            "a secret to keys",
        ),
        (
            &secreted,
            to_public,
            MetadataFault::ConfidentialToPublic,
            "a secret to none",
        ),
    ] {
        let got = t
            .core
            .replace_registration(&reg.client.id, &token(reg), &update(reg, body))
            .await;
        assert!(
            matches!(got, Err(AuthError::InvalidClientMetadata(Reason::Metadata(f))) if f == fault),
            "{why}: {got:?}"
        );
    }
    let row = stored(&t, &secreted.client.id).await.expect("stored");
    assert_eq!(row.secret_hash, secreted.client.secret_hash);
    assert_eq!(row.keys, None);

    // A public client may take keys, and is given no secret.
    let replaced = t
        .core
        .replace_registration(
            &public_one.client.id,
            &token(&public_one),
            &update(&public_one, to_keys),
        )
        .await
        .expect("a public client takes keys");
    assert_eq!(replaced.client_secret, None);
    let row = stored(&t, &public_one.client.id).await.expect("stored");
    assert_eq!(row.auth_method, AuthMethod::PrivateKeyJwt);
    assert_eq!(row.secret_hash, None);
    assert_eq!(row.keys, Some(ClientKeys::Jwks(jwks(&[&new_key]))));
}
