//! SIGKILL in the middle of a sign-in: the real binary is killed between the passkey options and
//! the assertion, then started again on the same data. On PostgreSQL + Redis the ceremony state
//! survived in Redis and the sign-in completes; on the embedded default it was in the process's
//! memory, so the assertion gets a clean 400 asking to start again — while accounts and
//! passkeys, in the SQLite file, are intact and a fresh sign-in works.

use std::time::Duration;

use latchkey::store;
use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::{
    authenticator::SoftAuthenticator,
    helpers::{Backend, Browser, Page, SqliteFile, free_port, fresh_schema, redis_prefix, unique_name},
    process::Server,
};

#[tokio::test]
async fn sigkill_mid_sign_in_on_postgres_redis_completes_after_restart() {
    let Some(Backend::Scaled { database_url, redis_url }) = Backend::scaled() else { return };
    let (database, prefix) = (fresh_schema(&database_url).await, redis_prefix());
    let settings = [
        ("LATCHKEY_DATABASE_URL", database.as_str()),
        ("LATCHKEY_REDIS_URL", redis_url.as_str()),
        ("LATCHKEY_REDIS_PREFIX", prefix.as_str()),
    ];
    let (_server, browser, mut auth, step) = killed_mid_sign_in(&settings).await;
    let (status, body) = browser.answer_passkey_step(&step, &mut auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["verified"], true);
    assert_eq!(browser.get("/account").await.status, StatusCode::OK, "signed in");
}

#[tokio::test]
async fn sigkill_mid_sign_in_on_the_embedded_default_asks_to_start_again() {
    let file = SqliteFile::new();
    let url = file.url();
    let (_server, browser, mut auth, step) = killed_mid_sign_in(&[("LATCHKEY_DATABASE_URL", &url)]).await;
    let (status, body) = browser.answer_passkey_step(&step, &mut auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "expired");
    assert!(body["detail"].as_str().unwrap().contains("Please try again"), "{body}");

    let db = store::connect(&url).await.unwrap();
    assert_eq!(entity::user::Entity::find().count(&db).await.unwrap(), 1, "the account survived");
    assert_eq!(entity::passkey::Entity::find().count(&db).await.unwrap(), 1, "its passkey survived");
    let name = entity::user::Entity::find().one(&db).await.unwrap().unwrap().username;
    let step = browser.username_step(&name).await;
    let (status, body) = browser.answer_passkey_step(&step, &mut auth).await;
    assert_eq!(status, StatusCode::OK, "a fresh sign-in works: {body}");
}

/// Signs up on a new server, signs out, starts a sign-in (username step → passkey options),
/// kills the server with SIGKILL and starts it again on the same port and data; answers the
/// restarted server, the browser, its authenticator and the passkey step it was shown.
async fn killed_mid_sign_in(settings: &[(&str, &str)]) -> (Server, Browser, SoftAuthenticator, Page) {
    let mut server = Server::start(free_port(), settings).await;
    let browser = Browser::at(&server.base);
    let mut auth = SoftAuthenticator::default();
    let name = unique_name("crash");
    browser.sign_up(&mut auth, &name, &format!("{name}@example.com"), "Cary Crash").await;
    browser.sign_out().await;
    let step = browser.username_step(&name).await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);

    server.signal("KILL");
    let status = server.exit_status(Duration::from_secs(5)).await;
    assert!(!status.success(), "killed, not exited: {status}");
    let restarted = Server::start(server.port(), settings).await;
    (restarted, browser, auth, step)
}
