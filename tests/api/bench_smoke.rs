//! The load generator (`latchkey-bench`) run in-process for a moment against a `TestApp`: two
//! virtual users through the complete login flow, in each way a sign-in can start. Checks that
//! the generator works and that every flow succeeds; it never asserts a timing.

use std::time::Duration;

use latchkey::oidc::clients::ClientSpec;
use latchkey_bench::{Alg, LoginMode, Options, Scenario};

use crate::{
    helpers::{Backend, TestApp},
    oidc::{REDIRECT_URI, first_party, register},
    on_both_backends,
};

on_both_backends!(the_generator_completes_login_flows_without_errors);

async fn the_generator_completes_login_flows_without_errors(backend: Backend) {
    // A load generator is what rate limits exist to stop; benchmarks run with them off.
    let app = TestApp::spawn_with(backend, &[("LATCHKEY_RATE_LIMITS", "off")]).await;
    // Every way a sign-in can start, with ES256 ID tokens; then the other algorithms, whose
    // signatures the generator checks with other keys; then flows started at a fixed rate.
    let runs = [
        (Alg::ES256, LoginMode::Username, 2, None),
        (Alg::ES256, LoginMode::Remembered, 1, None),
        (Alg::ES256, LoginMode::Discoverable, 1, None),
        (Alg::RS256, LoginMode::Username, 1, None),
        (Alg::EdDSA, LoginMode::Username, 1, None),
        (Alg::ES256, LoginMode::Username, 1, Some(20.0)),
    ];
    // The generator and the server are this process; watching it exercises the local-process
    // CPU figures that bench.sh asks for PostgreSQL and Redis.
    let this_process = std::fs::read_to_string("/proc/self/comm").expect("Linux's /proc").trim_end().to_owned();
    for (alg, login_mode, seconds, rate) in runs {
        let spec = ClientSpec { id_token_signed_response_alg: Some(alg.as_str().into()), ..first_party() };
        let (client_id, secret) = register(&app, spec).await;
        let options = Options {
            target: app.base.clone(),
            duration: Duration::from_secs(seconds),
            warmup: Duration::ZERO,
            concurrency: 2,
            users: Some(2),
            scenario: Scenario::Login,
            alg,
            login_mode,
            rate,
            client_id: Some(client_id),
            client_secret: secret.expect("a confidential client"),
            redirect_uri: REDIRECT_URI.into(),
            watch_processes: vec![this_process.clone()],
        };
        let report = latchkey_bench::run(&options).await.expect("the generator sets up and runs");
        assert!(!report.failed(), "{alg:?} {login_mode:?}: flows failed:\n{}", report.table());
        assert!(report.flows >= 1, "{alg:?} {login_mode:?}: no flow completed:\n{}", report.table());
        let server = report.server.as_ref().expect("the server's /metrics is read");
        assert!(server.cpu_ms_per_flow.is_some_and(|ms| ms > 0.0), "the server's CPU time is reported");
        let watched = server.local_processes_cpu_ms_per_flow.get(&this_process);
        assert!(watched.is_some_and(|ms| *ms > 0.0), "the watched process's CPU time is reported: {watched:?}");
    }
}
