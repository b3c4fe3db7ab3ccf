//! Observability: Prometheus metrics (`/metrics`) and the names Latchkey records them under.
//!
//! The `metrics` facade is process-global by design (one recorder per process); the recorder
//! is installed once and every `AppState` in the process renders from it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests, by route template, method and status.
pub const HTTP_REQUESTS: &str = "latchkey_http_requests_total";
/// HTTP request latency in seconds, by route template and method.
pub const HTTP_DURATION: &str = "latchkey_http_request_duration_seconds";
/// Sign-ins, by method (`passkey`, `email`, `enrollment`) and outcome (`success`, `failure`).
pub const SIGNINS: &str = "latchkey_signins_total";
/// Tokens issued, by grant type.
pub const TOKENS_ISSUED: &str = "latchkey_tokens_issued_total";
/// Failures of the ephemeral store and the database, by store.
pub const STORAGE_ERRORS: &str = "latchkey_storage_errors_total";
/// Database writes and ephemeral-store operations, by store and operation (for the
/// per-login cost the benchmarks report).
pub const STORE_OPERATIONS: &str = "latchkey_store_operations_total";
/// Entries in the in-process ephemeral store (absent with Redis), read at each scrape.
pub const MEMORY_STORE_ENTRIES: &str = "latchkey_memory_store_entries";
/// Bytes those entries occupy (slots and buffers), read at each scrape.
pub const MEMORY_STORE_BYTES: &str = "latchkey_memory_store_bytes";

/// The process's CPU time (user and system) in the Prometheus text format, under the standard
/// name `process_cpu_seconds_total`, read from `/proc/self/stat` at each scrape; `None` where
/// there is no procfs. Benchmarks divide its growth by the flows served.
pub fn process_cpu_exposition() -> Option<String> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // utime and stime are the 14th and 15th fields; the command name before them may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture Latchkey builds for.
    let seconds = ticks as f64 / 100.0;
    Some(format!(
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
         # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {seconds}\n"
    ))
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_DURATION.into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist (a host program); then ours renders only its own.
            let _ = metrics::set_global_recorder(recorder);
            metrics::gauge!("latchkey_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Counts a sign-in attempt.
pub fn signin(method: &'static str, success: bool) {
    metrics::counter!(SIGNINS, "method" => method, "outcome" => if success { "success" } else { "failure" })
        .increment(1);
}

/// Counts issued tokens.
pub fn tokens_issued(grant: &'static str) {
    metrics::counter!(TOKENS_ISSUED, "grant" => grant).increment(1);
}

/// Counts a storage failure.
pub fn storage_error(store: &'static str) {
    metrics::counter!(STORAGE_ERRORS, "store" => store).increment(1);
}
