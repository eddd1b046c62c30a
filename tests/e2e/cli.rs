//! The `latchkey` binary's admin commands, run as a user would.

use crate::common::{DbGuard, fresh_database};
use std::io::Write;
use std::process::{Command, Stdio};

fn latchkey(db: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env("LATCHKEY_DATABASE_URL", db)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run latchkey");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn user_commands_add_list_and_disable() {
    let db = fresh_database().await;
    let _guard = DbGuard(db.clone());
    let (ok, out) = latchkey(
        &db,
        &["user", "add", "Ops@Example.com", "--password-stdin"],
        "a good password\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = latchkey(&db, &["user", "list"], "");
    assert!(
        ok && out.contains("ops@example.com") && out.contains("active"),
        "{out}"
    );
    let (ok, out) = latchkey(&db, &["user", "disable", "ops@example.com"], "");
    assert!(ok, "{out}");
    let (_, out) = latchkey(&db, &["user", "list"], "");
    assert!(out.contains("disabled"), "{out}");
}

#[tokio::test]
async fn user_add_rejects_duplicates_bad_emails_and_short_passwords() {
    let db = fresh_database().await;
    let _guard = DbGuard(db.clone());
    assert!(
        latchkey(
            &db,
            &["user", "add", "a@example.com", "--password-stdin"],
            "a good password"
        )
        .0
    );
    for (email, password, expect, why) in [
        (
            "A@example.com",
            "another password",
            "already exists",
            "duplicate email",
        ),
        (
            "not-an-email",
            "a good password",
            "malformed email",
            "malformed email",
        ),
        ("b@example.com", "short", "at least 8", "short password"),
    ] {
        let (ok, out) = latchkey(&db, &["user", "add", email, "--password-stdin"], password);
        assert!(!ok, "{why}");
        assert!(out.contains(expect), "{why}: {out}");
    }
}

#[tokio::test]
async fn resource_and_client_commands() {
    let db = fresh_database().await;
    let _guard = DbGuard(db.clone());
    let (ok, out) = latchkey(&db, &["resource", "add", "HTTPS://MCP.example.com/mcp"], "");
    assert!(
        ok && out.contains("https://mcp.example.com/mcp (default)"),
        "{out}"
    );
    let (ok, _) = latchkey(&db, &["resource", "add", "https://mcp.example.com/mcp"], "");
    assert!(!ok, "duplicate resource");
    let (ok, _) = latchkey(
        &db,
        &["resource", "add", "http://not-loopback.example.com/"],
        "",
    );
    assert!(!ok, "plain http resource");
    let (ok, out) = latchkey(
        &db,
        &[
            "client",
            "add",
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
        ],
        "",
    );
    assert!(
        !ok && out.contains("needs at least one resource"),
        "client_credentials names its resources: {out}"
    );
    let (ok, out) = latchkey(
        &db,
        &[
            "client",
            "add",
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
            "--audience",
            "https://other.example.com/mcp",
        ],
        "",
    );
    assert!(
        !ok && out.contains("invalid_target"),
        "an unregistered resource: {out}"
    );
    let (ok, out) = latchkey(
        &db,
        &[
            "client",
            "add",
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
            "--audience",
            "https://MCP.example.com/mcp",
        ],
        "",
    );
    assert!(ok && out.contains("client_secret:"), "{out}");
    assert!(
        out.contains("client_id:") && out.contains("audiences:     https://mcp.example.com/mcp"),
        "{out}"
    );
    let (ok, out) = latchkey(
        &db,
        &[
            "client",
            "add",
            "--name",
            "mcp-server",
            "--resource",
            "https://mcp.example.com/mcp",
        ],
        "",
    );
    assert!(
        ok && out.contains("resources:     https://mcp.example.com/mcp"),
        "a resource server needs no grant: {out}"
    );
    let (ok, out) = latchkey(&db, &["client", "list"], "");
    assert!(
        ok && out.contains("\toperator\tsvc\t")
            && out.contains("audiences=https://mcp.example.com/mcp"),
        "the tier is listed: {out}"
    );
    let (ok, out) = latchkey(&db, &["keys", "list"], "");
    assert!(ok && out.contains("signing"), "{out}");
}

#[tokio::test]
async fn check_config_reports_every_problem() {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("check-config")
        .env("LATCHKEY_ENV", "production")
        .env("LATCHKEY_ISSUER", "http://auth.example.com")
        .env("LATCHKEY_CODE_TTL_SECS", "0")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "https in production",
        "PostgreSQL",
        "CORS",
        "code_ttl_secs",
        "key-encryption key",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// Runs `latchkey` against a deployment's AdminService, as an operator who cannot exec into it.
fn latchkey_remote(grpc_url: &str, secret: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--remote")
        .arg(grpc_url)
        .args(args)
        .env("LATCHKEY_ADMIN_SECRET", secret)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run latchkey");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_commands_work_against_a_remote_deployment_with_the_admin_secret() {
    let app = crate::common::spawn_app().await;
    let url = app.grpc_url.clone();
    let secret = crate::common::ADMIN_SECRET;
    let run = move |args: Vec<&'static str>| {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || latchkey_remote(&url, secret, &args))
                .await
                .expect("join")
        }
    };
    let (ok, out) = run(vec![
        "resource",
        "add",
        "https://mcp.example.com/mcp",
        "--default",
    ])
    .await;
    assert!(
        ok && out.contains("added https://mcp.example.com/mcp (default)"),
        "{out}"
    );
    let (ok, out) = run(vec![
        "client",
        "add",
        "--name",
        "remote-job",
        "--grant-type",
        "client_credentials",
        "--audience",
        "https://mcp.example.com/mcp",
    ])
    .await;
    assert!(
        ok && out.contains("client_id:") && out.contains("client_secret:"),
        "{out}"
    );
    let (ok, out) = run(vec!["client", "list"]).await;
    assert!(ok && out.contains("\toperator\tremote-job\t"), "{out}");
    let (ok, out) = run(vec!["keys", "list"]).await;
    assert!(ok && out.contains("signing"), "{out}");
    // The running server knows the resource at once: it was added through it.
    assert_eq!(app.core().protected_resource_list().len(), 1);

    let wrong = {
        let url = app.grpc_url.clone();
        tokio::task::spawn_blocking(move || {
            latchkey_remote(
                &url,
                "not-the-admin-secret-0123456789abcdef",
                &["client", "list"],
            )
        })
        .await
        .expect("join")
    };
    assert!(
        !wrong.0 && wrong.1.contains("unauthenticated"),
        "{}",
        wrong.1
    );
}

