//! Request counters and latency histograms per control operation, rendered
//! in the Prometheus text format by the HTTP endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
pub const BUCKETS_US: [u64; 10] = [10, 50, 100, 250, 500, 1_000, 5_000, 25_000, 100_000, 1_000_000];

pub const OPS: [&str; 21] = [
    "register",
    "recover",
    "heartbeat",
    "ledger_poll",
    "unregister",
    "alloc",
    "finish",
    "lookup",
    "release_leases",
    "exist",
    "key_info",
    "remove",
    "remove_all",
    "members",
    "stat",
    "list_keys",
    "attach_ring",
    "drain",
    "drain_status",
    "drain_plan",
    "drain_commit",
];

#[derive(Default)]
pub struct OpMetrics {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Keys carried by the requests (batch size summed).
    pub keys: AtomicU64,
    pub sum_us: AtomicU64,
    pub buckets: [AtomicU64; BUCKETS_US.len()],
}

#[derive(Default)]
pub struct Metrics {
    pub ops: [OpMetrics; OPS.len()],
    pub bad_frames: AtomicU64,
    pub connections: AtomicU64,
    /// Connections whose frames moved to a shared-memory ring.
    pub ring_connections: AtomicU64,
    /// Control connections closed because the cluster-token handshake failed.
    pub auth_failures: AtomicU64,
    /// HTTP requests answered 401 (missing or wrong bearer token).
    pub http_unauthorized: AtomicU64,
    /// The control port's connection limit (open, refused, accept errors).
    pub control_limit: Option<std::sync::Arc<mmc_wire::listen::ConnLimit>>,
}

impl Metrics {
    pub fn op_index(name: &str) -> usize {
        OPS.iter().position(|o| *o == name).expect("known op")
    }

    pub fn record(&self, op: usize, keys: usize, failed: bool, took: Duration) {
        let m = &self.ops[op];
        m.requests.fetch_add(1, Ordering::Relaxed);
        m.keys.fetch_add(keys as u64, Ordering::Relaxed);
        if failed {
            m.failures.fetch_add(1, Ordering::Relaxed);
        }
        let us = took.as_micros() as u64;
        m.sum_us.fetch_add(us, Ordering::Relaxed);
        if let Some(b) = BUCKETS_US.iter().position(|&b| us <= b) {
            m.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends the per-operation series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# TYPE mmc_requests_total counter");
        for (i, name) in OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "mmc_requests_total{{op=\"{name}\"}} {}",
                self.ops[i].requests.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE mmc_request_failures_total counter");
        for (i, name) in OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "mmc_request_failures_total{{op=\"{name}\"}} {}",
                self.ops[i].failures.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE mmc_request_keys_total counter");
        for (i, name) in OPS.iter().enumerate() {
            let _ = writeln!(
                out,
                "mmc_request_keys_total{{op=\"{name}\"}} {}",
                self.ops[i].keys.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE mmc_request_latency_seconds histogram");
        for (i, name) in OPS.iter().enumerate() {
            let m = &self.ops[i];
            let mut cum = 0;
            for (b, le) in BUCKETS_US.iter().enumerate() {
                cum += m.buckets[b].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "mmc_request_latency_seconds_bucket{{op=\"{name}\",le=\"{}\"}} {cum}",
                    *le as f64 / 1e6
                );
            }
            let count = m.requests.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "mmc_request_latency_seconds_bucket{{op=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "mmc_request_latency_seconds_sum{{op=\"{name}\"}} {}",
                m.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "mmc_request_latency_seconds_count{{op=\"{name}\"}} {count}");
        }
        let _ = writeln!(out, "# TYPE mmc_bad_frames_total counter");
        let _ = writeln!(out, "mmc_bad_frames_total {}", self.bad_frames.load(Ordering::Relaxed));
        let _ = writeln!(out, "# TYPE mmc_connections_total counter");
        let _ = writeln!(
            out,
            "mmc_connections_total {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE mmc_ring_connections_total counter");
        let _ = writeln!(
            out,
            "mmc_ring_connections_total {}",
            self.ring_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE mmc_auth_failures_total counter");
        let _ = writeln!(
            out,
            "mmc_auth_failures_total{{port=\"control\"}} {}",
            self.auth_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "mmc_auth_failures_total{{port=\"http\"}} {}",
            self.http_unauthorized.load(Ordering::Relaxed)
        );
        if let Some(l) = &self.control_limit {
            let _ = writeln!(out, "# TYPE mmc_connections_open gauge");
            let _ = writeln!(out, "mmc_connections_open {}", l.open());
            let _ = writeln!(out, "# TYPE mmc_connections_refused_total counter");
            let _ = writeln!(out, "mmc_connections_refused_total {}", l.refused());
            let _ = writeln!(out, "# TYPE mmc_accept_errors_total counter");
            let _ = writeln!(out, "mmc_accept_errors_total {}", l.accept_errors());
        }
    }
}
