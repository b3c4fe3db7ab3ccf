//! `latchkey-bench`: a load generator that drives a running Latchkey through its public
//! interfaces only, the way browsers and relying parties do, and reports throughput, latency
//! percentiles and server-side counts.
//!
//! A run has three parts:
//! 1. **Setup** (not measured): signs up `users` accounts through `/signup`, each with a passkey
//!    from a software authenticator ([`latchkey_softkey`]), and fetches the JWK set.
//! 2. **Warm-up** then **measurement**: `concurrency` virtual users repeat the scenario's flow
//!    as fast as they can (closed loop), or at a fixed arrival rate (`rate`, open loop: latency
//!    counts from each flow's scheduled start, so a slow server cannot hide its queue).
//! 3. **Report**: flows/s, percentiles per flow and per request, failures by kind, and the growth
//!    of the server's `/metrics` counters per completed flow ([`server`]).
//!
//! Scenarios ([`Scenario`]): `login` (the complete flow, see [`flows::login`]), `token` (code
//! exchange alone, with codes minted before each measured round), `refresh`, `userinfo`, and
//! `discovery` (discovery document and JWKS alternately). Every virtual user owns its accounts,
//! so no two flows race on one passkey's signature counter.
//!
//! The generator expects an OIDC client it knows the secret of: by default `bench-es256`,
//! `bench-rs256` and `bench-eddsa` with [`DEFAULT_CLIENT_SECRET`], which [`clients_file`] writes
//! as a `LATCHKEY_CLIENTS_FILE`. It never asserts timings: it fails only when a flow fails.

pub mod agent;
pub mod flows;
pub mod jwk;
mod pacer;
pub mod procstat;
pub mod report;
pub mod server;
mod vus;

use std::time::Duration;

use openidconnect::core::CoreJwsSigningAlgorithm;
use serde::Serialize;

pub use report::Report;

/// The secret of the benchmark clients in [`clients_file`] (a fixed value: benchmarks only).
pub const DEFAULT_CLIENT_SECRET: &str = "latchkey-bench-client-secret-not-for-production-use";
/// Their redirect URI. Nothing listens there: the flow stops at the redirect.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:9/callback";

/// What the virtual users repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// `/authorize` → sign-in with a passkey → code → `/token` → ID token verified.
    Login,
    /// `POST /token` with codes minted beforehand (minting is not measured).
    Token,
    /// `POST /token` with `grant_type=refresh_token`, rotating.
    Refresh,
    /// `GET /userinfo` with an access token.
    Userinfo,
    /// `GET /.well-known/openid-configuration` and `GET /jwks.json`, alternately.
    Discovery,
}

/// How the `login` flow reaches the passkey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoginMode {
    /// A new browser each time: the username step (`POST /login`), then the passkey step.
    Username,
    /// A returning browser whose session ended: it keeps the remembered-user and CSRF cookies,
    /// so `/login` shows the passkey step at once.
    Remembered,
    /// A new browser that answers the username page's discoverable request (passkey autofill).
    Discoverable,
}

/// The ID token signing algorithm of the client (its `id_token_signed_response_alg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Latchkey's default).
    #[value(name = "RS256")]
    RS256,
    /// ECDSA P-256.
    #[value(name = "ES256")]
    ES256,
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDSA,
}

impl Alg {
    /// Every algorithm Latchkey signs with.
    pub const ALL: [Alg; 3] = [Alg::RS256, Alg::ES256, Alg::EdDSA];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
        }
    }

    fn core(self) -> CoreJwsSigningAlgorithm {
        match self {
            Alg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Alg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            Alg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client id of the benchmark client for `alg` in [`clients_file`].
pub fn bench_client_id(alg: Alg) -> String {
    format!("bench-{}", alg.as_str().to_lowercase())
}

/// A `LATCHKEY_CLIENTS_FILE` with one first-party benchmark client per algorithm.
pub fn clients_file(secret: &str, redirect_uri: &str) -> String {
    let mut yaml = String::from("# Benchmark clients (latchkey-bench --print-clients-file)\nclients:\n");
    for alg in Alg::ALL {
        yaml.push_str(&format!(
            "  - client_id: {}\n    name: Latchkey bench ({alg})\n    client_secret: \"{secret}\"\n    \
             redirect_uris: [\"{redirect_uri}\"]\n    first_party: true\n    id_token_signed_response_alg: {alg}\n",
            bench_client_id(alg),
        ));
    }
    yaml
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The issuer URL of the Latchkey under test (requests go there; browsers claim its origin).
    pub target: String,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Virtual users (flows in flight at most).
    pub concurrency: usize,
    /// Accounts to sign up; at least `concurrency` (default: the larger of 100 and `concurrency`).
    pub users: Option<usize>,
    /// What the virtual users repeat.
    pub scenario: Scenario,
    /// The client's ID token signing algorithm.
    pub alg: Alg,
    /// A fixed arrival rate in flows per second (open loop), instead of as fast as possible.
    pub rate: Option<f64>,
    /// How the login scenario reaches the passkey.
    pub login_mode: LoginMode,
    /// Default: the benchmark client of `alg` ([`bench_client_id`]).
    pub client_id: Option<String>,
    /// The client's secret (`client_secret_basic`).
    pub client_secret: String,
    /// The client's registered redirect URI.
    pub redirect_uri: String,
    /// Names of local processes whose CPU time per flow to report as well (e.g. `postgres`,
    /// `redis-server`: services on the server's machine), read from `/proc`.
    pub watch_processes: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: "http://localhost:8080".into(),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            concurrency: 16,
            users: None,
            scenario: Scenario::Login,
            alg: Alg::ES256,
            rate: None,
            login_mode: LoginMode::Username,
            client_id: None,
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            redirect_uri: DEFAULT_REDIRECT_URI.into(),
            watch_processes: Vec::new(),
        }
    }
}

impl Options {
    /// The client id to act as.
    pub fn client_id(&self) -> String {
        self.client_id.clone().unwrap_or_else(|| bench_client_id(self.alg))
    }

    /// Accounts to sign up.
    pub fn user_count(&self) -> usize {
        match self.scenario {
            Scenario::Discovery => 0,
            _ => self.users.unwrap_or(100).max(self.concurrency),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.concurrency >= 1, "--concurrency must be at least 1");
        anyhow::ensure!(!self.duration.is_zero(), "--duration must be more than zero");
        anyhow::ensure!(self.rate.is_none_or(|r| r > 0.0 && r.is_finite()), "--rate must be a positive number");
        if let Some(users) = self.users {
            anyhow::ensure!(
                users >= self.concurrency || self.scenario == Scenario::Discovery,
                "--users ({users}) must be at least --concurrency ({}): each virtual user owns its accounts",
                self.concurrency
            );
        }
        Ok(())
    }
}

/// Runs the benchmark `options` describe and reports. Fails only when setup fails; failed flows
/// are counted in the report ([`Report::failed`]).
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    options.check()?;
    vus::run(options).await
}

/// Polls `/readyz` every millisecond until it answers 200; returns how long that took.
pub async fn wait_ready(target: &str, timeout: Duration) -> anyhow::Result<Duration> {
    let started = std::time::Instant::now();
    let agent = agent::Agent::new(target, 1)?;
    let (mut jar, mut times) = (agent::Jar::default(), agent::StepTimes::new());
    loop {
        times.clear();
        let probe = agent.get("readyz", "/readyz", &mut jar, &mut times);
        if let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(1), probe).await
            && answer.status.is_success()
        {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < timeout, "{target}/readyz did not answer 200 within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
