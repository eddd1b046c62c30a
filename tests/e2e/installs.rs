//! Grants per install over the operator's gRPC plane: a user signed in to one client from two
//! devices lists two installs, and revoking one signs only that device out.

use crate::common::*;
use latchkey_proto::v1 as pb;
use serde_json::{Value, json};

#[tokio::test]
async fn an_operator_revokes_one_install_and_the_users_other_device_stays_signed_in() {
    let app = spawn_app().await;
    let web = "https://editor.example/redirect";
    let res = app
        .register(json!({
            "client_name": "Editor",
            "redirect_uris": ["http://127.0.0.1/callback", web],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .await;
    assert_eq!(res.status(), 201);
    let client_id = res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let email = "two-devices@example.com";
    app.add_user(email).await;
    let mut refresh = Vec::new();
    for redirect in ["http://127.0.0.1:50123/callback", web] {
        let p = pkce();
        let q = code_flow(&app, &auth_params(&client_id, redirect, &p), email).await;
        let (status, tokens) = app
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", q["code"].as_str()),
                ("redirect_uri", redirect),
                ("code_verifier", p.verifier.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .await;
        assert_eq!(status, 200, "{tokens}");
        refresh.push(tokens["refresh_token"].as_str().expect("rt").to_owned());
    }

    let mut admin = app.admin_grpc().await;
    let installs = admin
        .list_user_grants(pb::ListUserGrantsRequest {
            email: email.into(),
        })
        .await
        .expect("list")
        .into_inner()
        .installs;
    let mut names: Vec<_> = installs.iter().filter_map(|i| i.install.clone()).collect();
    names.sort();
    assert_eq!(names, ["http://127.0.0.1/callback", web]);

    let revoked = admin
        .revoke_user_grants(pb::RevokeUserGrantsRequest {
            email: email.into(),
            client_id: client_id.clone(),
            install: Some("http://127.0.0.1:7/callback".into()),
        })
        .await
        .expect("revoke")
        .into_inner()
        .revoked;
    assert_eq!(revoked, 1);
    let refresh_with = |rt: &str| {
        [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt.to_owned()),
            ("client_id", client_id.clone()),
        ]
    };
    let (status, body) = app.token(&as_pairs(&refresh_with(&refresh[0]))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = app.token(&as_pairs(&refresh_with(&refresh[1]))).await;
    assert_eq!(status, 200, "the other device is still signed in: {body}");

    let unknown = admin
        .list_user_grants(pb::ListUserGrantsRequest {
            email: "nobody@example.com".into(),
        })
        .await
        .expect_err("an unknown user");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

fn as_pairs<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
