//! Redis stopping and coming back: readiness says what degrades, tokens keep working, and
//! logins resume when Redis returns. Runs against a Redis this test starts on its own port
//! (loopback), and stops by its pid.

use crate::common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { child, port })
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn ready(app: &TestApp) -> (u16, serde_json::Value) {
    let res = http()
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("get");
    (res.status().as_u16(), res.json().await.expect("json"))
}

async fn wait_for<F: AsyncFn() -> bool>(what: &str, f: F) {
    for _ in 0..50 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn redis_stopping_and_coming_back() {
    let port = free_port();
    let Some(redis) = OwnRedis::start(port) else {
        eprintln!("redis-server is not installed: the outage suite runs in CI");
        return;
    };
    let url = format!("redis://127.0.0.1:{}", redis.port);
    wait_for("redis to start", async || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let app = spawn_app_with(|s| {
        s.redis_url = Some(url.clone());
        s.public_health_details = true;
    })
    .await;
    assert_eq!(ready(&app).await.1["redis"], "up");
    let (svc, secret) = app.operator_client(&[RESOURCE], None).await;
    let cc = || {
        http()
            .post(app.url("/token"))
            .basic_auth(&svc, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
    };

    redis.stop();
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "still ready: tokens do not need Redis");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["redis"], "down");
    assert!(
        body["degraded"][0]
            .as_str()
            .expect("reason")
            .contains("logins"),
        "{body}"
    );
    let (s, _) = app.token_with(cc()).await;
    assert_eq!(s, 200, "client_credentials keeps working without Redis");
    // A login cannot start: an RFC-shaped error page, not a crash.
    let client_id = app.public_client("http://127.0.0.1:7777/callback").await;
    let p = pkce();
    let res = authorize(
        &app,
        &browser(),
        &auth_params(&client_id, "http://127.0.0.1:7777/callback", &p),
    )
    .await;
    assert_eq!(res.status(), 503, "temporarily_unavailable");
    assert!(res.headers().get("location").is_none());

    let back = OwnRedis::start(port).expect("restart redis");
    wait_for("readiness to recover", async || {
        ready(&app).await.1["redis"] == "up"
    })
    .await;
    app.add_user("back@example.com").await;
    let q = code_flow(
        &app,
        &auth_params(&client_id, "http://127.0.0.1:7777/callback", &p),
        "back@example.com",
    )
    .await;
    assert!(q.contains_key("code"), "logins resume when Redis is back");
    back.stop();
}
