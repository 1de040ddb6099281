//! The MetaService's metrics: request counters and latency histograms per
//! control operation (recorded lock-free on the request path), and their
//! Prometheus exposition. [`render_prometheus`] reads every value once into
//! a snapshot, registers the metric families on a `prometheus-client`
//! registry and encodes it in the Prometheus text format (0.0.4) that
//! `GET /metrics` serves.

use crate::state::MetaState;
use mmc_wire::message::SegmentStat;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
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
}

/// The `Content-Type` of [`render_prometheus`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Prometheus text (format 0.0.4) of every metric family: the
/// per-operation series of `metrics` and the cluster gauges of `state`,
/// both read now.
pub fn render_prometheus(metrics: &Metrics, state: &MetaState) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot::take(metrics, state)));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// Counters of one operation, read once.
#[derive(Debug)]
struct OpSnapshot {
    requests: u64,
    failures: u64,
    keys: u64,
    sum_us: u64,
    buckets: [u64; BUCKETS_US.len()],
}

/// Every value `/metrics` shows, read at one moment; the registry's
/// collector encodes the metric families from it.
#[derive(Debug)]
struct Snapshot {
    ops: Vec<OpSnapshot>,
    bad_frames: u64,
    connections: u64,
    ring_connections: u64,
    auth_failures_control: u64,
    auth_failures_http: u64,
    /// Open, refused and accept errors of the control port's limit.
    control_limit: Option<(u64, u64, u64)>,
    keys: u64,
    members: u64,
    segments: Vec<SegmentStat>,
    /// Medium name, capacity, used.
    media: Vec<(&'static str, u64, u64)>,
    evictions: u64,
    evicted_bytes: u64,
    put_timeouts: u64,
    dead_services: u64,
    leases_active: u64,
}

impl Snapshot {
    fn take(m: &Metrics, st: &MetaState) -> Self {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ops = m
            .ops
            .iter()
            .map(|o| OpSnapshot {
                requests: load(&o.requests),
                failures: load(&o.failures),
                keys: load(&o.keys),
                sum_us: load(&o.sum_us),
                buckets: std::array::from_fn(|b| load(&o.buckets[b])),
            })
            .collect();
        let stat = st.stat();
        let c = &st.counters;
        Snapshot {
            ops,
            bad_frames: load(&m.bad_frames),
            connections: load(&m.connections),
            ring_connections: load(&m.ring_connections),
            auth_failures_control: load(&m.auth_failures),
            auth_failures_http: load(&m.http_unauthorized),
            control_limit: m
                .control_limit
                .as_ref()
                .map(|l| (l.open() as u64, l.refused(), l.accept_errors())),
            keys: stat.keys,
            members: stat.members as u64,
            segments: stat.segments,
            media: st.usage().into_iter().map(|(m, (c, u))| (m, c, u)).collect(),
            evictions: load(&c.evictions),
            evicted_bytes: load(&c.evicted_bytes),
            put_timeouts: load(&c.put_timeouts),
            dead_services: load(&c.dead_services),
            leases_active: stat.leases_active,
        }
    }
}

/// Encodes one family without labels. Counter names are given without
/// `_total`: the encoder appends it (to the samples and the TYPE line).
fn single(enc: &mut DescriptorEncoder, name: &str, help: &str, kind: MetricType, v: u64) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        _ => m.encode_gauge(&v),
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        self.encode_requests(&mut enc)?;
        self.encode_connections(&mut enc)?;
        self.encode_contents(&mut enc)?;
        self.encode_housekeeping(&mut enc)
    }
}

