//! SIGTERM under load: 16 clients keep requesting discovery and the username page of the real
//! binary (on every CPU, and on one, where its runtime is a current-thread one) while it is
//! told to stop. Every request it accepted gets its complete answer (never
//! a connection reset mid-response), the process exits 0 within the shutdown grace period, and
//! new connections are refused afterwards.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;

use crate::{
    helpers::{SqliteFile, free_port},
    process::{Cpus, Server},
};

const CLIENTS: usize = 16;
/// `LATCHKEY_SHUTDOWN_GRACE`.
const GRACE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn sigterm_under_load_finishes_accepted_requests_and_exits_0() {
    sigterm_under_load(Cpus::All).await;
}

/// On one CPU Latchkey runs a current-thread runtime instead of a multi-thread one.
#[tokio::test]
async fn sigterm_under_load_on_one_cpu_finishes_accepted_requests_and_exits_0() {
    if Cpus::One.available() {
        sigterm_under_load(Cpus::One).await;
    }
}

async fn sigterm_under_load(cpus: Cpus) {
    let file = SqliteFile::new();
    let settings = [
        ("LATCHKEY_DATABASE_URL", file.url()),
        ("LATCHKEY_SHUTDOWN_GRACE", format!("{}s", GRACE.as_secs())),
        ("LATCHKEY_RATE_LIMITS", "off".into()),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start_on(cpus, free_port(), &settings).await;
    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..CLIENTS).map(|n| tokio::spawn(client(server.base.clone(), n, load.clone()))).collect();
    while load.answered.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    load.terminating.store(true, Ordering::SeqCst);
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.exit_status(Duration::from_secs(10)).await;
    assert!(status.success(), "SIGTERM ends with exit code 0, got {status}");
    assert!(signalled.elapsed() < GRACE, "exited after {:?}, not within the grace period", signalled.elapsed());
    for client in clients {
        client.await.expect("every accepted request was answered completely");
    }
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", server.port())).await;
    assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
}

/// What the clients share.
#[derive(Default)]
struct Load {
    /// Complete answers so far.
    answered: AtomicUsize,
    /// Set just before SIGTERM: from then on a request may be turned away.
    terminating: AtomicBool,
}

/// Requests discovery and the username page in turn, each on a new connection, until the server
/// no longer takes requests (refused, or closed before an answer began) after SIGTERM; panics on
/// any answer that is not complete and correct.
async fn client(base: String, n: usize, load: Arc<Load>) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let pages = [("/.well-known/openid-configuration", r#""token_endpoint""#), ("/login", "</html>")];
    for (path, complete) in pages.iter().cycle().skip(n % 2) {
        let response = match http.get(format!("{base}{path}")).send().await {
            Ok(response) => response,
            Err(err) => {
                assert!(load.terminating.load(Ordering::SeqCst), "{path}: turned away while serving: {err}");
                return;
            }
        };
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = response.text().await.unwrap_or_else(|err| panic!("{path}: answer cut off: {err}"));
        assert!(body.contains(complete), "{path}: incomplete answer: {body}");
        load.answered.fetch_add(1, Ordering::SeqCst);
    }
}
