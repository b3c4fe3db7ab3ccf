//! The real `latchkey` binary as a child process, for what only a process shows: signals,
//! crashes and restarts. Its issuer is `http://localhost:{port}`, so a restart on the same port
//! keeps browsers' cookies and passkeys valid.

use std::{process::Stdio, time::Duration};

use reqwest::StatusCode;

/// The CPUs a server process may use.
#[derive(Clone, Copy, Debug)]
pub enum Cpus {
    All,
    One,
}

impl Cpus {
    /// Whether this machine can run a process on these CPUs: one CPU needs `taskset`
    /// (util-linux); prints a notice when it is missing.
    pub fn available(self) -> bool {
        let available = match self {
            Cpus::All => true,
            Cpus::One => std::process::Command::new("taskset").arg("-V").output().is_ok(),
        };
        if !available {
            eprintln!("notice: taskset not found; skipping the one-CPU run");
        }
        available
    }
}

/// `latchkey serve`, running.
pub struct Server {
    child: tokio::process::Child,
    /// The issuer, where browsers talk to.
    pub base: String,
    port: u16,
}

impl Server {
    /// Starts `latchkey serve` on `port` with extra `LATCHKEY_*` settings and waits until
    /// `/readyz` answers 200.
    pub async fn start(port: u16, settings: &[(&str, &str)]) -> Server {
        Self::start_on(Cpus::All, port, settings).await
    }

    /// [`start`](Self::start), allowed `cpus` (one: pinned with `taskset`, where Latchkey runs a
    /// current-thread runtime).
    pub async fn start_on(cpus: Cpus, port: u16, settings: &[(&str, &str)]) -> Server {
        let base = format!("http://localhost:{port}");
        let binary = env!("CARGO_BIN_EXE_latchkey");
        let mut command = match cpus {
            Cpus::All => tokio::process::Command::new(binary),
            Cpus::One => {
                let mut taskset = tokio::process::Command::new("taskset");
                taskset.args(["-c", "0", binary]);
                taskset
            }
        };
        let child = command
            .arg("serve")
            .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_ISSUER", &base)
            .env("RUST_LOG", "error")
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the latchkey binary runs");
        let server = Server { child, base, port };
        for _ in 0..200 {
            if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
                assert_eq!(response.status(), StatusCode::OK, "the server became ready");
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("latchkey did not start listening on port {port}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends a signal (`"TERM"`, `"KILL"`) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap();
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// Waits for the process to end, at most `within`.
    pub async fn exit_status(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait()).await.expect("the process exits in time").unwrap()
    }
}
