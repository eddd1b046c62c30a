use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn code_exchange_rejections() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let other = pkce();
    let other_client = app.public_client("http://127.0.0.1:7777/callback").await;
    let cases: Vec<(Form, u16, &str, &str)> = vec![
        (
            replace(&f.exchange_form(), "code_verifier", &other.verifier),
            400,
            "invalid_grant",
            "wrong verifier",
        ),
        (
            replace(&f.exchange_form(), "code_verifier", "short"),
            400,
            "invalid_grant",
            "malformed verifier",
        ),
        (
            drop_param(&f.exchange_form(), "code_verifier"),
            400,
            "invalid_request",
            "missing verifier",
        ),
        (
            replace(
                &f.exchange_form(),
                "redirect_uri",
                "http://127.0.0.1:7777/other",
            ),
            400,
            "invalid_grant",
            "other redirect_uri",
        ),
        (
            drop_param(&f.exchange_form(), "redirect_uri"),
            400,
            "invalid_grant",
            "missing redirect_uri",
        ),
        (
            replace(&f.exchange_form(), "code", "not-a-code"),
            400,
            "invalid_grant",
            "unknown code",
        ),
        (
            drop_param(&f.exchange_form(), "code"),
            400,
            "invalid_request",
            "missing code",
        ),
        (
            replace(&f.exchange_form(), "client_id", &other_client),
            400,
            "invalid_grant",
            "code of another client",
        ),
        (
            replace(&f.exchange_form(), "client_id", "nobody"),
            401,
            "invalid_client",
            "unknown client",
        ),
        (
            {
                let mut v = f.exchange_form();
                v.push(("resource", "https://other.example.com/mcp"));
                v
            },
            400,
            "invalid_target",
            "another resource",
        ),
    ];
    for (form, status, code, why) in cases {
        let (s, body) = app.token(&form).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (status, Some(code)),
            "{why}: {body}"
        );
    }
    // None of these consumed the code.
    f.exchange(&app).await;
}

fn replace<'a>(form: &[(&'a str, &'a str)], key: &str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    form.iter()
        .map(|(k, v)| if *k == key { (*k, value) } else { (*k, *v) })
        .collect()
}

fn drop_param<'a>(form: &[(&'a str, &'a str)], key: &str) -> Vec<(&'a str, &'a str)> {
    form.iter().filter(|(k, _)| *k != key).copied().collect()
}

#[tokio::test]
async fn code_replay_revokes_tokens_from_the_first_exchange() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let f = flow(&app).await;
    let first = f.exchange(&app).await;
    let at = first["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&rs, at).await["active"], true);
    let (status, body) = app.token(&f.exchange_form()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        app.introspect(&rs, at).await["active"],
        false,
        "access token from the code is revoked"
    );
    let rt = first["refresh_token"].as_str().expect("rt");
    let (status, _) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &f.client_id),
        ])
        .await;
    assert_eq!(status, 400, "refresh token from the code is revoked");
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let app = spawn_app_with(|s| s.code_ttl_secs = 1).await;
    let f = flow(&app).await;
    app.advance(2);
    let (status, body) = app.token(&f.exchange_form()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let f = flow(&app).await;
    let t0 = f.exchange(&app).await;
    let rt0 = t0["refresh_token"].as_str().expect("rt0");
    let refresh = |rt: String| {
        let app = &app;
        let cid = f.client_id.clone();
        async move {
            app.token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", &cid),
            ])
            .await
        }
    };
    let (s1, t1) = refresh(rt0.to_owned()).await;
    assert_eq!(s1, 200);
    let rt1 = t1["refresh_token"].as_str().expect("rt1").to_owned();
    let at1 = t1["access_token"].as_str().expect("at1").to_owned();
    // The rotated-out token comes back: the whole family dies.
    let (s, body) = refresh(rt0.to_owned()).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = refresh(rt1).await;
    assert_eq!(s, 400, "the newest token of the family is revoked too");
    assert_eq!(app.introspect(&rs, &at1).await["active"], false);
}

#[tokio::test]
async fn refresh_may_narrow_scope_but_not_widen_it() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let rt = t["refresh_token"].as_str().expect("rt");
    let (s, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &f.client_id),
            ("scope", "mcp:tools offline_access"),
        ])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        body["error"], "invalid_scope",
        "offline_access was not granted"
    );
    let (s, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &f.client_id),
            ("scope", "mcp:tools"),
        ])
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    let (s, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().expect("rt")),
            ("client_id", &f.client_id),
        ])
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body["scope"], "mcp:prompts mcp:resources mcp:tools",
        "the grant keeps its full scope"
    );
}

