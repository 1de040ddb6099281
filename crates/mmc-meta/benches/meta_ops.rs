//! MetaService micro-benchmark: metadata operations per second on one core,
//! single and batched, with 1 M objects resident, and MetaService memory per
//! object. Runs the state machine in-process (no network), which is the
//! part of a request the MetaService itself spends time on.
//!
//! `cargo bench -p mmc-meta --bench meta_ops` (add `-- --quick` for a short run).

use criterion::{BatchSize, Criterion, Throughput};
use mmc_meta::clock::SystemClock;
use mmc_meta::state::AllocOutcome;
use mmc_meta::{MetaParams, MetaState};
use mmc_wire::message::{AllocItem, RegisterReq, SegmentDesc};
use mmc_wire::{Medium, ServiceId};
use std::hint::black_box;
use std::sync::Arc;

/// The allocator of the `mmc` binary, which runs the MetaService.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RESIDENT: usize = 1_000_000;
const BATCH: usize = 1024;
const SEGMENTS: usize = 4;

struct Fixture {
    state: MetaState,
    segs: Vec<ServiceId>,
    acked: Vec<u64>,
    /// Resident keys are `key(oldest)..key(next)`.
    oldest: usize,
    next: usize,
}

fn key(i: usize) -> String {
    format!("model-7b/layer-kv/{i:016x}")
}

impl Fixture {
    fn new() -> Self {
        let state = MetaState::new(MetaParams::default(), Arc::new(SystemClock::default()));
        let segs = (0..SEGMENTS)
            .map(|i| {
                let req = RegisterReq {
                    host_id: i as u64,
                    transfer_addr: format!("127.0.0.1:{}", 7000 + i),
                    // Bookkeeping only: the MetaService never touches segment memory.
                    segment: Some(SegmentDesc {
                        name: format!("seg{i}"),
                        medium: Medium::Dram,
                        size: 1 << 40,
                        nonce: 0,
                    }),
                    prev_service_id: None,
                    recovering: false,
                };
                state.register(&req).unwrap().0
            })
            .collect();
        Fixture {
            state,
            segs,
            acked: vec![0; SEGMENTS],
            oldest: 0,
            next: 0,
        }
    }

    fn fresh_keys(&mut self, n: usize) -> Vec<String> {
        let k = (self.next..self.next + n).map(key).collect();
        self.next += n;
        k
    }

    /// alloc + commit of `keys` (64 KiB objects), as one batch each.
    fn put(&mut self, keys: &[String]) {
        let writer = self.segs[self.next % SEGMENTS];
        let items: Vec<AllocItem> = keys
            .iter()
            .map(|k| AllocItem {
                key: k.clone(),
                size: 65536,
                replicas: 1,
                preferred: vec![],
            })
            .collect();
        for o in self.state.alloc(writer, &items) {
            assert!(matches!(o, AllocOutcome::Done(Ok(_))), "{o:?}");
        }
        for r in self.state.finish(writer, keys, &[]) {
            r.unwrap();
        }
    }

    /// What segment owners do continuously: pull and acknowledge ledger ops.
    fn ack_ledgers(&mut self) {
        for (i, &s) in self.segs.iter().enumerate() {
            let epoch = self.state.ledger_epoch(s).unwrap_or(0);
            while let Some((last, ops)) = self.state.ledger_poll(s, epoch, self.acked[i]) {
                self.acked[i] = last;
                if ops.is_empty() {
                    break;
                }
                if self
                    .state
                    .ledger_poll(s, epoch, last)
                    .is_some_and(|(_, o)| o.is_empty())
                {
                    break;
                }
            }
        }
    }

    fn fill(&mut self, n: usize) {
        while self.next < n {
            let keys = self.fresh_keys(BATCH.min(n - self.next));
            self.put(&keys);
            if self.next.is_multiple_of(64 * BATCH) {
                self.ack_ledgers();
            }
        }
        self.ack_ledgers();
    }

    fn resident_keys(&self, start: usize, n: usize) -> Vec<String> {
        let live = self.next - self.oldest;
        (start..start + n).map(|i| key(self.oldest + i % live)).collect()
    }

