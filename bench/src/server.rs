//! What the server says about the run: `/metrics` (Prometheus text) read before and after, and
//! the counters' growth divided by the flows completed — sign-ins, token responses, HTTP
//! requests and, where Latchkey counts them, store operations
//! (`latchkey_store_operations_total{store,operation}`) and the in-process store's growth in
//! bytes (`latchkey_memory_store_bytes`, a gauge). Read at the same moments: the CPU time of
//! watched local processes ([`crate::procstat`]), such as the PostgreSQL and Redis the server
//! uses.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    agent::{Agent, Jar, StepTimes},
    procstat,
};

/// The server process's CPU time (a standard process metric, not `latchkey_` prefixed).
const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";

/// The gauge of the in-process store's size.
const MEMORY_STORE_BYTES: &str = "latchkey_memory_store_bytes";

/// The series of a watched local process's CPU time, in seconds: `<this>{process="name"}`.
const LOCAL_PROCESS_CPU_SECONDS: &str = "local_process_cpu_seconds";

/// Counter values (and the store-size gauge) by series (`name{labels}`).
#[derive(Clone, Debug, Default)]
pub struct Counters(BTreeMap<String, f64>);

impl Counters {
    /// Reads `/metrics`, and the CPU time of the local processes named in `watched`; `None`
    /// when `/metrics` is not served.
    pub async fn scrape(agent: &Agent, watched: &[String]) -> Option<Counters> {
        let answer = agent.get("metrics", "/metrics", &mut Jar::default(), &mut StepTimes::new()).await.ok()?;
        if !answer.status.is_success() {
            return None;
        }
        let mut counters = Counters::parse(&answer.body);
        for (name, cpu) in procstat::by_name(watched) {
            counters.0.insert(format!("{LOCAL_PROCESS_CPU_SECONDS}{{process=\"{name}\"}}"), cpu.as_secs_f64());
        }
        Some(counters)
    }

    /// Parses the Prometheus text format (counters and the store-size gauge; histograms' buckets
    /// are skipped).
    pub fn parse(text: &str) -> Counters {
        let series = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse::<f64>().ok()?))
            })
            .filter(|(series, _)| {
                (series.starts_with("latchkey_") && (series.contains("_total") || series == MEMORY_STORE_BYTES))
                    || series == PROCESS_CPU_SECONDS
            })
            .collect();
        Counters(series)
    }

    fn sum(&self, prefix: &str, filter: impl Fn(&str) -> bool) -> f64 {
        self.0.iter().filter(|(series, _)| series.starts_with(prefix) && filter(series)).map(|(_, v)| v).sum()
    }
}

/// Server-side counts per completed flow.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerCounts {
    /// Flows the counts are divided by (warm-up included, failed flows excluded).
    pub flows: u64,
    /// `latchkey_http_requests_total` growth (scrapes of `/metrics` excluded).
    pub http_requests_per_flow: f64,
    /// Successful sign-ins (`latchkey_signins_total{outcome="success"}`).
    pub signins_per_flow: f64,
    /// Token responses (`latchkey_tokens_issued_total`).
    pub tokens_per_flow: f64,
    /// `latchkey_store_operations_total` by labels, when the server counts them.
    pub store_operations_per_flow: BTreeMap<String, f64>,
    /// Growth of the in-process store in bytes (absent with Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_store_bytes_per_flow: Option<f64>,
    /// Server CPU time (user + system) per flow in milliseconds, warm-up included (absent when
    /// the server does not report `process_cpu_seconds_total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_flow: Option<f64>,
    /// CPU time per flow in milliseconds of each watched local process name (all its
    /// processes together), measured over the same time as the server's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub local_processes_cpu_ms_per_flow: BTreeMap<String, f64>,
}

impl Counters {
    /// How much each series grew since `before` (series new since then count from zero).
    pub fn growth_since(&self, before: &Counters) -> Counters {
        Counters(
            self.0
                .iter()
                .map(|(series, value)| (series.clone(), value - before.0.get(series).copied().unwrap_or(0.0)))
                .collect(),
        )
    }

    /// Adds `other`'s values series by series.
    pub fn add(&mut self, other: &Counters) {
        for (series, value) in &other.0 {
            *self.0.entry(series.clone()).or_default() += value;
        }
    }
}

