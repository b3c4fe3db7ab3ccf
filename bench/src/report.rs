//! Results: latencies collected per virtual user, merged once at the end into percentiles, and
//! printed as a table for people and one JSON line for scripts.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use serde::Serialize;

use crate::{Alg, LoginMode, Scenario, server::ServerCounts};

/// What one virtual user recorded (merged into a [`Report`] at the end).
#[derive(Default)]
pub struct Recorder {
    /// Latency of each measured flow, in microseconds.
    pub flows: Vec<u32>,
    /// Latency of each request of the measured flows, by step, in microseconds.
    pub steps: BTreeMap<&'static str, Vec<u32>>,
    /// Failed flows by `step: kind`.
    pub errors: BTreeMap<String, u64>,
    /// Flows completed, warm-up included (to divide server-side counts by).
    pub completed: u64,
}

impl Recorder {
    /// Adds another recorder's data.
    pub fn merge(&mut self, other: Recorder) {
        self.flows.extend(other.flows);
        for (step, values) in other.steps {
            self.steps.entry(step).or_default().extend(values);
        }
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.completed += other.completed;
    }
}

/// Latency summary in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest sample.
    pub max: f64,
}

impl Percentiles {
    /// The summary of `micros` (sorted in place).
    pub fn of(micros: &mut [u32]) -> Self {
        if micros.is_empty() {
            return Percentiles::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            f64::from(micros[rank - 1]) / 1000.0
        };
        let sum: u64 = micros.iter().map(|&m| u64::from(m)).sum();
        Percentiles {
            count: micros.len(),
            mean: sum as f64 / micros.len() as f64 / 1000.0,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What the virtual users repeated.
    pub scenario: Scenario,
    /// The client's signing algorithm.
    pub alg: Alg,
    /// Only for the login scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_mode: Option<LoginMode>,
    /// The Latchkey under test.
    pub target: String,
    /// Virtual users.
    pub concurrency: usize,
    /// Accounts signed up for the run.
    pub users: usize,
    /// The fixed arrival rate asked for (flows/s), if any.
    pub rate: Option<f64>,
    /// Measured time in seconds (warm-up, setup and code minting excluded).
    pub duration_s: f64,
    /// Flows completed in the measured time.
    pub flows: u64,
    /// Flows per second of measured time.
    pub flows_per_sec: f64,
    /// Requests of those flows.
    pub requests: u64,
    /// Requests per second of measured time.
    pub requests_per_sec: f64,
    /// Latency of a whole flow (from its scheduled start when `rate` is set).
    pub latency_ms: Percentiles,
    /// Latency of each request, by step.
    pub steps: BTreeMap<&'static str, Percentiles>,
    /// Failed flows by `step: kind`.
    pub errors: BTreeMap<String, u64>,
    /// Server-side counts per completed flow, from `/metrics` (when reachable).
    pub server: Option<ServerCounts>,
    /// CPU time the generator used over the measured time, in cores (1.0 = one core busy).
    pub generator_cpu: Option<f64>,
}

impl Report {
    /// Builds the report from the merged recorder.
    pub fn build(
        options: &crate::Options,
        users: usize,
        mut recorder: Recorder,
        measured: Duration,
        server: Option<ServerCounts>,
        generator_cpu: Option<f64>,
    ) -> Report {
        let seconds = measured.as_secs_f64().max(1e-9);
        let flows = recorder.flows.len() as u64;
        let requests: u64 = recorder.steps.values().map(|v| v.len() as u64).sum();
        let steps = recorder.steps.iter_mut().map(|(step, values)| (*step, Percentiles::of(values))).collect();
        Report {
            scenario: options.scenario,
            alg: options.alg,
            login_mode: (options.scenario == Scenario::Login).then_some(options.login_mode),
            target: options.target.clone(),
            concurrency: options.concurrency,
            users,
            rate: options.rate,
            duration_s: seconds,
            flows,
            flows_per_sec: flows as f64 / seconds,
            requests,
            requests_per_sec: requests as f64 / seconds,
            latency_ms: Percentiles::of(&mut recorder.flows),
            steps,
            errors: recorder.errors,
            server,
            generator_cpu,
        }
    }

    /// Whether any flow failed.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The report as one JSON line.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).expect("a report serialises")
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mode = self.login_mode.map(|m| format!(", {m:?} sign-in").to_lowercase()).unwrap_or_default();
        let rate = self.rate.map(|r| format!(", fixed arrival rate {r}/s")).unwrap_or_default();
        let _ = writeln!(
            out,
            "scenario {:?}{mode}, {}, {} virtual users, {} accounts{rate}, {:.1} s measured",
            self.scenario, self.alg, self.concurrency, self.users, self.duration_s
        );
        let _ = writeln!(
            out,
            "{:>10} flows  {:>9.1} flows/s  {:>9.1} requests/s  {} failed",
            self.flows,
            self.flows_per_sec,
            self.requests_per_sec,
            self.errors.values().sum::<u64>()
        );
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "latency ms", "mean", "p50", "p90", "p99", "max", "count"
        );
        let mut row = |name: &str, p: &Percentiles| {
            let _ = writeln!(
                out,
                "{name:<12} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9}",
                p.mean, p.p50, p.p90, p.p99, p.max, p.count
            );
        };
        row("flow", &self.latency_ms);
        for (step, p) in &self.steps {
            row(&format!("  {step}"), p);
        }
        if let Some(server) = &self.server {
            let _ = writeln!(out, "server, per completed flow (from /metrics):");
            let _ = writeln!(
                out,
                "  {:.2} HTTP requests, {:.2} passkey sign-ins, {:.2} token responses",
                server.http_requests_per_flow, server.signins_per_flow, server.tokens_per_flow
            );
            for (series, per_flow) in &server.store_operations_per_flow {
                let _ = writeln!(out, "  {per_flow:.2} {series}");
            }
            if let Some(bytes) = server.memory_store_bytes_per_flow {
                let _ = writeln!(out, "  {bytes:.0} bytes of in-process store growth");
            }
            if let Some(cpu) = server.cpu_ms_per_flow {
                let _ = writeln!(out, "  {cpu:.3} ms of server CPU");
            }
            for (name, cpu) in &server.local_processes_cpu_ms_per_flow {
                let _ = writeln!(out, "  {cpu:.3} ms of CPU in local {name} processes");
            }
        }
        if let Some(cpu) = self.generator_cpu {
            let _ = writeln!(out, "generator CPU: {:.0} % of one core", cpu * 100.0);
            if generator_saturated(cpu) {
                let _ = writeln!(out, "note: the generator was near the limit of one core; the server may do more");
            }
        }
        for (kind, count) in &self.errors {
            let _ = writeln!(out, "error {count:>8} × {kind}");
        }
        out
    }
}

/// Whether the generator used so much of a core (`cpu` in cores) that it, not the server, may
/// have set the pace: its virtual users share one runtime, pinned to one core by `bench.sh`.
fn generator_saturated(cpu: f64) -> bool {
    cpu >= 0.9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_near_a_full_core_is_flagged() {
        assert!(generator_saturated(0.99));
        assert!(!generator_saturated(0.71));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut values: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&mut values);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(p.count, 100);
        assert_eq!(Percentiles::of(&mut []).count, 0);
    }
}
