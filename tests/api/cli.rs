//! The command line a first administrator uses on a fresh install: `latchkey user create`, then
//! `latchkey user enroll-link`, whose link lets the person create a passkey in the browser.

use reqwest::StatusCode;

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, SqliteFile, TestApp, unique_name},
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
    let file = SqliteFile::new();
    let database_url = file.url();
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
}
