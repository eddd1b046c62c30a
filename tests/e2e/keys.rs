//! Signing keys: sealed at rest, and rotated with publish-before-use so that no valid token
//! ever fails verification.

use crate::common::*;
use crate::grpc::as_client;
use latchkey_core::store::KeyStore;
use latchkey_proto::v1 as pb;
use std::time::{Duration, Instant};

fn kid(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn a_rotation_during_a_stream_of_verifications_fails_nothing() {
    let app = spawn_app_with(|s| {
        s.key_publish_secs = 2;
        s.key_reload_secs = 1;
    })
    .await;
    let replica = app.replica().await;
    let rs = app.introspector().await;
    let (svc, svc_secret) = app.operator_client(&[RESOURCE], None).await;
    let mint = || app.client_credentials_token((&svc, &svc_secret));
    let first = mint().await;
    let old_kid = kid(&first);
    let new_kid = app.core().rotate_keys().await.expect("rotate");
    let jwks: serde_json::Value = http()
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        2,
        "published before use"
    );
    assert_eq!(kid(&mint().await), old_kid, "the new key does not sign yet");

    let mut here = app.grpc().await;
    let mut there = replica.grpc().await;
    let (mut checked, mut seen_new) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(6);
    for _ in 0..2000 {
        if Instant::now() > deadline {
            break;
        }
        let token = mint().await;
        seen_new |= kid(&token) == new_kid;
        for (who, c) in [
            ("issuing replica", &mut here),
            ("other replica", &mut there),
        ] {
            let r = c
                .verify_token(as_client(
                    pb::VerifyTokenRequest {
                        token: token.clone(),
                        audience: RESOURCE.into(),
                        required_scopes: vec![],
                    },
                    &rs,
                ))
                .await
                .expect("rpc")
                .into_inner();
            assert!(
                r.valid,
                "{who}: a token failed during rotation: {}",
                r.error_description
            );
        }
        checked += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen_new, "the new key took over after its publish lead");
    assert!(checked > 20, "{checked}");
    let r = here
        .verify_token(as_client(
            pb::VerifyTokenRequest {
                token: first,
                audience: RESOURCE.into(),
                required_scopes: vec![],
            },
            &rs,
        ))
        .await
        .expect("rpc")
        .into_inner();
    assert!(
        r.valid,
        "a token signed before the rotation stays valid until it expires"
    );
}

#[tokio::test]
async fn signing_keys_are_sealed_at_rest_with_the_key_encryption_key() {
    use base64::Engine;
    let kek = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let app = spawn_app_with(|s| s.key_encryption_key = Some(kek.clone().into())).await;
    let stored = app.store().await.list_signing_keys().await.expect("keys");
    assert!(!stored.is_empty());
    for k in &stored {
        assert!(k.private_der.starts_with(b"LKS1"), "sealed");
    }
    // The same database with another key-encryption key refuses to start.
    let mut wrong = app.settings.clone();
    wrong.key_encryption_key = Some(
        base64::engine::general_purpose::STANDARD
            .encode([7u8; 32])
            .into(),
    );
    let err = latchkey::Application::build(&wrong, latchkey::Deps::default())
        .await
        .err()
        .expect("wrong KEK");
    assert!(err.to_string().contains("cannot be decrypted"), "{err}");
}
