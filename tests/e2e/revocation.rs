use crate::common::*;

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_grant_and_access_tokens() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let (at, rt) = (
        t["access_token"].as_str().expect("at"),
        t["refresh_token"].as_str().expect("rt"),
    );
    let intro = app.introspect(&rs, rt).await;
    assert_eq!(intro["active"], true);
    assert!(
        intro.get("token_type").is_none(),
        "a refresh token has no RFC 6749 §7.1 type"
    );
    assert!(
        intro.get("username").is_none(),
        "the email is not disclosed"
    );
    assert_eq!(intro["client_id"], f.client_id.as_str());
    let res = http()
        .post(app.url("/revoke"))
        .form(&[
            ("token", rt),
            ("token_type_hint", "refresh_token"),
            ("client_id", &f.client_id),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(app.introspect(&rs, rt).await["active"], false);
    assert_eq!(app.introspect(&rs, at).await["active"], false);
}

#[tokio::test]
async fn revoking_an_access_token_makes_it_inactive() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let at = t["access_token"].as_str().expect("at");
    let intro = app.introspect(&rs, at).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["aud"], RESOURCE);
    assert_eq!(intro["client_id"], f.client_id.as_str());
    let res = http()
        .post(app.url("/revoke"))
        .form(&[("token", at), ("client_id", &f.client_id)])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(app.introspect(&rs, at).await["active"], false);
    // The refresh token of the grant still works: only the one access token was revoked.
    let (s, _) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().expect("rt")),
            ("client_id", &f.client_id),
        ])
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn another_client_cannot_revoke_a_token_and_unknown_tokens_are_fine_to_revoke() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let rt = t["refresh_token"].as_str().expect("rt");
    let other = app.public_client("http://127.0.0.1:7777/callback").await;
    let res = http()
        .post(app.url("/revoke"))
        .form(&[("token", rt), ("client_id", &other)])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400, "RFC 7009 §2.1: the request is refused");
    assert_eq!(
        res.json::<serde_json::Value>().await.expect("json")["error"],
        "unauthorized_client"
    );
    assert_eq!(app.introspect(&rs, rt).await["active"], true);
    let res = http()
        .post(app.url("/revoke"))
        .form(&[("token", "garbage"), ("client_id", &other)])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    let res = http()
        .post(app.url("/revoke"))
        .form(&[("token", rt)])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 401, "revocation needs client authentication");
}

#[tokio::test]
async fn introspection_requires_a_confidential_client() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let at = t["access_token"].as_str().expect("at");
    for (req, why) in [
        (
            http().post(app.url("/introspect")).form(&[("token", at)]),
            "no credentials",
        ),
        (
            http()
                .post(app.url("/introspect"))
                .form(&[("token", at), ("client_id", f.client_id.as_str())]),
            "public client",
        ),
        (
            http()
                .post(app.url("/introspect"))
                .basic_auth("nobody", Some("x"))
                .form(&[("token", at)]),
            "unknown client",
        ),
    ] {
        let res = req.send().await.expect("post");
        assert_eq!(res.status(), 401, "{why}");
    }
}

#[tokio::test]
async fn disabling_a_user_makes_their_tokens_inactive() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let at = t["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&rs, at).await["active"], true);
    app.core().disable_user(&f.email).await.expect("disable");
    assert_eq!(app.introspect(&rs, at).await["active"], false);
    let (s, _) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().expect("rt")),
            ("client_id", &f.client_id),
        ])
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn garbage_tokens_introspect_as_inactive() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    for t in [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.e30.",
    ] {
        let body = app.introspect(&rs, t).await;
        assert_eq!(body, serde_json::json!({"active": false}), "{t}");
    }
}

/// Revoking the same token again answers 200 (RFC 7009 §2.2) but records nothing more, so a
/// client looping on /revoke cannot grow the revocation log, the denylist or the streams.
#[tokio::test]
async fn revoking_again_records_no_second_event() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let mut events = app.core().denylist().subscribe();
    for token in [&t["access_token"], &t["refresh_token"]] {
        for _ in 0..3 {
            let res = http()
                .post(app.url("/revoke"))
                .form(&[
                    ("token", token.as_str().expect("token")),
                    ("client_id", &f.client_id),
                ])
                .send()
                .await
                .expect("post");
            assert_eq!(res.status(), 200);
        }
    }
    let mut kinds = Vec::new();
    while let Ok(Ok(ev)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), events.recv()).await
    {
        kinds.push(ev.kind.as_str());
    }
    assert_eq!(kinds, ["token", "grant"], "one event per revoked thing");
}

/// Events outlive the tokens they cover, then leave the database.
#[tokio::test]
async fn expired_revocation_events_are_pruned() {
    let app = spawn_app_with(|s| {
        // Long enough that minting, revoking and the first prune fall well inside it.
        s.access_token_ttl_secs = 3;
        s.leeway_secs = 0;
        // Only this test prunes.
        s.key_reload_secs = 3600;
    })
    .await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let res = http()
        .post(app.url("/revoke"))
        .form(&[
            ("token", t["access_token"].as_str().expect("at")),
            ("client_id", &f.client_id),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.core().prune_revocations().await.expect("prune"),
        0,
        "in force while the token could still be valid"
    );
    app.advance(4);
    assert_eq!(app.core().prune_revocations().await.expect("prune"), 1);
    assert_eq!(app.core().prune_revocations().await.expect("prune"), 0);
}
