//! Malformed requests get RFC-shaped 4xx answers, never a 5xx.

use crate::common::*;
use serde_json::Value;

#[tokio::test]
async fn malformed_token_requests_get_rfc_errors_and_never_5xx() {
    let app = spawn_app().await;
    let big = "a".repeat(128 * 1024);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http()
                .post(app.url("/token"))
                .header("content-type", "application/json")
                .body(r#"{"grant_type":"client_credentials"}"#),
            400,
            "JSON body",
        ),
        (
            http()
                .post(app.url("/token"))
                .body("grant_type=client_credentials"),
            400,
            "no content type",
        ),
        (
            http()
                .post(app.url("/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("%%%&&&===\u{0}\u{1}"),
            400,
            "garbage form",
        ),
        (
            http()
                .post(app.url("/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(vec![0xff, 0xfe, 0x3d, 0x00]),
            400,
            "invalid UTF-8",
        ),
        (
            http().post(app.url("/token")).form(&[
                ("grant_type", "client_credentials"),
                ("grant_type", "refresh_token"),
            ]),
            400,
            "repeated grant_type",
        ),
        (
            http().post(app.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("code", "a"),
                ("code", "b"),
                ("client_id", "x"),
            ]),
            400,
            "repeated code",
        ),
        (
            http()
                .post(app.url("/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("grant_type={big}")),
            400,
            "oversized body",
        ),
        (
            http()
                .post(app.url("/revoke"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={big}")),
            400,
            "oversized revoke",
        ),
        (
            http()
                .post(app.url("/revoke"))
                .form(&[("token", "a"), ("token", "b")]),
            400,
            "repeated token",
        ),
        (
            http()
                .post(app.url("/introspect"))
                .header("content-type", "text/plain")
                .body("token=a"),
            400,
            "introspect text/plain",
        ),
        (
            http()
                .post(app.url("/register"))
                .header("content-type", "application/json")
                .body(format!("{{\"client_name\":\"{big}\"}}")),
            400,
            "oversized registration",
        ),
        (
            http()
                .post(app.url("/register"))
                .header("content-type", "text/plain")
                .body("{}"),
            400,
            "registration as text",
        ),
    ];
    for (req, status, why) in cases {
        let res = req.send().await.expect("send");
        assert_eq!(res.status().as_u16(), status, "{why}");
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            body["error"].is_string(),
            "{why}: RFC-shaped body, got {body}"
        );
    }
}

#[tokio::test]
async fn garbage_authorization_requests_never_5xx() {
    let app = spawn_app().await;
    for q in [
        "",
        "%%%",
        "client_id=%ff%fe",
        "client_id=a&client_id=b",
        "response_type=code&client_id=&redirect_uri=",
    ] {
        let res = http()
            .get(format!("{}?{q}", app.url("/authorize")))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 400, "{q:?}");
        assert!(res.headers().get("location").is_none(), "{q:?}");
    }
}
