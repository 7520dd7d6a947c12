//! The server's counters, rendered as Prometheus text for `GET /metrics`.
//!
//! Label values that come from clients are bounded: a code id is a label only once that
//! version loaded (at most [`MAX_CODE_ID_LABELS`] of them); any other id counts as `other`,
//! so a client cannot grow the metrics without bound by naming versions that do not exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The most distinct code ids that get a label of their own.
pub const MAX_CODE_ID_LABELS: usize = 256;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    /// (endpoint, code id, outcome) → count.
    requests: BTreeMap<(&'static str, String, String), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    loads: BTreeMap<String, u64>,
    known_ids: BTreeSet<String>,
}

/// What a client was sending too slowly when it was cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowPhase {
    /// The TLS handshake (`limits.header_read_timeout`).
    Handshake,
    /// A head: HTTP/1.1's first request head, HTTP/2's preface or a header block
    /// (`limits.header_read_timeout`).
    Head,
    /// A request body (`limits.body_timeout`).
    Body,
}

impl SlowPhase {
    const ALL: [SlowPhase; 3] = [SlowPhase::Handshake, SlowPhase::Head, SlowPhase::Body];

    fn as_str(self) -> &'static str {
        match self {
            SlowPhase::Handshake => "handshake",
            SlowPhase::Head => "head",
            SlowPhase::Body => "body",
        }
    }
}

/// Every counter of one server.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Requests being served now.
    pub in_flight: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections closed at once because `limits.max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Clients cut off for sending too slowly, by [`SlowPhase`].
    slow_clients: [AtomicU64; SlowPhase::ALL.len()],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The queue and worker figures of the service, read when `/metrics` is asked.
#[derive(Debug, Default)]
pub struct ServiceFigures {
    /// Executions queued.
    pub queued: usize,
    /// The bound on `queued`.
    pub capacity: usize,
    /// Workers up, respawning, down.
    pub workers: [(&'static str, usize); 3],
    /// Versions in the host's cache.
    pub cached_versions: usize,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one answered request of `endpoint` (`execute`, `batch`, `code`) for code id
    /// `code_id`, with `outcome` (`ok` or an error kind name), that took `took`.
    pub fn record(&self, endpoint: &'static str, code_id: &str, outcome: &str, took: Duration) {
        let mut g = self.lock();
        let id = if g.known_ids.contains(code_id) {
            code_id.to_string()
        } else {
            "other".to_string()
        };
        *g.requests
            .entry((endpoint, id, outcome.to_string()))
            .or_default() += 1;
        let h = g.latency.entry(endpoint).or_default();
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts one load with `outcome`; a successful one makes its version a known code id.
    pub fn record_load(&self, version: &str, outcome: &str) {
        let mut g = self.lock();
        *g.loads.entry(outcome.to_string()).or_default() += 1;
        if outcome == "ok" && g.known_ids.len() < MAX_CODE_ID_LABELS {
            g.known_ids.insert(version.to_string());
        }
    }

    /// Counts a client cut off for sending too slowly.
    pub fn record_slow(&self, phase: SlowPhase) {
        self.slow_clients[phase as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether any load succeeded.
    pub fn any_loaded(&self) -> bool {
        self.lock().loads.contains_key("ok")
    }

    /// The Prometheus text exposition.
    pub fn render(&self, service: &ServiceFigures) -> String {
        let g = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP roma_requests_total Requests answered, by endpoint, code id and outcome.\n",
        );
        out.push_str("# TYPE roma_requests_total counter\n");
        for ((endpoint, id, outcome), n) in &g.requests {
            let _ = writeln!(
                out,
                "roma_requests_total{{endpoint=\"{endpoint}\",code_id=\"{}\",outcome=\"{}\"}} {n}",
                escape(id),
                escape(outcome)
            );
        }
        out.push_str(
            "# HELP roma_request_duration_seconds Time from a request's arrival to its answer.\n",
        );
        out.push_str("# TYPE roma_request_duration_seconds histogram\n");
        for (endpoint, h) in &g.latency {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "roma_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "roma_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "roma_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "roma_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP roma_loads_total Code loads, by outcome.\n# TYPE roma_loads_total counter\n",
        );
        for (outcome, n) in &g.loads {
            let _ = writeln!(
                out,
                "roma_loads_total{{outcome=\"{}\"}} {n}",
                escape(outcome)
            );
        }
        drop(g);
        let gauges = [
            (
                "roma_in_flight",
                "Requests being served.",
                self.in_flight.load(Ordering::Relaxed) as usize,
            ),
            (
                "roma_queue_depth",
                "Executions waiting in the queues.",
                service.queued,
            ),
            (
                "roma_queue_capacity",
                "The bound on roma_queue_depth.",
                service.capacity,
            ),
            (
                "roma_cached_versions",
                "Code versions in the host's cache.",
                service.cached_versions,
            ),
            (
                "roma_connections_open",
                "Connections open.",
                self.connections_open.load(Ordering::Relaxed) as usize,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out.push_str(
            "# HELP roma_workers Worker processes, by health.\n# TYPE roma_workers gauge\n",
        );
        for (health, n) in service.workers {
            let _ = writeln!(out, "roma_workers{{health=\"{health}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP roma_connections_refused_total Connections closed because too many were open.\n\
             # TYPE roma_connections_refused_total counter\nroma_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP roma_slow_clients_total Connections and requests cut off because the client \
             sent too slowly, by what it was sending.\n# TYPE roma_slow_clients_total counter\n",
        );
        for phase in SlowPhase::ALL {
            let _ = writeln!(
                out,
                "roma_slow_clients_total{{phase=\"{}\"}} {}",
                phase.as_str(),
                self.slow_clients[phase as usize].load(Ordering::Relaxed)
            );
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ids_share_one_label_and_histograms_add_up() {
        let m = Metrics::default();
        m.record_load("v1", "ok");
        m.record("execute", "v1", "ok", Duration::from_millis(2));
        m.record("execute", "v1", "ok", Duration::from_millis(20));
        m.record(
            "execute",
            "nope\"",
            "version_not_found",
            Duration::from_micros(100),
        );
        let t = m.render(&ServiceFigures::default());
        assert!(
            t.contains(
                "roma_requests_total{endpoint=\"execute\",code_id=\"v1\",outcome=\"ok\"} 2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("code_id=\"other\",outcome=\"version_not_found\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "roma_request_duration_seconds_bucket{endpoint=\"execute\",le=\"0.0025\"} 2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("roma_request_duration_seconds_count{endpoint=\"execute\"} 3\n"),
            "{t}"
        );
        assert!(t.contains("roma_loads_total{outcome=\"ok\"} 1\n"), "{t}");
    }

    #[test]
    fn slow_clients_count_by_phase() {
        let m = Metrics::default();
        m.record_slow(SlowPhase::Body);
        m.record_slow(SlowPhase::Body);
        m.record_slow(SlowPhase::Handshake);
        let t = m.render(&ServiceFigures::default());
        assert!(
            t.contains("roma_slow_clients_total{phase=\"body\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("roma_slow_clients_total{phase=\"handshake\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("roma_slow_clients_total{phase=\"head\"} 0\n"),
            "{t}"
        );
    }
}