/// The steps of [`Collector::encode`] for a [`Snapshot`], in the order of
/// the exposition.
impl Snapshot {
    /// Per operation: requests, failures, keys and latency.
    fn encode_requests(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use MetricType::{Counter, Histogram};
        let per_op = |enc: &mut DescriptorEncoder, name: &str, help: &str, f: fn(&OpSnapshot) -> u64| {
            let mut m = enc.encode_descriptor(name, help, None, Counter)?;
            for (op, s) in OPS.iter().zip(&self.ops) {
                m.encode_family(&[("op", *op)])?
                    .encode_counter::<NoLabelSet, _, u64>(&f(s), None)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        per_op(enc, "mmc_requests", "Control requests handled, by operation.", |s| {
            s.requests
        })?;
        per_op(
            enc,
            "mmc_request_failures",
            "Control requests answered with an error, by operation.",
            |s| s.failures,
        )?;
        per_op(
            enc,
            "mmc_request_keys",
            "Keys carried by control requests (batch sizes summed), by operation.",
            |s| s.keys,
        )?;
        let mut m = enc.encode_descriptor(
            "mmc_request_latency_seconds",
            "Time to handle a control request, by operation.",
            None,
            Histogram,
        )?;
        for (op, s) in OPS.iter().zip(&self.ops) {
            let buckets: Vec<(f64, u64)> = BUCKETS_US
                .iter()
                .zip(s.buckets)
                .map(|(le, n)| (*le as f64 / 1e6, n))
                .collect();
            m.encode_family(&[("op", *op)])?.encode_histogram::<NoLabelSet>(
                s.sum_us as f64 / 1e6,
                s.requests,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }

    /// The control port: bad frames, connections, failed authentications and
    /// the connection limit.
    fn encode_connections(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use MetricType::{Counter, Gauge};
        single(
            enc,
            "mmc_bad_frames",
            "Malformed control frames received.",
            Counter,
            self.bad_frames,
        )?;
        single(
            enc,
            "mmc_connections",
            "Control connections accepted.",
            Counter,
            self.connections,
        )?;
        single(
            enc,
            "mmc_ring_connections",
            "Control connections moved to a shared-memory ring.",
            Counter,
            self.ring_connections,
        )?;
        let mut m = enc.encode_descriptor(
            "mmc_auth_failures",
            "Failed authentications: control handshakes, HTTP requests answered 401.",
            None,
            Counter,
        )?;
        for (port, v) in [
            ("control", self.auth_failures_control),
            ("http", self.auth_failures_http),
        ] {
            m.encode_family(&[("port", port)])?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        if let Some((open, refused, accept_errors)) = self.control_limit {
            single(
                enc,
                "mmc_connections_open",
                "Control connections open now.",
                Gauge,
                open,
            )?;
            single(
                enc,
                "mmc_connections_refused",
                "Control connections refused by meta.max_connections.",
                Counter,
                refused,
            )?;
            single(
                enc,
                "mmc_accept_errors",
                "Failed accepts on the control port (retried).",
                Counter,
                accept_errors,
            )?;
        }
        Ok(())
    }

    /// What is stored: keys, members, segments and media.
    fn encode_contents(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use MetricType::Gauge;
        single(enc, "mmc_keys", "Readable keys stored.", Gauge, self.keys)?;
        single(
            enc,
            "mmc_members_alive",
            "LocalServices registered and alive.",
            Gauge,
            self.members,
        )?;
        let per_segment = |enc: &mut DescriptorEncoder, name: &str, help: &str, f: fn(&SegmentStat) -> u64| {
            let mut m = enc.encode_descriptor(name, help, None, Gauge)?;
            for s in &self.segments {
                let labels = [
                    ("service", s.service_id.to_string()),
                    ("medium", s.medium.name().to_string()),
                ];
                m.encode_family(&labels)?.encode_gauge(&f(s))?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        per_segment(enc, "mmc_segment_capacity_bytes", "Segment capacity in bytes.", |s| {
            s.capacity
        })?;
        per_segment(enc, "mmc_segment_used_bytes", "Segment bytes in use.", |s| s.used)?;
        per_segment(
            enc,
            "mmc_segment_objects",
            "Committed replicas stored in the segment.",
            |s| s.objects,
        )?;
        for (name, help, used) in [
            (
                "mmc_medium_capacity_bytes",
                "Capacity of all segments of a medium in bytes.",
                false,
            ),
            (
                "mmc_medium_used_bytes",
                "Bytes in use over all segments of a medium.",
                true,
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, Gauge)?;
            for (medium, cap, u) in &self.media {
                m.encode_family(&[("medium", *medium)])?
                    .encode_gauge(if used { u } else { cap })?;
            }
        }
        Ok(())
    }

    /// Evictions, put timeouts, dead services and active leases.
    fn encode_housekeeping(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        use MetricType::{Counter, Gauge};
        single(enc, "mmc_evictions", "Objects evicted.", Counter, self.evictions)?;
        single(enc, "mmc_evicted_bytes", "Bytes evicted.", Counter, self.evicted_bytes)?;
        single(
            enc,
            "mmc_put_timeouts",
            "Writes reclaimed for not committing within put_timeout.",
            Counter,
            self.put_timeouts,
        )?;
        single(
            enc,
            "mmc_dead_services",
            "LocalServices removed (heartbeat timeout or unregister).",
            Counter,
            self.dead_services,
        )?;
        single(
            enc,
            "mmc_leases_active",
            "Objects with an active read lease.",
            Gauge,
            self.leases_active,
        )
    }
}