#[tokio::test]
async fn refresh_token_of_another_client_is_refused() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let other = app.public_client("http://127.0.0.1:7777/callback").await;
    let (s, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().expect("rt")),
            ("client_id", &other),
        ])
        .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn client_credentials_for_confidential_clients_only() {
    let app = spawn_app().await;
    let (id, secret) = app.introspector().await;
    let (s, body) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "mcp:tools"),
                    ("resource", RESOURCE),
                ]),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    let (_, claims) = jwt_parts(body["access_token"].as_str().expect("at"));
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["scope"], "mcp:tools");
    let public = app.public_client("http://127.0.0.1:7777/callback").await;
    let (s, body) = app
        .token(&[("grant_type", "client_credentials"), ("client_id", &public)])
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let (code_only, code_secret) = app
        .confidential_client(json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .await;
    let (s, body) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&code_only, Some(&code_secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "not registered for the grant"
    );
}

#[tokio::test]
async fn client_credentials_writes_nothing_to_the_database() {
    let app = spawn_app().await;
    let (id, secret) = app.introspector().await;
    let count = || async {
        let store = latchkey_store::SeaStore::connect(&app.database_url)
            .await
            .expect("db");
        use sea_orm::{ConnectionTrait, Statement};
        let mut n = 0i64;
        for t in [
            "grants",
            "refresh_tokens",
            "authorization_codes",
            "revocation_events",
            "consents",
        ] {
            let row = store
                .connection()
                .query_one_raw(Statement::from_string(
                    store.backend(),
                    format!("SELECT COUNT(*) AS n FROM {t}"),
                ))
                .await
                .expect("count")
                .expect("row");
            n += row.try_get::<i64>("", "n").expect("n");
        }
        n
    };
    let before = count().await;
    for _ in 0..5 {
        let (s, _) = app
            .token_with(
                http()
                    .post(app.url("/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
        assert_eq!(s, 200);
    }
    assert_eq!(count().await, before);
}

#[tokio::test]
async fn client_authentication_methods() {
    let app = spawn_app().await;
    let (basic_id, basic_secret) = app.introspector().await;
    let (post_id, post_secret) = app
        .operator_client(
            &[RESOURCE],
            Some(json!({"grant_types": ["client_credentials"], "response_types": [], "token_endpoint_auth_method": "client_secret_post"})),
        )
        .await;
    let cc = [("grant_type", "client_credentials")];
    let post = |id: &str, secret: &str| {
        let form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", id.to_owned()),
            ("client_secret", secret.to_owned()),
        ];
        http().post(app.url("/token")).form(&form)
    };
    // Accepted: Basic for a basic client, body for a post client, and Basic for a post client
    // (RFC 6749 §2.3.1: Basic is always supported).
    for (req, why) in [
        (
            http()
                .post(app.url("/token"))
                .basic_auth(&basic_id, Some(&basic_secret))
                .form(&cc),
            "basic",
        ),
        (post(&post_id, &post_secret), "post"),
        (
            http()
                .post(app.url("/token"))
                .basic_auth(&post_id, Some(&post_secret))
                .form(&cc),
            "basic for a post client",
        ),
    ] {
        let (s, body) = app.token_with(req).await;
        assert_eq!(s, 200, "{why}: {body}");
    }
    // Refused.
    for (req, status, code, why) in [
        (
            post(&basic_id, &basic_secret),
            401,
            "invalid_client",
            "body secret for a basic client",
        ),
        (
            http()
                .post(app.url("/token"))
                .basic_auth(&basic_id, Some("wrong"))
                .form(&cc),
            401,
            "invalid_client",
            "wrong secret",
        ),
        (
            http()
                .post(app.url("/token"))
                .basic_auth("nobody", Some("x"))
                .form(&cc),
            401,
            "invalid_client",
            "unknown client",
        ),
        (
            http().post(app.url("/token")).form(&cc),
            401,
            "invalid_client",
            "no credentials",
        ),
        (
            http()
                .post(app.url("/token"))
                .basic_auth(&post_id, Some(&post_secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", post_id.as_str()),
                    ("client_secret", post_secret.as_str()),
                ]),
            400,
            "invalid_request",
            "two methods at once",
        ),
        (
            http()
                .post(app.url("/token"))
                .header("authorization", "Basic %%%")
                .form(&cc),
            401,
            "invalid_client",
            "malformed Basic",
        ),
    ] {
        let res = req.send().await.expect("post");
        let s = res.status().as_u16();
        let www = res.headers().get("www-authenticate").is_some();
        let body: Value = res.json().await.expect("json");
        assert_eq!((s, body["error"].as_str()), (status, Some(code)), "{why}");
        if status == 401 {
            assert!(www, "{why}: 401 carries WWW-Authenticate");
        }
    }
}

#[tokio::test]
async fn unsupported_or_missing_grant_type() {
    let app = spawn_app().await;
    let (s, body) = app
        .token(&[
            ("grant_type", "password"),
            ("username", "a"),
            ("password", "b"),
        ])
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (s, body) = app.token(&[("client_id", "x")]).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn error_responses_are_not_cached() {
    let app = spawn_app().await;
    let res = http()
        .post(app.url("/token"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.headers().get("cache-control").expect("cc"), "no-store");
    assert_eq!(
        res.headers().get("content-type").expect("ct"),
        "application/json"
    );
}
