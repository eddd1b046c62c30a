//! Of concurrent redemptions of one code or one refresh token, exactly one wins, on
//! whichever database the suite runs on.

use crate::common::*;
use futures::future::join_all;

const RACERS: usize = 8;

#[tokio::test]
async fn concurrent_code_redemptions_have_exactly_one_winner() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let form = f.exchange_form();
    let results = join_all((0..RACERS).map(|_| app.token(&form))).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{results:?}");
    for (s, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, body["error"].as_str()), (400, Some("invalid_grant")));
    }
}

#[tokio::test]
async fn concurrent_refresh_rotations_have_exactly_one_winner() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", f.client_id.as_str()),
    ];
    let results = join_all((0..RACERS).map(|_| app.token(&form))).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{results:?}");
}

#[tokio::test]
async fn concurrent_uses_of_one_client_assertion_have_exactly_one_winner() {
    use latchkey_core::client_assertion::JWT_BEARER;
    use latchkey_core::testing_keys::{TestKey, claims, jwks};
    let app = spawn_app().await;
    let key = TestKey::es256();
    let reg = app
        .core()
        .register_operator_client(
            &serde_json::json!({
                "client_name": "racing signer",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks(&[&key]),
            })
            .to_string(),
            &[RESOURCE.to_owned()],
            &[],
        )
        .await
        .expect("client");
    let now = {
        use latchkey_core::clock::Clock;
        app.clock.now().timestamp()
    };
    let assertion = key.sign(&claims(&reg.client.id, &app.settings.issuer, now));
    let form = [
        ("grant_type", "client_credentials"),
        ("resource", RESOURCE),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let results = join_all((0..RACERS).map(|_| app.token(&form))).await;
    let winners = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(winners, 1, "{results:?}");
    for (s, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*s, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
    }
}