    /// Removes the `n` oldest objects (a cache in steady state drops as
    /// much as it adds).
    fn remove_oldest(&mut self, n: usize) {
        let keys: Vec<String> = (self.oldest..self.oldest + n).map(key).collect();
        for r in self.state.remove(&keys) {
            r.unwrap();
        }
        self.oldest += n;
        self.ack_ledgers();
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// MetaService memory per object beyond its key, from RSS growth.
fn memory_report() {
    let before = rss_bytes();
    let mut f = Fixture::new();
    f.fill(RESIDENT);
    let after = rss_bytes();
    let key_len = key(0).len() as u64;
    let per = (after - before) as f64 / RESIDENT as f64;
    println!(
        "memory: {} objects resident, RSS +{:.1} MiB = {:.0} bytes/object, {:.0} bytes/object beyond the {}-byte key",
        RESIDENT,
        (after - before) as f64 / (1 << 20) as f64,
        per,
        per - key_len as f64,
        key_len
    );
    black_box(&f.state);
}

fn benches(c: &mut Criterion) {
    let f = std::cell::RefCell::new(Fixture::new());
    f.borrow_mut().fill(RESIDENT);
    let mut cursor = 0usize;

    let mut g = c.benchmark_group("batched_1024");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("alloc_commit", |b| {
        b.iter_batched(
            || {
                // Untimed: keep RESIDENT objects resident.
                f.borrow_mut().remove_oldest(BATCH);
                f.borrow_mut().fresh_keys(BATCH)
            },
            |keys| {
                f.borrow_mut().put(&keys);
                f.borrow_mut().ack_ledgers();
                keys
            },
            BatchSize::PerIteration,
        )
    });
    let reader = f.borrow().segs[0];
    g.bench_function("lookup_release", |b| {
        b.iter_batched(
            || {
                cursor += BATCH;
                f.borrow_mut().resident_keys(cursor, BATCH)
            },
            |keys| {
                let (_, items) = f.borrow_mut().state.lookup(reader, &keys);
                let leases: Vec<(String, u64)> = keys
                    .iter()
                    .zip(&items)
                    .map(|(k, r)| (k.clone(), r.as_ref().unwrap().object_id))
                    .collect();
                f.borrow_mut().state.release_leases(reader, &leases);
                keys
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("exist", |b| {
        b.iter_batched(
            || {
                cursor += BATCH;
                f.borrow_mut().resident_keys(cursor, BATCH)
            },
            |keys| {
                assert!(f.borrow_mut().state.exist(&keys).iter().all(|&e| e));
                keys
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("remove", |b| {
        b.iter_batched(
            || {
                // Untimed: the removed objects are replaced by fresh ones
                // first, so RESIDENT stay resident.
                let keys = f.borrow_mut().fresh_keys(BATCH);
                f.borrow_mut().put(&keys);
                f.borrow_mut().ack_ledgers();
                let mut f = f.borrow_mut();
                let old = (f.oldest..f.oldest + BATCH).map(key).collect::<Vec<_>>();
                f.oldest += BATCH;
                old
            },
            |keys| {
                for r in f.borrow_mut().state.remove(&keys) {
                    r.unwrap();
                }
                f.borrow_mut().ack_ledgers();
                keys
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("single");
    g.throughput(Throughput::Elements(1));
    g.bench_function("alloc_commit", |b| {
        b.iter_batched(
            || {
                f.borrow_mut().remove_oldest(1);
                f.borrow_mut().fresh_keys(1)
            },
            |keys| {
                f.borrow_mut().put(&keys);
                keys
            },
            BatchSize::PerIteration,
        )
    });
    f.borrow_mut().ack_ledgers();
    g.bench_function("lookup", |b| {
        b.iter_batched(
            || {
                cursor += 1;
                f.borrow_mut().resident_keys(cursor, 1)
            },
            |keys| black_box(f.borrow_mut().state.lookup(reader, &keys)),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("exist", |b| {
        b.iter_batched(
            || {
                cursor += 1;
                f.borrow_mut().resident_keys(cursor, 1)
            },
            |keys| black_box(f.borrow_mut().state.exist(&keys)),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    memory_report();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
