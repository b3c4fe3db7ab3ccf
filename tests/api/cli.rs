//! The command line a first administrator uses on a fresh install: `latchkey user create`, then
//! `latchkey user enroll-link`, whose link lets the person create a passkey in the browser.

use reqwest::StatusCode;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, TestApp, unique_name},
};

fn latchkey(database_url: &str, issuer: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_ISSUER", issuer)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the latchkey binary runs")
}

#[tokio::test]
async fn first_admin_from_the_command_line() {
    let file = std::env::temp_dir().join(format!("latchkey-cli-{}.db", uuid::Uuid::new_v4().simple()));
    let database_url = format!("sqlite://{}?mode=rwc", file.display());
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[("LATCHKEY_DATABASE_URL", &database_url), ("LATCHKEY_SIGNUP", "closed")],
    )
    .await;
    let name = unique_name("admin");

    let created = latchkey(
        &database_url,
        &app.base,
        &["user", "create", "--username", &name, "--email", &format!("{name}@example.com")],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let again = latchkey(
        &database_url,
        &app.base,
        &["user", "create", "--username", &name.to_uppercase(), "--email", "other@example.com"],
    );
    assert_eq!(again.status.code(), Some(1), "a taken username");
    let invalid =
        latchkey(&database_url, &app.base, &["user", "create", "--username", "no spaces allowed", "--email", "x"]);
    assert_eq!(invalid.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("email:"));

    let link = latchkey(&database_url, &app.base, &["user", "enroll-link", &name]);
    assert!(link.status.success(), "{}", String::from_utf8_lossy(&link.stderr));
    let stdout = String::from_utf8(link.stdout).unwrap();
    let url = stdout.lines().next().unwrap();
    let path = url.strip_prefix(&app.base).expect("the link is on the issuer").to_owned();

    let browser = app.browser();
    assert_eq!(browser.get(&path).await.status, StatusCode::OK);
    let (status, options) = browser.post_json(&format!("{path}/options"), &serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = browser.post_json(&path, &SoftAuthenticator::default().register(&options, &app.base)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "signed in after enrolling");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

#[tokio::test]
async fn sigterm_stops_serving_gracefully() {
    let file = std::env::temp_dir().join(format!("latchkey-term-{}.db", uuid::Uuid::new_v4().simple()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("serve")
        .env("LATCHKEY_DATABASE_URL", format!("sqlite://{}?mode=rwc", file.display()))
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_ISSUER", format!("http://localhost:{port}"))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            ready = response.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the server became ready");
    let pid = server.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), server.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "SIGTERM ends with exit code 0, got {status}");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