impl ServerCounts {
    /// Counter growth `growth` per flow, for `flows` completed flows. The scrapes of
    /// `/metrics` themselves are not counted as requests.
    pub fn of(growth: &Counters, flows: u64) -> ServerCounts {
        let per_flow = |value: f64| if flows == 0 { 0.0 } else { value / flows as f64 };
        let requests = growth.sum("latchkey_http_requests_total", |s| !s.contains("route=\"/metrics\""));
        let signins = growth.sum("latchkey_signins_total", |s| s.contains("outcome=\"success\""));
        let tokens = growth.sum("latchkey_tokens_issued_total", |_| true);
        let store_operations = growth
            .0
            .iter()
            .filter_map(|(series, value)| {
                let labels = series.strip_prefix("latchkey_store_operations_total")?;
                Some((labels.to_owned(), per_flow(*value)))
            })
            .collect();
        ServerCounts {
            flows,
            http_requests_per_flow: per_flow(requests),
            signins_per_flow: per_flow(signins),
            tokens_per_flow: per_flow(tokens),
            store_operations_per_flow: store_operations,
            memory_store_bytes_per_flow: growth.0.get(MEMORY_STORE_BYTES).map(|bytes| per_flow(*bytes)),
            cpu_ms_per_flow: growth.0.get(PROCESS_CPU_SECONDS).map(|seconds| per_flow(seconds * 1000.0)),
            local_processes_cpu_ms_per_flow: growth
                .0
                .iter()
                .filter_map(|(series, seconds)| {
                    let name = series.strip_prefix(LOCAL_PROCESS_CPU_SECONDS)?.strip_prefix("{process=\"")?;
                    Some((name.strip_suffix("\"}")?.to_owned(), per_flow(seconds * 1000.0)))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_grow_per_flow() {
        let before = Counters::parse(
            "# TYPE latchkey_signins_total counter\n\
             latchkey_signins_total{method=\"passkey\",outcome=\"success\"} 10\n\
             latchkey_http_requests_total{route=\"/token\",method=\"POST\",status=\"200\"} 5\n\
             latchkey_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 1\n\
             process_cpu_seconds_total 1.5\n",
        );
        let after = Counters::parse(
            "latchkey_signins_total{method=\"passkey\",outcome=\"success\"} 30\n\
             latchkey_signins_total{method=\"passkey\",outcome=\"failure\"} 3\n\
             latchkey_http_requests_total{route=\"/token\",method=\"POST\",status=\"200\"} 25\n\
             latchkey_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 2\n\
             latchkey_store_operations_total{store=\"database\",operation=\"write\"} 40\n\
             latchkey_memory_store_bytes 12000\n\
             latchkey_http_request_duration_seconds_bucket{le=\"0.1\"} 7\n\
             process_cpu_seconds_total 1.52\n\
             process_resident_memory_bytes 9000\n",
        );
        let counts = ServerCounts::of(&after.growth_since(&before), 20);
        assert_eq!(counts.signins_per_flow, 1.0);
        assert_eq!(counts.http_requests_per_flow, 1.0);
        assert_eq!(counts.store_operations_per_flow["{store=\"database\",operation=\"write\"}"], 2.0);
        assert_eq!(counts.memory_store_bytes_per_flow, Some(600.0), "a series new since counts from zero");
        let cpu = counts.cpu_ms_per_flow.expect("the server's CPU time is read");
        assert!((cpu - 1.0).abs() < 1e-9, "20 ms of CPU over 20 flows: {cpu}");
        assert!(counts.local_processes_cpu_ms_per_flow.is_empty(), "no process was watched");
    }

    #[test]
    fn watched_processes_cpu_grows_per_flow() {
        let postgres = |seconds: f64| {
            Counters(BTreeMap::from([(format!("{LOCAL_PROCESS_CPU_SECONDS}{{process=\"postgres\"}}"), seconds)]))
        };
        let counts = ServerCounts::of(&postgres(3.5).growth_since(&postgres(2.0)), 1000);
        assert_eq!(counts.local_processes_cpu_ms_per_flow.keys().collect::<Vec<_>>(), ["postgres"]);
        let cpu = counts.local_processes_cpu_ms_per_flow["postgres"];
        assert!((cpu - 1.5).abs() < 1e-9, "1.5 s of CPU over 1,000 flows: {cpu}");
    }
}
