//! The status page: the JSON document of `/api/v1/status` (everything the
//! page shows) and the page itself (`static/status.html`, embedded in the
//! binary). `http/routes.rs` only routes to these.

use crate::metrics::{Metrics, BUCKETS_US, OPS};
use crate::server::Server;
use mmc_wire::message::SegmentStat;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// The status page: HTML with its CSS and JavaScript inline; it loads
/// nothing else but `/api/v1/status`.
pub const PAGE: &str = include_str!("../static/status.html");

/// `used / capacity` in percent, two decimals; 0 for an empty capacity.
pub fn percent(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        (used as f64 * 10_000.0 / capacity as f64).round() / 100.0
    }
}

/// Upper bound in microseconds of the latency bucket holding quantile `q`
/// of one operation; `None` without requests or beyond the last bucket.
fn quantile_us(buckets: &[u64], count: u64, q: f64) -> Option<u64> {
    if count == 0 {
        return None;
    }
    let rank = ((count as f64) * q).ceil().max(1.0) as u64;
    let mut cum = 0;
    for (b, n) in buckets.iter().enumerate() {
        cum += n;
        if cum >= rank {
            return BUCKETS_US.get(b).copied();
        }
    }
    None
}

fn segment_json(s: &SegmentStat) -> Value {
    json!({
        "medium": s.medium.name(),
        "capacity": s.capacity,
        "used": s.used,
        "percent": percent(s.used, s.capacity),
        "objects": s.objects,
    })
}

/// Counters and latency summary of every control operation.
fn ops_json(m: &Metrics) -> Value {
    let ops = OPS
        .iter()
        .zip(m.ops.iter())
        .map(|(name, o)| {
            let requests = o.requests.load(Ordering::Relaxed);
            let buckets: Vec<u64> = o.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            let sum_us = o.sum_us.load(Ordering::Relaxed);
            json!({
                "op": name,
                "requests": requests,
                "failures": o.failures.load(Ordering::Relaxed),
                "keys": o.keys.load(Ordering::Relaxed),
                "latency_sum_us": sum_us,
                "latency_mean_us": if requests == 0 { 0.0 } else { sum_us as f64 / requests as f64 },
                "latency_p50_le_us": quantile_us(&buckets, requests, 0.5),
                "latency_p99_le_us": quantile_us(&buckets, requests, 0.99),
            })
        })
        .collect();
    Value::Array(ops)
}

/// The document of `/api/v1/status` (see docs/operations.md, "Status page
/// and mmc top").
pub fn status_json(server: &Server, role: &str) -> Value {
    let st = &server.state;
    let stat = st.stat();
    let (epoch, peers) = st.members();
    let members: Vec<Value> = peers
        .iter()
        .map(|p| {
            let segments: Vec<Value> = stat
                .segments
                .iter()
                .filter(|s| s.service_id == p.service_id)
                .map(segment_json)
                .collect();
            json!({
                "service_id": p.service_id,
                "host_id": p.host_id,
                // Exact also where JSON numbers are doubles (JavaScript).
                "host_id_hex": format!("{:016x}", p.host_id),
                "transfer_addr": p.transfer_addr,
                "segments": segments,
            })
        })
        .collect();
    let capacity: serde_json::Map<String, Value> = st
        .usage()
        .into_iter()
        .map(|(medium, (cap, used))| {
            (
                medium.to_string(),
                json!({ "capacity": cap, "used": used, "percent": percent(used, cap) }),
            )
        })
        .collect();
    let c = &st.counters;
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "role": role,
        "version": env!("CARGO_PKG_VERSION"),
        "time_ms": time_ms,
        "membership_epoch": epoch,
        "members": members,
        "keys": stat.keys,
        "leases_active": stat.leases_active,
        "evictions": c.evictions.load(Ordering::Relaxed),
        "evicted_bytes": c.evicted_bytes.load(Ordering::Relaxed),
        "put_timeouts": c.put_timeouts.load(Ordering::Relaxed),
        "dead_services": c.dead_services.load(Ordering::Relaxed),
        "capacity": capacity,
        "ops": ops_json(&server.metrics),
        "ledgers_pending": st.ledgers_pending(),
        "segments_recovering": st.segments_recovering(),
        "drains": st.drain_reports().iter().map(crate::http::drain_json).collect::<Vec<_>>(),
        "ha": server.role().map(|r| json!({
            "term": r.term(),
            "refused_not_leader": r.refused.load(Ordering::Relaxed),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_bucket_bound() {
        let mut b = vec![0u64; BUCKETS_US.len()];
        assert_eq!(quantile_us(&b, 0, 0.5), None);
        b[0] = 60; // <= 10us
        b[3] = 39; // <= 250us
        b[9] = 1; // <= 1s
        assert_eq!(quantile_us(&b, 100, 0.5), Some(10));
        assert_eq!(quantile_us(&b, 100, 0.99), Some(250));
        assert_eq!(quantile_us(&b, 100, 1.0), Some(1_000_000));
        // One request slower than the last bucket.
        assert_eq!(quantile_us(&b, 101, 1.0), None);
    }

    #[test]
    fn the_page_is_self_contained() {
        assert!(PAGE.contains("/api/v1/status"));
        assert!(PAGE.contains("sessionStorage"));
        for external in ["http://", "https://", "//cdn", "@import"] {
            assert!(!PAGE.contains(external), "the page references {external}");
        }
    }
}
