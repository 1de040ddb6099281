//! The control-path table: the round-trip latency floor and small
//! operations, same host and across hosts.

use super::{k, us, Rows, Table};
use crate::rows::Kind;
use serde_json::{json, Value};

const KIB4: u64 = 4 << 10;
const MIB: u64 = 1 << 20;

/// Control path: the round-trip floor and small operations (p50, p99, ops/s);
/// the JSON `latency` rows.
pub(super) fn latency(r: &Rows<'_>, text: &mut String) -> Vec<Value> {
    let mut lat = Table::new(
        "Control path: round-trip latency floor and small operations (us)",
        &["what", "p50", "p99", "ops/s"],
    );
    let mut lat_json = Vec::new();
    for (id, what) in [
        (
            Kind::BatchRtt.one(),
            "raw TCP ping-pong, 64 B, two threads of one process (loopback)",
        ),
        (
            Kind::CrossRtt.one(),
            "raw TCP ping-pong, 64 B, between the two namespaces",
        ),
        (
            Kind::CrossExist1.one(),
            "MemCache exist x1 between the namespaces (one control RPC over TCP)",
        ),
        (
            Kind::CrossGet1.size(KIB4),
            "MemCache get_into 4 KiB x1 between the namespaces (Lookup RPC + TCP transfer)",
        ),
        (Kind::BatchExist1.size(KIB4), "MemCache exist x1 (one control RPC)"),
        (
            Kind::BatchPut1.size(KIB4),
            "MemCache put_from 4 KiB x1 (Alloc + Finish RPCs + memcpy)",
        ),
        (
            Kind::BatchGet1.size(KIB4),
            "MemCache get_into 4 KiB x1 (Lookup RPC + memcpy)",
        ),
        (Kind::ShmPut.size(MIB), "MemCache put_from 1 MiB"),
        (Kind::ShmGet.size(MIB), "MemCache get_into 1 MiB"),
        (Kind::MemcpyWsWrite.size(MIB), "memcpy 1 MiB (ws-write)"),
    ] {
        if let Some(row) = r.get(id) {
            lat.row(vec![
                what.into(),
                us(row.m.p50_us),
                us(row.m.p99_us),
                k(Some(row.m.ops as f64 / row.m.busy_s.max(1e-12))),
            ]);
            lat_json.push(json!({"id": id, "what": what, "p50_us": row.m.p50_us, "p99_us": row.m.p99_us}));
        }
    }
    if !lat_json.is_empty() {
        text.push_str(&lat.done());
    }
    lat_json
}