#[tokio::test]
async fn stats_purge_and_backup_tell_and_do_what_maintenance_does() {
    let app = crate::common::spawn_app().await;
    let f = crate::common::flow(&app).await;
    let tokens = f.exchange(&app).await;
    assert!(tokens["refresh_token"].is_string());
    let (svc, svc_secret) = app.operator_client(&[crate::common::RESOURCE], None).await;
    let (s, _) = app
        .token_with(
            crate::common::http()
                .post(app.url("/token"))
                .basic_auth(&svc, Some(&svc_secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(s, 200);

    let url = app.grpc_url.clone();
    let run = move |args: Vec<&'static str>| {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                latchkey_remote(&url, crate::common::ADMIN_SECRET, &args)
            })
            .await
            .expect("join")
        }
    };
    let (ok, out) = run(vec!["stats"]).await;
    assert!(ok, "{out}");
    for line in [
        "clients.dynamic\t1",
        "clients.operator\t1",
        "users\t1",
        "grants\t1",
        "refresh_families.live\t1",
        "tokens_issued\t2",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(!out.contains("last_use\t-"), "a use was recorded: {out}");

    // A month later the refresh token and the code have expired.
    app.advance(31 * 24 * 3600);
    let (ok, out) = run(vec!["purge", "--dry-run"]).await;
    assert!(
        ok && out.contains("would delete: 1 authorization codes, 1 refresh tokens"),
        "{out}"
    );
    let (ok, out) = run(vec!["purge"]).await;
    assert!(
        ok && out.contains("deleted: 1 authorization codes, 1 refresh tokens"),
        "{out}"
    );
    let (ok, out) = run(vec!["purge", "--dry-run"]).await;
    assert!(
        ok && out.contains("would delete: 0 authorization codes, 0 refresh tokens"),
        "{out}"
    );
    let (ok, out) = run(vec!["stats"]).await;
    assert!(ok && out.contains("refresh_families.live\t0"), "{out}");

    let dest = std::env::temp_dir().join(format!("lk-backup-{}.db", uuid::Uuid::new_v4().simple()));
    let (ok, out) = latchkey(
        &app.settings.database_url,
        &["backup", dest.to_str().expect("utf-8")],
        "",
    );
    assert!(ok, "{out}");
    if app.settings.database_url.starts_with("postgres") {
        assert!(out.contains("pg_dump"), "{out}");
    } else {
        let copy =
            latchkey_store::SeaStore::connect(&format!("sqlite://{}?mode=rw", dest.display()))
                .await
                .expect("the copy opens");
        use latchkey_core::store::ClientStore;
        assert_eq!(
            copy.list_clients().await.expect("clients").len(),
            2,
            "{out}"
        );
        let _ = std::fs::remove_file(&dest);
    }
}

#[tokio::test]
async fn grant_and_key_commands_tell_a_new_user_what_happened() {
    let db = fresh_database().await;
    let _guard = DbGuard(db.clone());
    let email = "new-user@example.com";
    let (ok, out) = latchkey(
        &db,
        &["user", "add", email, "--password-stdin"],
        "a good password",
    );
    assert!(ok, "{out}");
    let (ok, out) = latchkey(&db, &["user", "grants", email], "");
    assert!(ok && out.contains("no live grants"), "{out}");
    // A mistyped install is not taken for a signed-out device.
    let (ok, out) = latchkey(
        &db,
        &[
            "user",
            "revoke",
            email,
            "--client",
            "some-client",
            "--install",
            "https://app.example/callback/",
        ],
        "",
    );
    assert!(
        ok && out.contains("no live grant to that client and install"),
        "{out}"
    );

    // A PEM public key given where a JWK Set belongs: the error names the JWK Set.
    let pem = std::env::temp_dir().join(format!("latchkey-cli-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(
        &pem,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
    )
    .expect("write the file");
    let (ok, out) = latchkey(
        &db,
        &[
            "client",
            "add",
            "--name",
            "signer",
            "--redirect-uri",
            "https://app.example/cb",
            "--jwks",
            pem.to_str().expect("utf-8 path"),
        ],
        "",
    );
    let _ = std::fs::remove_file(&pem);
    assert!(!ok && out.contains("jwks is not a JWK Set"), "{out}");

    // A client with keys has no secret to show: the output says how it authenticates.
    let (ok, out) = latchkey(
        &db,
        &[
            "client",
            "add",
            "--name",
            "signer",
            "--redirect-uri",
            "https://app.example/cb",
            "--jwks-uri",
            "https://keys.example/jwks.json",
        ],
        "",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("private_key_jwt")
            && out.contains("client_assertion")
            && !out.contains("client_secret:"),
        "{out}"
    );
}
