//! Tests of the MetaService state machine (`MetaState`) through its public
//! methods only, with a hand-driven clock.
//!
//! Protocol detail the tests rely on: the space of a committed object that is
//! removed or evicted returns to the allocator only once the segment owner
//! acknowledges the ledger `Del`; [`ack`] plays the owner's part (one poll to
//! learn the last sequence number, one to acknowledge it).

use mmc_meta::clock::ManualClock;
use mmc_meta::object::Replica;
use mmc_meta::state::{AllocOutcome, MetaParams, MetaState};
use mmc_wire::message::{AllocItem, LedgerEntry, LedgerOp, RegisterReq, SegmentDesc};
use mmc_wire::{Error, ErrorKind, Medium, Result, ServiceId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

// ---- helpers ----------------------------------------------------------------

fn params() -> MetaParams {
    MetaParams {
        lease_ms: 1_000,
        put_timeout_ms: 5_000,
        heartbeat_timeout_ms: 1_000_000,
        high_watermark: 100,
        low_watermark: 90,
    }
}

fn new_state(p: MetaParams) -> (Arc<ManualClock>, MetaState) {
    let clock = Arc::new(ManualClock::default());
    let st = MetaState::new(p, clock.clone());
    (clock, st)
}

fn seg_req(host: u64, size: u64) -> RegisterReq {
    RegisterReq {
        host_id: host,
        transfer_addr: format!("10.0.0.{host}:7000"),
        segment: Some(SegmentDesc {
            name: format!("seg{host}"),
            medium: Medium::Dram,
            size,
            nonce: 0,
        }),
        prev_service_id: None,
        recovering: false,
    }
}

/// Registers a memory-providing LocalService.
fn reg(st: &MetaState, host: u64, size: u64) -> ServiceId {
    st.register(&seg_req(host, size)).expect("register").0
}

/// Registers a LocalService that provides no memory (a pure client).
fn reg_client(st: &MetaState, host: u64) -> ServiceId {
    let req = RegisterReq {
        host_id: host,
        transfer_addr: String::new(),
        segment: None,
        prev_service_id: None,
        recovering: false,
    };
    st.register(&req).expect("register client").0
}

fn item(key: &str, size: u64, replicas: u32, preferred: &[ServiceId]) -> AllocItem {
    AllocItem {
        key: key.to_owned(),
        size,
        replicas,
        preferred: preferred.to_vec(),
    }
}

fn keys(ks: &[&str]) -> Vec<String> {
    ks.iter().map(|k| k.to_string()).collect()
}

fn k(s: &str) -> Vec<String> {
    vec![s.to_owned()]
}

/// One alloc attempt for one item (no retry).
fn alloc_once(st: &MetaState, writer: ServiceId, it: AllocItem) -> AllocOutcome {
    let mut out = st.alloc(writer, std::slice::from_ref(&it));
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

/// Allocates like the server does: on `WaitSpace`, lets every segment owner
/// acknowledge its ledger and tries again. Returns the result and how many
/// times it had to wait. Panics if it never settles.
fn alloc_retry(st: &MetaState, writer: ServiceId, it: AllocItem) -> (Result<Vec<Replica>>, usize) {
    for waits in 0..16 {
        match alloc_once(st, writer, it.clone()) {
            AllocOutcome::Done(r) => return (r, waits),
            AllocOutcome::WaitSpace => ack_everyone(st),
        }
    }
    panic!("alloc of {} kept answering WaitSpace", it.key);
}

fn alloc(st: &MetaState, writer: ServiceId, it: AllocItem) -> Result<Vec<Replica>> {
    alloc_retry(st, writer, it).0
}

/// Allocates and commits; returns the replicas.
fn put(st: &MetaState, writer: ServiceId, it: AllocItem) -> Vec<Replica> {
    let key = it.key.clone();
    let reps = alloc(st, writer, it).unwrap_or_else(|e| panic!("alloc {key}: {e:?}"));
    assert_eq!(st.finish(writer, &k(&key), &[]), vec![Ok(())], "commit {key}");
    reps
}

/// Plays the segment owner: fetches pending ledger ops and acknowledges them.
fn ack(st: &MetaState, id: ServiceId) -> Vec<LedgerOp> {
    let epoch = st.ledger_epoch(id).expect("a provider");
    let (last, ops) = st.ledger_poll(id, epoch, 0).expect("known service");
    let (_, rest) = st.ledger_poll(id, epoch, last).expect("known service");
    assert!(rest.is_empty(), "everything acknowledged");
    ops
}

fn ack_everyone(st: &MetaState) {
    for p in st.members().1 {
        if p.segment.is_some() {
            ack(st, p.service_id);
        }
    }
}

fn used(st: &MetaState, id: ServiceId) -> u64 {
    st.stat()
        .segments
        .iter()
        .find(|s| s.service_id == id)
        .expect("segment")
        .used
}

fn objects(st: &MetaState, id: ServiceId) -> u64 {
    st.stat()
        .segments
        .iter()
        .find(|s| s.service_id == id)
        .expect("segment")
        .objects
}

/// Committed, without counting as an access (key_info does not touch LRU).
fn present(st: &MetaState, key: &str) -> bool {
    st.key_info(&k(key)).pop().unwrap().is_ok()
}

/// A replica's location: (service, offset).
type Loc = (ServiceId, u64);
/// What a lookup found: (object id, size, replica locations).
type Found = (u64, u64, Vec<Loc>);

/// Lookup of one key: (object id, size, [(service, offset)]).
fn lookup1(st: &MetaState, reader: ServiceId, key: &str) -> Result<Found> {
    let (peers, mut items) = st.lookup(reader, &k(key));
    let loc = items.pop().unwrap()?;
    let reps = loc
        .replicas
        .iter()
        .map(|p| (peers[p.peer as usize].service_id, p.offset))
        .collect();
    Ok((loc.object_id, loc.size, reps))
}

fn services(reps: &[Replica]) -> Vec<ServiceId> {
    reps.iter().map(|r| r.service).collect()
}

fn is_invalid(r: &Result<Vec<Replica>>) -> bool {
    matches!(r, Err(ref e) if e.kind() == ErrorKind::InvalidParam)
}

/// Too few live, allocatable segments: the retryable NO_PROVIDER.
fn is_no_provider(r: &Result<Vec<Replica>>) -> bool {
    matches!(r, Err(ref e) if e.kind() == ErrorKind::NoProvider && e.is_retryable())
}

// ---- put lifecycle -------------------------------------------------------------

#[test]
fn put_lifecycle_alloc_writing_commit_readable() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let reader = reg_client(&st, 9);

    let reps = alloc(&st, a, item("k", 10_000, 1, &[])).unwrap();
    assert_eq!(reps, vec![Replica { service: a, offset: 0 }]);
    assert_eq!(used(&st, a), 3 * PAGE, "10000 bytes round up to three pages");

    // WRITING: invisible to readers.
    assert_eq!(st.exist(&k("k")), vec![false]);
    assert_eq!(
        lookup1(&st, reader, "k").unwrap_err(),
        Error::from(ErrorKind::ObjectNotExists)
    );
    assert_eq!(
        st.key_info(&k("k")).pop().unwrap().unwrap_err(),
        Error::from(ErrorKind::ObjectNotExists)
    );
    assert_eq!(st.remove(&k("k")), vec![Err(Error::from(ErrorKind::UnmatchedKey))]);
    assert_eq!(st.stat().keys, 0);
    assert_eq!(st.list_keys(None, 10), (vec![], None));
    assert_eq!(st.stat().leases_active, 0, "a failed lookup grants no lease");
    // Duplicate while being written.
    assert_eq!(
        alloc(&st, a, item("k", 10_000, 1, &[])).unwrap_err(),
        Error::from(ErrorKind::DuplicatedObject)
    );
    assert_eq!(
        alloc(&st, reader, item("k", 1, 1, &[])).unwrap_err(),
        Error::from(ErrorKind::DuplicatedObject)
    );
    assert_eq!(used(&st, a), 3 * PAGE, "a refused duplicate allocates nothing");
    assert_eq!(objects(&st, a), 0);
    assert!(ack(&st, a).is_empty(), "nothing in the ledger before commit");

    // Commit by someone other than the writer is refused and changes nothing.
    assert!(matches!(st.finish(reader, &k("k"), &[]).pop().unwrap(), Err(ref e) if e.kind() == ErrorKind::Timeout));
    assert_eq!(st.exist(&k("k")), vec![false]);

    assert_eq!(st.finish(a, &k("k"), &[]), vec![Ok(())]);
    assert_eq!(st.exist(&k("k")), vec![true]);
    let (id, size, locs) = lookup1(&st, reader, "k").unwrap();
    assert!(id > 0);
    assert_eq!((size, locs), (10_000, vec![(a, 0)]));
    let info = st.key_info(&k("k")).pop().unwrap().unwrap();
    assert_eq!(info.size, 10_000);
    assert_eq!(info.replicas, vec![(a, Medium::Dram)]);
    let stat = st.stat();
    assert_eq!((stat.keys, stat.members, stat.leases_active), (1, 2, 1));
    assert_eq!(objects(&st, a), 1);
    assert_eq!(
        ack(&st, a),
        vec![LedgerOp::Add(LedgerEntry {
            key: "k".into(),
            offset: 0,
            size: 10_000,
            object_id: id,
        })],
        "commit records the replica in the owner's ledger"
    );
    // A second commit of an already committed key is an error.
    assert!(st.finish(a, &k("k"), &[]).pop().unwrap().is_err());

    // Duplicate of a committed key.
    assert_eq!(
        alloc(&st, a, item("k", 10, 1, &[])).unwrap_err(),
        Error::from(ErrorKind::DuplicatedObject)
    );
    assert_eq!(used(&st, a), 3 * PAGE);
}

#[test]
fn revoke_frees_space_at_once() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);

    put(&st, a, item("keep", PAGE, 1, &[]));
    let reps = alloc(&st, a, item("r", 5_000, 2, &[])).unwrap();
    assert_eq!(services(&reps), vec![a, b]);
    assert_eq!((used(&st, a), used(&st, b)), (3 * PAGE, 2 * PAGE));

    // Revoke by another writer does nothing.
    assert!(st.finish(b, &[], &k("r")).is_empty());
    assert_eq!((used(&st, a), used(&st, b)), (3 * PAGE, 2 * PAGE));
    // Revoke of a committed key does nothing either.
    st.finish(a, &[], &k("keep"));
    assert!(present(&st, "keep"));

    assert!(st.finish(a, &[], &k("r")).is_empty());
    assert_eq!(
        (used(&st, a), used(&st, b)),
        (PAGE, 0),
        "revoked space is back without any ledger ack"
    );
    assert_eq!(st.exist(&k("r")), vec![false]);
    assert!(
        matches!(st.finish(a, &k("r"), &[]).pop().unwrap(), Err(ref e) if e.kind() == ErrorKind::Timeout),
        "commit after revoke"
    );
    assert!(ack(&st, b).is_empty(), "a revoked write never reaches the ledger");

    // The key is free again, and the freed range is reused.
    let again = alloc(&st, a, item("r", 5_000, 2, &[])).unwrap();
    assert_eq!(again, reps);
    // Commit and revoke in one call.
    let _ = alloc(&st, a, item("r2", 1, 1, &[])).unwrap();
    assert_eq!(st.finish(a, &k("r"), &k("r2")), vec![Ok(())]);
    assert!(present(&st, "r"));
    assert_eq!(st.exist(&k("r2")), vec![false]);
    assert_eq!((used(&st, a), used(&st, b)), (3 * PAGE, 2 * PAGE));
}

#[test]
fn alloc_rejects_bad_requests() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);

    assert!(is_invalid(&alloc(&st, a, item("", 10, 1, &[]))), "empty key");
    assert!(
        is_invalid(&alloc(&st, a, item(&"x".repeat(257), 10, 1, &[]))),
        "key too long"
    );
    assert!(
        alloc(&st, a, item(&"x".repeat(256), 10, 1, &[])).is_ok(),
        "256-byte key is fine"
    );
    assert!(is_invalid(&alloc(&st, a, item("z", 0, 1, &[]))), "size 0");
    assert!(is_invalid(&alloc(&st, a, item("z", 10, 0, &[]))), "0 replicas");
    assert!(is_invalid(&alloc(&st, a, item("z", 10, 9, &[]))), "9 replicas");
    match alloc(&st, a, item("z", MIB + 1, 1, &[])) {
        Err(ref e) if e.kind() == ErrorKind::InvalidParam => {
            assert!(e.message().contains("exceeds the largest segment"), "{e}")
        }
        other => panic!("oversized object: {other:?}"),
    }
    assert!(
        matches!(alloc(&st, 4242, item("z", 10, 1, &[])), Err(ref e) if e.kind() == ErrorKind::NotConnectedMeta),
        "unknown writer"
    );
    assert_eq!(used(&st, a), PAGE, "only the valid alloc took space");

    // A batch gets one outcome per item, in order.
    let out = st.alloc(a, &[item("b1", 1, 1, &[]), item("", 1, 1, &[]), item("b1", 1, 1, &[])]);
    assert!(matches!(&out[0], AllocOutcome::Done(Ok(_))));
    assert!(matches!(&out[1], AllocOutcome::Done(Err(ref e)) if e.kind() == ErrorKind::InvalidParam));
    assert!(matches!(&out[2], AllocOutcome::Done(Err(ref e)) if e.kind() == ErrorKind::DuplicatedObject));
}

#[test]
fn sizes_near_u64_max_are_refused_and_harm_no_real_object() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    // These used to round up to 0 bytes at offset 0, which the next real
    // object received too; removing the bogus key then queued a ledger
    // delete that erased the real object's entry.
    for size in [u64::MAX, u64::MAX - 4094, u64::MAX - 4095, 1 << 63] {
        match alloc(&st, a, item("bogus", size, 1, &[])) {
            Err(ref e) if e.kind() == ErrorKind::InvalidParam => {
                assert!(e.message().contains(&size.to_string()), "names the size: {e}");
                assert!(e.message().contains(&MIB.to_string()), "names the cap: {e}");
            }
            other => panic!("size {size}: {other:?}"),
        }
        // Several replicas of a huge size must not overflow either.
        assert!(
            is_invalid(&alloc(&st, a, item("bogus", size, 8, &[]))),
            "size {size} x 8"
        );
    }
    assert_eq!(used(&st, a), 0);
    assert!(!present(&st, "bogus"));
    let reps = put(&st, a, item("real", 10, 1, &[]));
    assert_eq!(reps[0].offset, 0);
    assert_eq!(st.remove(&k("bogus")), vec![Err(Error::from(ErrorKind::UnmatchedKey))]);
    let ops = ack(&st, a);
    assert!(
        ops.iter().all(|op| !matches!(op, LedgerOp::Del { .. })),
        "no ledger delete: {ops:?}"
    );
    assert!(present(&st, "real"));
    assert_eq!(used(&st, a), PAGE);

    // A pure client alone (no segment anywhere): refused without overflow.
    let (_clock, st) = new_state(params());
    let c = reg_client(&st, 2);
    for size in [u64::MAX, u64::MAX - 4094] {
        assert!(is_invalid(&alloc(&st, c, item("bogus", size, 1, &[]))), "size {size}");
    }
}

#[test]
fn recovery_entries_that_overflow_are_rejected() {
    let (_clock, st) = new_state(params());
    let cap = 16 * PAGE;
    let (a, _) = st.register(&recovering_req(1, cap, 5)).unwrap();
    let e = |key: &str, offset: u64, size: u64| LedgerEntry {
        key: key.into(),
        offset,
        size,
        object_id: id_of(key),
    };
    let entries = vec![
        e("huge", 0, u64::MAX),
        e("wraps", 2 * PAGE, u64::MAX - 4094),
        e("end", u64::MAX - 4095, PAGE),
        e("far", 1 << 62, PAGE),
        e("ok", 4 * PAGE, PAGE),
    ];
    assert_eq!(st.recover(a, entries, true), Ok(1));
    assert_eq!(used(&st, a), PAGE);
    assert_eq!(
        st.exist(&keys(&["huge", "wraps", "end", "far", "ok"])),
        vec![false, false, false, false, true]
    );
    let ops = ack(&st, a);
    assert_eq!(ops.len(), 4, "the owner is told to forget each rejected entry");
    assert_eq!(used(&st, a), PAGE, "and acknowledging frees nothing");
}

// ---- placement --------------------------------------------------------------

#[test]
fn placement_distinct_services_writer_first_preferred_honoured() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, 4 * MIB);
    let c = reg(&st, 3, 2 * MIB);
    let client = reg_client(&st, 4);

    let reps = alloc(&st, a, item("three", PAGE, 3, &[])).unwrap();
    let svcs = services(&reps);
    assert_eq!(svcs[0], a, "the writer's own segment comes first");
    assert_eq!(
        svcs.iter().collect::<BTreeSet<_>>().len(),
        3,
        "distinct services: {svcs:?}"
    );
    assert_eq!(svcs, vec![a, b, c], "then the segments with the most free space");

    let reps = alloc(&st, a, item("pref", PAGE, 2, &[c])).unwrap();
    assert_eq!(services(&reps), vec![c, a], "preferred first, then the writer");
    let reps = alloc(&st, a, item("pref2", PAGE, 3, &[c, b])).unwrap();
    assert_eq!(services(&reps), vec![c, b, a], "preferred in the order given");
    let reps = alloc(&st, a, item("pref3", PAGE, 1, &[b, b])).unwrap();
    assert_eq!(services(&reps), vec![b]);
    let reps = alloc(&st, client, item("fromclient", PAGE, 1, &[])).unwrap();
    assert_eq!(
        services(&reps),
        vec![b],
        "a writer without a segment gets the emptiest one"
    );
    let reps = alloc(&st, a, item("unknownpref", PAGE, 1, &[client, 777])).unwrap();
    assert_eq!(services(&reps), vec![a], "preferred ids without a segment are skipped");

    let before: Vec<u64> = [a, b, c].iter().map(|&s| used(&st, s)).collect();
    match alloc(&st, a, item("four", PAGE, 4, &[])) {
        Err(ref e) if e.kind() == ErrorKind::NoProvider => {
            let msg = e.to_string();
            assert!(msg.contains("4 replicas requested"), "{msg}");
            assert!(msg.contains("only 3"), "{msg}");
            assert_eq!(e.code(), mmc_wire::error::code::NO_PROVIDER);
        }
        other => panic!("expected NoProvider (retryable, not InvalidParam), got {other:?}"),
    }
    let after: Vec<u64> = [a, b, c].iter().map(|&s| used(&st, s)).collect();
    assert_eq!(before, after, "a refused placement leaves nothing allocated");
    assert_eq!(st.exist(&k("four")), vec![false]);
    assert!(
        alloc(&st, a, item("four", PAGE, 3, &[])).is_ok(),
        "the key was not reserved"
    );

    // to_placements: one peer entry per distinct service, referenced by index.
    let r1 = alloc(&st, a, item("tp1", PAGE, 2, &[b])).unwrap();
    let r2 = alloc(&st, a, item("tp2", PAGE, 2, &[c])).unwrap();
    let (peers, items) = st.to_placements(vec![
        Ok(r1.clone()),
        Err(Error::from(ErrorKind::DuplicatedObject)),
        Ok(r2.clone()),
    ]);
    let ids: Vec<ServiceId> = peers.iter().map(|p| p.service_id).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "peers are not repeated"
    );
    assert_eq!(ids.len(), 3);
    assert_eq!(items[1], Err(Error::from(ErrorKind::DuplicatedObject)));
    for (reps, placed) in [(&r1, &items[0]), (&r2, &items[2])] {
        let placed = placed.as_ref().unwrap();
        let got: Vec<(ServiceId, u64)> = placed.iter().map(|p| (ids[p.peer as usize], p.offset)).collect();
        let want: Vec<(ServiceId, u64)> = reps.iter().map(|r| (r.service, r.offset)).collect();
        assert_eq!(got, want);
    }
    assert_eq!(
        peers.iter().find(|p| p.service_id == b).unwrap().transfer_addr,
        "10.0.0.2:7000"
    );
}

#[test]
fn placement_falls_over_to_other_segments_when_writer_is_full() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, 2 * PAGE);
    let b = reg(&st, 2, MIB);
    // Not full yet: the writer's segment.
    let r = alloc(&st, a, item("x", 2 * PAGE, 1, &[])).unwrap();
    assert_eq!(services(&r), vec![a]);
    // Full: the other segment, without evicting anything.
    let r = alloc(&st, a, item("y", PAGE, 1, &[])).unwrap();
    assert_eq!(services(&r), vec![b]);
    assert_eq!(st.stat().evictions, 0);
}

// ---- put timeout ------------------------------------------------------------

#[test]
fn put_timeout_reclaims_uncommitted_writes() {
    let (clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);

    put(&st, a, item("committed", PAGE, 1, &[]));
    let reps = alloc(&st, a, item("w", 2 * PAGE, 2, &[])).unwrap();
    assert_eq!(services(&reps), vec![a, b]);
    assert_eq!((used(&st, a), used(&st, b)), (3 * PAGE, 2 * PAGE));

    clock.advance(4_999);
    st.tick();
    assert_eq!((used(&st, a), used(&st, b)), (3 * PAGE, 2 * PAGE), "not yet timed out");
    assert_eq!(
        alloc(&st, a, item("w", 1, 1, &[])).unwrap_err(),
        Error::from(ErrorKind::DuplicatedObject)
    );
    assert_eq!(st.counters.put_timeouts.load(std::sync::atomic::Ordering::Relaxed), 0);

    clock.advance(1);
    st.tick();
    assert_eq!(
        (used(&st, a), used(&st, b)),
        (PAGE, 0),
        "the write's space is back on both segments"
    );
    assert_eq!(st.counters.put_timeouts.load(std::sync::atomic::Ordering::Relaxed), 1);
    match st.finish(a, &k("w"), &[]).pop().unwrap() {
        Err(ref e) if e.kind() == ErrorKind::Timeout => assert!(e.message().contains("reclaimed"), "{e}"),
        other => panic!("late commit: {other:?}"),
    }
    assert_eq!(st.exist(&k("w")), vec![false]);
    assert!(
        present(&st, "committed"),
        "committed objects are not subject to the put timeout"
    );
    assert!(
        ack(&st, a).iter().all(|op| !matches!(op, LedgerOp::Del { .. })),
        "no Del for a write"
    );
    assert!(
        alloc(&st, a, item("w", PAGE, 1, &[])).is_ok(),
        "the key can be written again"
    );
}

#[test]
fn put_timeout_does_not_reap_a_newer_write_of_the_same_key() {
    let (clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);

    alloc(&st, a, item("w", PAGE, 1, &[])).unwrap();
    st.finish(a, &[], &k("w"));
    clock.advance(3_000);
    alloc(&st, a, item("w", PAGE, 1, &[])).unwrap();
    clock.advance(2_000); // the first write's deadline
    st.tick();
    assert_eq!(
        used(&st, a),
        PAGE,
        "the re-alloc (t=3000) is still within its put timeout"
    );
    assert_eq!(st.finish(a, &k("w"), &[]), vec![Ok(())]);
    clock.advance(10_000);
    st.tick();
    assert!(present(&st, "w"));
}

// ---- leases -----------------------------------------------------------------

#[test]
fn remove_hides_at_once_but_space_waits_for_release() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let r = reg_client(&st, 9);

    put(&st, a, item("k", PAGE, 1, &[]));
    ack(&st, a);
    let (oid, _, _) = lookup1(&st, r, "k").unwrap();
    assert_eq!(st.stat().leases_active, 1);

    assert_eq!(st.remove(&k("k")), vec![Ok(())]);
    assert_eq!(st.exist(&k("k")), vec![false]);
    assert_eq!(st.remove(&k("k")), vec![Err(Error::from(ErrorKind::UnmatchedKey))]);
    assert_eq!(
        lookup1(&st, r, "k").unwrap_err(),
        Error::from(ErrorKind::ObjectNotExists)
    );
    assert_eq!(st.stat().keys, 0);
    assert_eq!(objects(&st, a), 1, "still stored while leased");

    st.tick();
    assert!(ack(&st, a).is_empty(), "no Del while the lease is live");
    assert_eq!(used(&st, a), PAGE);

    st.release_leases(r, &[("k".to_owned(), oid)]);
    st.tick();
    assert_eq!(used(&st, a), PAGE, "space waits for the owner's ack");
    assert_eq!(ack(&st, a), vec![LedgerOp::Del { offset: 0 }]);
    assert_eq!(used(&st, a), 0);
    assert_eq!(objects(&st, a), 0);
}

#[test]
fn removed_object_space_freed_after_lease_expiry() {
    let (clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let r = reg_client(&st, 9);

    put(&st, a, item("k", 3 * PAGE, 1, &[]));
    ack(&st, a);
    lookup1(&st, r, "k").unwrap();
    clock.advance(500);
    lookup1(&st, r, "k").unwrap(); // extends the lease to t=1500
    assert_eq!(st.remove(&k("k")), vec![Ok(())]);

    clock.advance(999);
    st.tick();
    assert!(ack(&st, a).is_empty());
    assert_eq!(used(&st, a), 3 * PAGE, "lease still live at t=1499");

    clock.advance(1);
    st.tick();
    assert_eq!(used(&st, a), 3 * PAGE, "freed only on the owner's ack");
    assert_eq!(ack(&st, a), vec![LedgerOp::Del { offset: 0 }]);
    assert_eq!(used(&st, a), 0);
}

#[test]
fn a_lookup_lease_lasts_as_long_as_asked_up_to_an_hour() {
    use mmc_meta::state::{lease_for, MAX_ASKED_LEASE_MS};
    assert_eq!(lease_for(1000, 0), 1000, "0 takes the configured lease");
    assert_eq!(lease_for(1000, 60_000), 60_000);
    assert_eq!(lease_for(1000, u64::MAX), MAX_ASKED_LEASE_MS, "hostile ttl capped");

    let (clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let r = reg_client(&st, 9);
    put(&st, a, item("k", PAGE, 1, &[]));
    ack(&st, a);
    let (_, items) = st.lookup_for(r, &k("k"), 60_000);
    assert!(items[0].is_ok());
    assert_eq!(st.remove(&k("k")), vec![Ok(())]);
    clock.advance(59_999);
    st.tick();
    assert!(ack(&st, a).is_empty(), "lease still live at t=59999");
    assert_eq!(used(&st, a), PAGE);
    clock.advance(1);
    st.tick();
    assert_eq!(ack(&st, a), vec![LedgerOp::Del { offset: 0 }]);
    assert_eq!(used(&st, a), 0);
}

#[test]
fn remove_without_lease_frees_after_ack() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let r = reg_client(&st, 9);
    put(&st, a, item("k", PAGE, 1, &[]));
    let (oid, _, _) = lookup1(&st, r, "k").unwrap();
    st.release_leases(r, &[("k".to_owned(), oid)]);
    assert_eq!(st.stat().leases_active, 0);
    assert_eq!(st.remove(&k("k")), vec![Ok(())]);
    assert_eq!(used(&st, a), PAGE);
    let ops = ack(&st, a);
    assert_eq!(ops.last(), Some(&LedgerOp::Del { offset: 0 }));
    assert_eq!(used(&st, a), 0);
}

#[test]
fn lease_of_removed_object_is_not_confused_with_a_new_put_of_the_key() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let r1 = reg_client(&st, 8);
    let r2 = reg_client(&st, 9);

    put(&st, a, item("k", PAGE, 1, &[]));
    let (old, _, old_locs) = lookup1(&st, r1, "k").unwrap();
    st.remove(&k("k"));
    let reps = put(&st, a, item("k", PAGE, 1, &[]));
    assert_ne!(reps[0].offset, old_locs[0].1, "the leased range is not reused");
    let (new, _, _) = lookup1(&st, r2, "k").unwrap();
    assert_ne!(old, new, "a re-put is a new object instance");

    st.release_leases(r1, &[("k".to_owned(), old)]);
    st.tick();
    ack(&st, a);
    assert_eq!(used(&st, a), PAGE, "the old object is freed, the new one kept");
    assert_eq!(st.stat().leases_active, 1, "r2's lease on the new object is untouched");
    assert!(present(&st, "k"));
}

// ---- eviction ---------------------------------------------------------------

/// 256 committed one-page objects filling a 1 MiB segment.
fn fill(st: &MetaState, writer: ServiceId, prefix: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    for name in &names {
        put(st, writer, item(name, PAGE, 1, &[]));
    }
    names
}

#[test]
fn alloc_evicts_exactly_the_least_recently_used() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let r = reg_client(&st, 9);
    let names = fill(&st, a, "o", 256);
    ack(&st, a);
    assert_eq!(used(&st, a), MIB);

    // Touch o0 (exist), o1 and o2 (lookup, lease released): o3 becomes the LRU.
    assert_eq!(st.exist(&k("o0")), vec![true]);
    for key in ["o1", "o2"] {
        let (id, _, _) = lookup1(&st, r, key).unwrap();
        st.release_leases(r, &[(key.to_owned(), id)]);
    }
    assert_eq!(st.stat().leases_active, 0);

    let (res, _waits) = alloc_retry(&st, a, item("new", PAGE, 1, &[]));
    let reps = res.unwrap();
    let gone: Vec<&String> = names.iter().filter(|n| !present(&st, n)).collect();
    assert_eq!(gone, vec!["o3"], "exactly the least recently used object is evicted");
    assert_eq!(
        reps,
        vec![Replica {
            service: a,
            offset: 3 * PAGE
        }],
        "the new object takes o3's range"
    );
    assert_eq!(st.stat().evictions, 1);
    assert_eq!(used(&st, a), MIB);
    assert_eq!(st.finish(a, &k("new"), &[]), vec![Ok(())]);

    // Next LRU: o4.
    let (res, _) = alloc_retry(&st, a, item("new2", PAGE, 1, &[]));
    assert_eq!(res.unwrap()[0].offset, 4 * PAGE);
    let gone: Vec<&String> = names.iter().filter(|n| !present(&st, n)).collect();
    assert_eq!(gone, vec!["o3", "o4"]);
    assert_eq!(st.stat().evictions, 2);
    assert!(present(&st, "new"));

    // A bigger object evicts enough LRU objects to fit (o5..o7 are adjacent).
    let (res, _) = alloc_retry(&st, a, item("big", 3 * PAGE, 1, &[]));
    assert_eq!(res.unwrap()[0].offset, 5 * PAGE);
    let gone: Vec<&String> = names.iter().filter(|n| !present(&st, n)).collect();
    assert_eq!(gone, vec!["o3", "o4", "o5", "o6", "o7"]);
    assert_eq!(st.stat().evictions, 5);
}

#[test]
fn eviction_waits_for_ledger_ack_before_reusing_space() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, 4 * PAGE);
    fill(&st, a, "o", 4);
    ack(&st, a);
    // First attempt evicts, but the range is not reusable before the ack.
    match alloc_once(&st, a, item("new", PAGE, 1, &[])) {
        AllocOutcome::WaitSpace => {}
        AllocOutcome::Done(r) => panic!("space was reused before the owner's ack: {r:?}"),
    }
    assert_eq!(st.stat().evictions, 1);
    // Retrying before the ack evicts nothing more.
    for _ in 0..3 {
        assert!(matches!(
            alloc_once(&st, a, item("new", PAGE, 1, &[])),
            AllocOutcome::WaitSpace
        ));
    }
    assert_eq!(st.stat().evictions, 1, "waiting for the ack must not evict more");
    assert_eq!(st.stat().keys, 3);
    let ops = ack(&st, a);
    assert_eq!(ops.len(), 1);
    assert!(matches!(ops[0], LedgerOp::Del { .. }));
    assert!(matches!(
        alloc_once(&st, a, item("new", PAGE, 1, &[])),
        AllocOutcome::Done(Ok(_))
    ));
    assert_eq!(st.stat().evictions, 1);
}

#[test]
fn leased_and_writing_objects_are_never_evicted() {
    let (clock, st) = new_state(params());
    let a = reg(&st, 1, 16 * PAGE);
    let r = reg_client(&st, 9);

    // Oldest: four committed objects that stay leased.
    let leased = fill(&st, a, "p", 4);
    let mut lease_ids = Vec::new();
    for p in &leased {
        lease_ids.push((p.clone(), lookup1(&st, r, p).unwrap().0));
    }
    // Four writes that never commit.
    for i in 0..4 {
        alloc(&st, a, item(&format!("w{i}"), PAGE, 1, &[])).unwrap();
    }
    // Eight committed, unleased objects.
    let plain = fill(&st, a, "c", 8);
    ack(&st, a);
    assert_eq!(used(&st, a), 16 * PAGE);

    // Eight more writes: each evicts one plain object, oldest first.
    for i in 0..8 {
        let (res, _) = alloc_retry(&st, a, item(&format!("n{i}"), PAGE, 1, &[]));
        res.unwrap();
        assert!(!present(&st, &plain[i]), "c{i} evicted");
        if i + 1 < 8 {
            assert!(present(&st, &plain[i + 1]), "c{} kept", i + 1);
        }
    }
    assert!(leased.iter().all(|p| present(&st, p)), "leased objects survive");
    for i in 0..4 {
        assert_eq!(
            alloc(&st, a, item(&format!("w{i}"), 1, 1, &[])).unwrap_err(),
            Error::from(ErrorKind::DuplicatedObject)
        );
    }

    // Everything is leased or WRITING: fail, promptly, with NotEnoughMemory.
    let (res, waits) = alloc_retry(&st, a, item("x", PAGE, 1, &[]));
    assert!(
        matches!(res, Err(ref e) if e.kind() == ErrorKind::NotEnoughMemory),
        "{res:?}"
    );
    assert!(waits <= 1, "no endless waiting when nothing is evictable ({waits})");
    assert_eq!(st.stat().evictions, 8);
    assert!(leased.iter().all(|p| present(&st, p)));
    // The failed alloc did not reserve the key.
    assert_eq!(st.exist(&k("x")), vec![false]);

    // Releasing one lease makes exactly that object evictable.
    st.release_leases(r, &lease_ids[1..2]);
    let (res, _) = alloc_retry(&st, a, item("x", PAGE, 1, &[]));
    res.unwrap();
    assert!(!present(&st, "p1"));
    assert!(present(&st, "p0") && present(&st, "p2") && present(&st, "p3"));

    // An expired lease no longer protects (no tick needed).
    clock.advance(1_000);
    let (res, _) = alloc_retry(&st, a, item("y", PAGE, 1, &[]));
    res.unwrap();
    let left: Vec<&String> = leased.iter().filter(|p| present(&st, p)).collect();
    assert_eq!(
        left,
        vec!["p2", "p3"],
        "the least recently used of the expired-lease objects (p0) goes"
    );
}

#[test]
fn all_writing_segment_fails_with_not_enough_memory_at_once() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, 4 * PAGE);
    alloc(&st, a, item("w", 4 * PAGE, 1, &[])).unwrap();
    match alloc_once(&st, a, item("x", PAGE, 1, &[])) {
        AllocOutcome::Done(Err(ref e)) if e.kind() == ErrorKind::NotEnoughMemory => {}
        other => panic!("expected NotEnoughMemory, got {other:?}"),
    }
}

#[test]
fn replicated_alloc_evicts_on_every_needed_segment() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, 4 * PAGE);
    let b = reg(&st, 2, 4 * PAGE);
    for i in 0..4 {
        put(&st, a, item(&format!("r{i}"), PAGE, 2, &[]));
    }
    ack_everyone(&st);
    assert_eq!((used(&st, a), used(&st, b)), (4 * PAGE, 4 * PAGE));
    let (res, _) = alloc_retry(&st, a, item("x", PAGE, 2, &[]));
    assert_eq!(services(&res.unwrap()), vec![a, b]);
    assert!(!present(&st, "r0"));
    assert_eq!(st.stat().keys, 3, "one replicated object frees a page on both segments");
}

#[test]
fn background_eviction_from_high_to_low_watermark() {
    let p = MetaParams {
        high_watermark: 90,
        low_watermark: 50,
        ..params()
    };
    let (_clock, st) = new_state(p);
    let a = reg(&st, 1, MIB);

    // 230 of 256 pages: 89.8%, below the high watermark.
    let mut names = fill(&st, a, "o", 230);
    st.tick();
    assert_eq!(st.stat().evictions, 0);
    assert_eq!(st.stat().keys, 230);

    // 231 pages: 90.2%, above it.
    put(&st, a, item("o230", PAGE, 1, &[]));
    names.push("o230".into());
    ack(&st, a);
    st.tick();
    // Down to 50% = 128 pages: the 103 oldest go.
    assert_eq!(st.stat().evictions, 103);
    assert_eq!(st.stat().keys, 128);
    assert!(names[..103].iter().all(|n| !present(&st, n)), "the oldest are evicted");
    assert!(names[103..].iter().all(|n| present(&st, n)), "the newest are kept");
    assert_eq!(used(&st, a), 231 * PAGE, "freed only when acknowledged");

    // Ticks before the owner acknowledges must not evict again.
    st.tick();
    st.tick();
    assert_eq!(st.stat().evictions, 103, "no over-eviction while Dels wait for the ack");
    assert_eq!(st.stat().keys, 128);

    let ops = ack(&st, a);
    assert_eq!(ops.iter().filter(|o| matches!(o, LedgerOp::Del { .. })).count(), 103);
    assert_eq!(used(&st, a), 128 * PAGE);
    st.tick();
    assert_eq!(st.stat().evictions, 103);
}

#[test]
fn background_eviction_skips_leased_objects() {
    let p = MetaParams {
        high_watermark: 50,
        low_watermark: 25,
        ..params()
    };
    let (_clock, st) = new_state(p);
    let a = reg(&st, 1, 8 * PAGE);
    let r = reg_client(&st, 9);
    let names = fill(&st, a, "o", 4);
    lookup1(&st, r, "o0").unwrap();
    st.tick();
    // Target 2 pages: two unleased oldest (o1, o2) go, o0 is leased.
    assert!(present(&st, "o0"));
    assert!(!present(&st, &names[1]) && !present(&st, &names[2]));
    assert!(present(&st, &names[3]));
}

// ---- heartbeat timeout --------------------------------------------------------

#[test]
fn silent_service_is_declared_dead() {
    let p = MetaParams {
        heartbeat_timeout_ms: 3_000,
        ..params()
    };
    let (clock, st) = new_state(p);
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);
    let c = reg(&st, 3, MIB);
    let epoch0 = st.members().0;

    put(&st, a, item("only_a", PAGE, 1, &[]));
    let r = put(&st, a, item("a_and_b", PAGE, 2, &[a, b]));
    assert_eq!(services(&r), vec![a, b]);
    // In flight, written by the doomed service into b.
    let r = alloc(&st, a, item("a_writes", PAGE, 1, &[b])).unwrap();
    assert_eq!(services(&r), vec![b]);
    // In flight, written by b, with one replica on the doomed service.
    let r = alloc(&st, b, item("b_writes", PAGE, 2, &[a, c])).unwrap();
    assert_eq!(services(&r), vec![a, c]);
    // On b only, leased by a.
    put(&st, b, item("b_only", PAGE, 1, &[]));
    lookup1(&st, a, "b_only").unwrap();
    ack_everyone(&st);
    assert_eq!((used(&st, b), used(&st, c)), (3 * PAGE, PAGE));

    clock.advance(2_000);
    assert_eq!(st.heartbeat(b), (true, epoch0, false));
    assert!(st.ledger_poll(c, 0, 0).is_some(), "a ledger poll also proves liveness");
    clock.advance(1_000);
    st.tick();
    assert!(st.is_member(a), "exactly at the timeout: still alive");
    clock.advance(1);
    st.tick();

    assert!(!st.is_member(a));
    assert!(st.is_member(b) && st.is_member(c));
    let (epoch, peers) = st.members();
    assert!(epoch > epoch0);
    assert_eq!(peers.iter().map(|p| p.service_id).collect::<Vec<_>>(), vec![b, c]);
    assert_eq!(st.stat().members, 2);
    assert_eq!(st.stat().segments.len(), 2);
    assert_eq!(st.heartbeat(a), (false, epoch, false));
    assert!(st.ledger_poll(a, 0, 0).is_none());
    assert_eq!(st.counters.dead_services.load(std::sync::atomic::Ordering::Relaxed), 1);

    // Its only replica was there: gone.
    assert_eq!(st.exist(&k("only_a")), vec![false]);
    assert_eq!(
        lookup1(&st, c, "only_a").unwrap_err(),
        Error::from(ErrorKind::ObjectNotExists)
    );
    // Another replica remains.
    let info = st.key_info(&k("a_and_b")).pop().unwrap().unwrap();
    assert_eq!(info.replicas, vec![(b, Medium::Dram)]);
    let (_, _, locs) = lookup1(&st, c, "a_and_b").unwrap();
    assert_eq!(locs.len(), 1);
    assert_eq!(locs[0].0, b);
    // Its in-flight write into b is dropped, and b's space is back at once.
    assert_eq!(used(&st, b), 2 * PAGE);
    assert!(matches!(st.finish(a, &k("a_writes"), &[]).pop().unwrap(), Err(ref e) if e.kind() == ErrorKind::Timeout));
    // A write by a live writer keeps its surviving replica and can commit.
    assert_eq!(st.finish(b, &k("b_writes"), &[]), vec![Ok(())]);
    let info = st.key_info(&k("b_writes")).pop().unwrap().unwrap();
    assert_eq!(info.replicas, vec![(c, Medium::Dram)]);
    // Its leases are released: removing b_only frees the space on the ack.
    assert_eq!(st.stat().leases_active, 1, "only c's lease on a_and_b");
    st.remove(&k("b_only"));
    ack(&st, b);
    assert_eq!(used(&st, b), PAGE);
    // The dead service may not write; new allocs avoid its segment.
    assert!(matches!(alloc(&st, a, item("z", 1, 1, &[])), Err(ref e) if e.kind() == ErrorKind::NotConnectedMeta));
    let r = alloc(&st, b, item("z", 1, 2, &[a])).unwrap();
    assert_eq!(services(&r), vec![b, c]);
    assert!(is_no_provider(&alloc(&st, b, item("z3", 1, 3, &[]))));
    assert!(
        alloc(&st, b, item("a_writes", PAGE, 1, &[])).is_ok(),
        "the dropped key is free"
    );
}

#[test]
fn unregister_drops_the_service_like_a_death() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);
    put(&st, a, item("x", PAGE, 1, &[]));
    put(&st, b, item("y", PAGE, 2, &[]));
    st.unregister(a);
    assert!(!st.is_member(a));
    assert_eq!(st.exist(&keys(&["x", "y"])), vec![false, true]);
    assert_eq!(st.stat().keys, 1);
    st.unregister(a); // idempotent
    assert_eq!(st.counters.dead_services.load(std::sync::atomic::Ordering::Relaxed), 1);
}

// ---- recovery ---------------------------------------------------------------

/// The segment owner's ledger: applies the ops it is sent, acknowledging them.
fn sync_ledger(st: &MetaState, id: ServiceId, ledger: &mut BTreeMap<u64, LedgerEntry>) {
    for op in ack(st, id) {
        match op {
            LedgerOp::Add(e) => {
                assert!(ledger.insert(e.offset, e).is_none(), "Add on an occupied offset");
            }
            LedgerOp::Del { offset } => {
                assert!(ledger.remove(&offset).is_some(), "Del of an unknown offset");
            }
        }
    }
}

/// A made-up object id for hand-written ledger entries: one per key.
fn id_of(key: &str) -> u64 {
    key.bytes().fold(1u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)) % (1 << 40) + 1
}

fn recovering_req(host: u64, size: u64, prev: ServiceId) -> RegisterReq {
    RegisterReq {
        prev_service_id: Some(prev),
        recovering: true,
        ..seg_req(host, size)
    }
}

#[test]
fn restart_recovers_index_and_allocator_from_ledgers() {
    let (_c1, st1) = new_state(params());
    let a = reg(&st1, 1, MIB);
    let b = reg(&st1, 2, MIB);
    let reader = reg_client(&st1, 9);
    put(&st1, a, item("a0", 5_000, 1, &[]));
    put(&st1, a, item("a1", 3 * PAGE, 1, &[]));
    put(&st1, a, item("ab", 100, 2, &[a, b]));
    put(&st1, b, item("b0", 10_000, 1, &[]));
    put(&st1, a, item("gone", PAGE, 1, &[]));
    put(&st1, a, item("a2", 7 * PAGE + 1, 1, &[]));
    alloc(&st1, a, item("inflight", PAGE, 1, &[])).unwrap();
    let mut la = BTreeMap::new();
    let mut lb = BTreeMap::new();
    sync_ledger(&st1, a, &mut la);
    sync_ledger(&st1, b, &mut lb);
    st1.remove(&k("gone"));
    sync_ledger(&st1, a, &mut la);
    sync_ledger(&st1, b, &mut lb);
    assert_eq!(la.len(), 4);
    assert_eq!(lb.len(), 2);

    let all = ["a0", "a1", "ab", "b0", "a2"];
    let before: HashMap<&str, (u64, BTreeSet<Loc>)> = all
        .iter()
        .map(|&key| {
            let (_, size, locs) = lookup1(&st1, reader, key).unwrap();
            (key, (size, locs.into_iter().collect()))
        })
        .collect();

    // The MetaService restarts: empty state, new clock.
    let (_c2, st2) = new_state(params());
    let (ra, _) = st2.register(&recovering_req(1, MIB, a)).unwrap();
    let (rb, _) = st2.register(&recovering_req(2, MIB, b)).unwrap();
    assert_eq!((ra, rb), (a, b), "previous ids are honoured");
    let reader2 = reg_client(&st2, 9);
    assert_ne!(reader2, a);
    assert_ne!(reader2, b);
    assert!(
        is_no_provider(&alloc(&st2, a, item("n", 1, 1, &[]))),
        "recovering segments are not allocatable"
    );

    let ea: Vec<LedgerEntry> = la.values().cloned().collect();
    let eb: Vec<LedgerEntry> = lb.values().cloned().collect();
    assert_eq!(st2.recover(a, ea[..2].to_vec(), false), Ok(2));
    assert!(
        is_no_provider(&alloc(&st2, a, item("n", 1, 1, &[]))),
        "still recovering until done"
    );
    assert_eq!(st2.recover(a, ea[2..].to_vec(), true), Ok(2));
    // b still recovering: allocs go to a only.
    assert_eq!(services(&alloc(&st2, a, item("n", 1, 1, &[b])).unwrap()), vec![a]);
    st2.finish(a, &[], &k("n"));
    assert_eq!(st2.recover(b, eb, true), Ok(2));

    for key in all {
        let (_, size, locs) = lookup1(&st2, reader2, key).unwrap();
        let locs: BTreeSet<(ServiceId, u64)> = locs.into_iter().collect();
        assert_eq!(
            (size, locs),
            before[key].clone(),
            "{key} recovered with the same offsets"
        );
    }
    let info = st2.key_info(&k("ab")).pop().unwrap().unwrap();
    assert_eq!(info.replicas.len(), 2);
    assert_eq!(st2.exist(&keys(&["gone", "inflight"])), vec![false, false]);
    assert_eq!(st2.stat().keys, 5);
    let recovered_used: u64 = la.values().map(|e| e.size.div_ceil(PAGE) * PAGE).sum();
    assert_eq!(used(&st2, a), recovered_used);
    assert_eq!(objects(&st2, a), 4);
    assert_eq!(objects(&st2, b), 2);
    assert!(ack(&st2, a).is_empty(), "accepted entries queue nothing");

    // Fill the rest of a: every new range avoids the recovered ones.
    let free_pages = (MIB - recovered_used) / PAGE;
    let mut taken: Vec<(u64, u64)> = la.values().map(|e| (e.offset, e.size.div_ceil(PAGE) * PAGE)).collect();
    for i in 0..free_pages {
        let reps = alloc(&st2, a, item(&format!("fresh{i}"), PAGE, 1, &[a])).unwrap();
        assert_eq!(reps[0].service, a, "fresh{i} fits in a");
        let off = reps[0].offset;
        assert!(off + PAGE <= MIB);
        assert!(
            taken.iter().all(|&(o, len)| off + PAGE <= o || o + len <= off),
            "fresh{i} at {off} overlaps"
        );
        taken.push((off, PAGE));
    }
    assert_eq!(used(&st2, a), MIB);
    // A fresh key after a restart is not a duplicate; a recovered one is.
    assert_eq!(
        alloc(&st2, b, item("a0", 1, 1, &[])).unwrap_err(),
        Error::from(ErrorKind::DuplicatedObject)
    );
    assert!(alloc(&st2, b, item("inflight", 1, 1, &[])).is_ok());
}

#[test]
fn recovery_rejects_conflicting_entries() {
    let (_clock, st) = new_state(params());
    let cap = 16 * PAGE;
    let (a, _) = st.register(&recovering_req(1, cap, 5)).unwrap();
    assert_eq!(a, 5);
    let e = |key: &str, offset: u64, size: u64| LedgerEntry {
        key: key.into(),
        offset,
        size,
        object_id: id_of(key),
    };
    let entries = vec![
        e("k1", 0, 2 * PAGE),
        e("overlap", PAGE, PAGE),            // inside k1
        e("outside", cap, PAGE),             // starts past the end
        e("straddle", cap - PAGE, 2 * PAGE), // runs past the end
        e("", 4 * PAGE, 10),                 // invalid key
        e("empty", 5 * PAGE, 0),             // size 0
        e("k1", 8 * PAGE, 2 * PAGE),         // same key twice in one segment
        e("unaligned", 6 * PAGE + 1, 10),    // not on a page boundary
        e("k2", 10 * PAGE, 1),
    ];
    assert_eq!(st.recover(a, entries, true), Ok(2));
    // Rejected ranges that could be reserved ("" and the second "k1") stay
    // occupied until the owner acknowledges their Del.
    assert_eq!(used(&st, a), 6 * PAGE);
    assert_eq!(objects(&st, a), 2);
    assert_eq!(
        st.exist(&keys(&[
            "k1",
            "k2",
            "overlap",
            "outside",
            "straddle",
            "empty",
            "unaligned"
        ])),
        vec![true, true, false, false, false, false, false]
    );
    let r = reg_client(&st, 9);
    assert_eq!(lookup1(&st, r, "k1").unwrap().2, vec![(a, 0)]);
    // The owner is told to forget each rejected entry...
    let ops = ack(&st, a);
    let dels: BTreeSet<u64> = ops
        .iter()
        .map(|op| match op {
            LedgerOp::Del { offset } => *offset,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        dels,
        BTreeSet::from([PAGE, cap, cap - PAGE, 4 * PAGE, 5 * PAGE, 8 * PAGE, 6 * PAGE + 1])
    );
    assert_eq!(ops.len(), 7);
    // ...and acknowledging that frees what rejected entries held.
    assert_eq!(used(&st, a), 3 * PAGE);

    // Another service's replica of a known key: accepted only with the same size.
    let (b, _) = st.register(&recovering_req(2, cap, 6)).unwrap();
    assert_eq!(st.recover(b, vec![e("k1", 4 * PAGE, PAGE), e("k2", 0, 1)], true), Ok(1));
    assert_eq!(
        st.key_info(&k("k1")).pop().unwrap().unwrap().replicas,
        vec![(a, Medium::Dram)]
    );
    let k2 = st.key_info(&k("k2")).pop().unwrap().unwrap();
    assert_eq!(
        k2.replicas.iter().map(|r| r.0).collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
    assert_eq!(
        ack(&st, b),
        vec![LedgerOp::Del { offset: 4 * PAGE }],
        "b's k1 is dropped"
    );
    assert_eq!(used(&st, b), PAGE);

    // Unknown service, or one without a segment: refused.
    assert!(st.recover(999, vec![e("z", 0, 1)], true).is_err());
    assert!(st.recover(r, vec![e("z", 0, 1)], true).is_err());
    // A new write in the same segment avoids recovered ranges.
    let reps = alloc(&st, a, item("new", 2 * PAGE, 1, &[])).unwrap();
    assert_eq!(reps[0].service, a);
    assert!(reps[0].offset >= 2 * PAGE && reps[0].offset + 2 * PAGE <= cap);
    assert!(reps[0].offset + 2 * PAGE <= 10 * PAGE || reps[0].offset >= 11 * PAGE);
}

#[test]
fn service_declared_dead_rejoins_with_its_ledger() {
    let p = MetaParams {
        heartbeat_timeout_ms: 3_000,
        ..params()
    };
    let (clock, st) = new_state(p);
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);
    put(&st, a, item("only_a", 5_000, 1, &[]));
    put(&st, a, item("both", PAGE, 2, &[a, b]));
    let mut la = BTreeMap::new();
    sync_ledger(&st, a, &mut la);
    ack(&st, b);
    clock.advance(3_001);
    st.heartbeat(b);
    st.tick();
    assert!(!st.is_member(a));
    assert_eq!(st.exist(&keys(&["only_a", "both"])), vec![false, true]);

    // It notices (heartbeat unknown) and registers again with its ledger.
    let (again, _) = st.register(&recovering_req(1, MIB, a)).unwrap();
    assert_eq!(again, a);
    assert_eq!(st.recover(a, la.values().cloned().collect(), true), Ok(2));
    assert_eq!(st.exist(&keys(&["only_a", "both"])), vec![true, true]);
    let both = st.key_info(&k("both")).pop().unwrap().unwrap();
    assert_eq!(
        both.replicas.iter().map(|r| r.0).collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
    assert_eq!(used(&st, a), 3 * PAGE);
    assert_eq!(objects(&st, a), 2);
}

#[test]
fn recovery_does_not_clash_with_a_key_written_meanwhile() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    alloc(&st, a, item("k", PAGE, 1, &[])).unwrap(); // WRITING on a
    let (b, _) = st.register(&recovering_req(2, MIB, 7)).unwrap();
    assert_eq!(
        st.recover(
            b,
            vec![LedgerEntry {
                key: "k".into(),
                offset: 0,
                size: PAGE,
                object_id: 1,
            }],
            true
        ),
        Ok(0)
    );
    assert_eq!(used(&st, b), PAGE, "held until the owner drops the entry");
    assert_eq!(ack(&st, b), vec![LedgerOp::Del { offset: 0 }]);
    assert_eq!(used(&st, b), 0);
    assert_eq!(st.finish(a, &k("k"), &[]), vec![Ok(())]);
    assert_eq!(
        st.key_info(&k("k")).pop().unwrap().unwrap().replicas,
        vec![(a, Medium::Dram)]
    );
}

// ---- object identity in recovery --------------------------------------------------

/// The fault test's scenario: k1 (V1) on b; b is declared dead (k1 has no
/// replica left and disappears); k1 is put again (V2) on a; b comes back
/// with its ledger. b's replica of the old put must not join the new object,
/// and once a dies too, nothing of V1 may be served.
#[test]
fn stale_replica_of_a_rejoining_provider_is_not_merged_into_a_newer_put() {
    let p = MetaParams {
        heartbeat_timeout_ms: 3_000,
        ..params()
    };
    let (clock, st) = new_state(p);
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);
    let reader = reg_client(&st, 9);
    assert_eq!(services(&put(&st, b, item("k1", 5_000, 1, &[b]))), vec![b]);
    let v1 = lookup1(&st, reader, "k1").unwrap().0;
    let mut lb = BTreeMap::new();
    sync_ledger(&st, b, &mut lb);
    assert_eq!(lb.values().map(|e| e.object_id).collect::<Vec<_>>(), vec![v1]);

    // b stops answering and is declared dead: k1 is gone.
    clock.advance(3_001);
    st.heartbeat(a);
    st.heartbeat(reader);
    st.tick();
    assert!(!st.is_member(b));
    assert!(!present(&st, "k1"));

    // k1 = V2 lands on a.
    assert_eq!(services(&put(&st, a, item("k1", 5_000, 1, &[a]))), vec![a]);
    let v2 = lookup1(&st, reader, "k1").unwrap().0;
    assert!(v2 > v1, "ids grow: {v2} after {v1}");

    // b resumes, registers again and sends its ledger: the entry is refused.
    let (again, _) = st.register(&recovering_req(2, MIB, b)).unwrap();
    assert_eq!(again, b);
    assert_eq!(st.recover(b, lb.values().cloned().collect(), true), Ok(0));
    let (id, _, locs) = lookup1(&st, reader, "k1").unwrap();
    assert_eq!((id, locs.iter().map(|l| l.0).collect::<Vec<_>>()), (v2, vec![a]));
    assert_eq!(objects(&st, b), 0);
    assert_eq!(used(&st, b), 5_000u64.div_ceil(PAGE) * PAGE, "held until b drops it");
    // b is told to drop it, its ledger forgets it, the space comes back.
    sync_ledger(&st, b, &mut lb);
    assert!(lb.is_empty(), "b's ledger forgot the stale replica");
    assert_eq!(used(&st, b), 0);

    // a dies: k1 is gone, never served from b's stale bytes.
    clock.advance(3_001);
    st.heartbeat(b);
    st.heartbeat(reader);
    st.tick();
    assert!(!st.is_member(a));
    assert_eq!(lookup1(&st, reader, "k1"), Err(Error::from(ErrorKind::ObjectNotExists)));
}

/// After a restart, replicas of one object (same id) from several ledgers
/// become one object again; a replica with the same id but another size is
/// refused.
#[test]
fn replicas_with_the_same_object_id_merge_after_a_restart() {
    let (_c1, st1) = new_state(params());
    let a = reg(&st1, 1, MIB);
    let b = reg(&st1, 2, MIB);
    let c = reg(&st1, 3, MIB);
    let reader = reg_client(&st1, 9);
    put(&st1, a, item("k", 3 * PAGE, 2, &[a, b]));
    let (id, _, before) = lookup1(&st1, reader, "k").unwrap();
    let (mut la, mut lb) = (BTreeMap::new(), BTreeMap::new());
    sync_ledger(&st1, a, &mut la);
    sync_ledger(&st1, b, &mut lb);
    assert!(la.values().chain(lb.values()).all(|e| e.object_id == id));

    let (_c2, st2) = new_state(params());
    st2.register(&recovering_req(1, MIB, a)).unwrap();
    st2.register(&recovering_req(2, MIB, b)).unwrap();
    st2.register(&recovering_req(3, MIB, c)).unwrap();
    let reader2 = reg_client(&st2, 9);
    assert_eq!(st2.recover(a, la.values().cloned().collect(), true), Ok(1));
    assert_eq!(st2.recover(b, lb.values().cloned().collect(), true), Ok(1));
    // c claims a replica of the same object with another size: refused.
    let forged = LedgerEntry {
        key: "k".into(),
        offset: 0,
        size: PAGE,
        object_id: id,
    };
    assert_eq!(st2.recover(c, vec![forged], true), Ok(0));
    assert_eq!(ack(&st2, c), vec![LedgerOp::Del { offset: 0 }]);

    let (id2, size, after) = lookup1(&st2, reader2, "k").unwrap();
    assert_eq!(id2, id, "the object keeps its id across the restart");
    assert_eq!(size, 3 * PAGE);
    assert_eq!(
        after.into_iter().collect::<BTreeSet<_>>(),
        before.into_iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(st2.stat().keys, 1);
    // New objects get ids above every recovered one.
    put(&st2, a, item("fresh", PAGE, 1, &[]));
    assert!(lookup1(&st2, reader2, "fresh").unwrap().0 > id);
}

/// Same key, different ids, in a running MetaService: the object it knows
/// (the newer put) stays; the owner of the stale replica gets a Del and its
/// range returns to the allocator once it acknowledges.
#[test]
fn same_key_with_another_id_keeps_the_known_object_and_the_stale_owner_drops_its_replica() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);
    let reader = reg_client(&st, 9);
    put(&st, b, item("k", PAGE, 1, &[b]));
    let mut lb = BTreeMap::new();
    sync_ledger(&st, b, &mut lb);
    let stale: Vec<LedgerEntry> = lb.values().cloned().collect();
    // The key is removed and put again on a: a newer object.
    assert_eq!(st.remove(&k("k")), vec![Ok(())]);
    sync_ledger(&st, b, &mut lb);
    put(&st, a, item("k", PAGE, 1, &[a]));
    let known = lookup1(&st, reader, "k").unwrap();
    assert!(known.0 > stale[0].object_id);

    // b comes back (a new registration) with the old ledger.
    st.unregister(b);
    let (b2, _) = st.register(&recovering_req(2, MIB, b)).unwrap();
    assert_eq!(st.recover(b2, stale.clone(), true), Ok(0));
    assert_eq!(
        lookup1(&st, reader, "k").unwrap(),
        known,
        "the known object is untouched"
    );
    assert_eq!(used(&st, b2), PAGE);
    assert_eq!(
        ack(&st, b2),
        vec![LedgerOp::Del {
            offset: stale[0].offset
        }]
    );
    assert_eq!(used(&st, b2), 0, "released once acknowledged");
    assert_eq!(objects(&st, b2), 0);
}

/// A restarted MetaService gets two ledgers that disagree about one key
/// (b holds a replica of an older put, a of the newer one). Whatever the
/// order they arrive in, exactly one object remains: the newer one, with
/// all its replicas of that id; the stale owner is told to drop its copy.
#[test]
fn restart_with_conflicting_ledgers_keeps_exactly_one_object() {
    let (_c1, st1) = new_state(params());
    let a = reg(&st1, 1, MIB);
    let b = reg(&st1, 2, MIB);
    let c = reg(&st1, 3, MIB);
    let reader = reg_client(&st1, 9);
    put(&st1, b, item("k", 2 * PAGE, 1, &[b]));
    let mut lb = BTreeMap::new();
    sync_ledger(&st1, b, &mut lb);
    let old = lookup1(&st1, reader, "k").unwrap().0;
    // b's ledger keeps the entry (say b missed the Del before the restart).
    st1.remove(&k("k"));
    put(&st1, a, item("k", 2 * PAGE, 2, &[a, c]));
    let new = lookup1(&st1, reader, "k").unwrap().0;
    assert!(new > old);
    let (mut la, mut lc) = (BTreeMap::new(), BTreeMap::new());
    sync_ledger(&st1, a, &mut la);
    sync_ledger(&st1, c, &mut lc);

    for stale_first in [true, false] {
        let (_c2, st2) = new_state(params());
        for (host, id) in [(1, a), (2, b), (3, c)] {
            st2.register(&recovering_req(host, MIB, id)).unwrap();
        }
        let reader2 = reg_client(&st2, 9);
        let send = |id: ServiceId, l: &BTreeMap<u64, LedgerEntry>| st2.recover(id, l.values().cloned().collect(), true);
        if stale_first {
            assert_eq!(send(b, &lb), Ok(1), "unknown key: restored for now");
            assert_eq!(send(a, &la), Ok(1), "newer object replaces it");
            assert_eq!(send(c, &lc), Ok(1));
        } else {
            assert_eq!(send(a, &la), Ok(1));
            assert_eq!(send(b, &lb), Ok(0), "stale entry refused");
            assert_eq!(send(c, &lc), Ok(1));
        }
        assert_eq!(st2.stat().keys, 1, "stale_first={stale_first}");
        let (id, size, locs) = lookup1(&st2, reader2, "k").unwrap();
        assert_eq!((id, size), (new, 2 * PAGE), "stale_first={stale_first}");
        assert_eq!(
            locs.iter().map(|l| l.0).collect::<BTreeSet<_>>(),
            BTreeSet::from([a, c]),
            "stale_first={stale_first}: every replica belongs to object {new}"
        );
        let dropped = ack(&st2, b);
        assert_eq!(dropped.len(), 1, "stale_first={stale_first}: {dropped:?}");
        assert!(matches!(dropped[0], LedgerOp::Del { .. }));
        assert_eq!((used(&st2, b), objects(&st2, b)), (0, 0), "stale_first={stale_first}");
        assert_eq!(objects(&st2, a), 1);
        assert_eq!(objects(&st2, c), 1);
    }
}

/// Entries with an id no MetaService hands out are refused.
#[test]
fn recovery_refuses_impossible_object_ids() {
    let (_clock, st) = new_state(params());
    let (a, _) = st.register(&recovering_req(1, MIB, 5)).unwrap();
    let e = |key: &str, offset: u64, object_id: u64| LedgerEntry {
        key: key.into(),
        offset,
        size: PAGE,
        object_id,
    };
    assert_eq!(
        st.recover(
            a,
            vec![e("zero", 0, 0), e("max", PAGE, u64::MAX), e("ok", 2 * PAGE, 7)],
            true
        ),
        Ok(1)
    );
    assert_eq!(st.exist(&keys(&["zero", "max", "ok"])), vec![false, false, true]);
    assert_eq!(ack(&st, a).len(), 2);
    assert_eq!(used(&st, a), PAGE);
}

// ---- listing, remove_all, stat --------------------------------------------------

#[test]
fn list_keys_pages_through_readable_keys() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let names: BTreeSet<String> = fill(&st, a, "key", 25).into_iter().collect();
    for i in 0..3 {
        alloc(&st, a, item(&format!("writing{i}"), PAGE, 1, &[])).unwrap();
    }

    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = st.list_keys(cursor.as_deref(), 10);
        sizes.push(page.len());
        got.extend(page);
        match next {
            Some(c) => {
                assert!(Some(&c) > cursor.as_ref(), "cursor advances");
                cursor = Some(c);
            }
            None => break,
        }
        assert!(sizes.len() < 10, "paging terminates");
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    let set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(set.len(), got.len(), "no key listed twice");
    assert_eq!(set, names, "every readable key once, no WRITING key");

    let (all, next) = st.list_keys(None, 1000);
    assert_eq!((all.len(), next), (25, None));
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "keys come in byte order");
    let (exact, next) = st.list_keys(None, 25);
    assert_eq!(
        (exact.len(), next),
        (25, None),
        "a page that holds the rest ends the listing"
    );
    let (none, next) = st.list_keys(Some("\u{10ffff}"), 10);
    assert_eq!((none.len(), next), (0, None));
}

/// Reads reorder the LRU between pages; the key-ordered cursor still lists
/// every key exactly once.
#[test]
fn list_keys_is_stable_under_reads() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, 64 * MIB);
    let names: Vec<String> = fill(&st, a, "k", 3001);
    for pass in 0..2 {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut n = 0usize;
        loop {
            let (page, next) = st.list_keys(cursor.as_deref(), 97);
            got.extend(page);
            // A reader touches keys all over the index meanwhile.
            for i in 0..50 {
                let _ = lookup1(&st, a, &names[(n * 131 + i * 17 + pass) % names.len()]);
            }
            n += 1;
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let set: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(set.len(), got.len(), "a key listed twice");
        assert_eq!(set, names.iter().cloned().collect::<BTreeSet<_>>(), "a key missed");
    }
}

#[test]
fn remove_all_and_stat_counts() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);
    let r = reg_client(&st, 9);
    fill(&st, a, "x", 10);
    put(&st, a, item("rep", PAGE, 2, &[]));
    alloc(&st, a, item("writing", 2 * PAGE, 1, &[])).unwrap();
    let id0 = lookup1(&st, r, "x0").unwrap().0;
    let id1 = lookup1(&st, r, "x1").unwrap().0;
    assert_eq!(lookup1(&st, r, "x1").unwrap().0, id1);

    let s = st.stat();
    assert_eq!((s.members, s.keys, s.leases_active, s.evictions), (3, 11, 2, 0));
    assert_eq!(s.segments.len(), 2, "the client has no segment");
    let sa = s.segments.iter().find(|x| x.service_id == a).unwrap();
    assert_eq!(
        (sa.capacity, sa.used, sa.objects, sa.medium),
        (MIB, 13 * PAGE, 11, Medium::Dram)
    );
    assert_eq!((sa.host_id, sa.transfer_addr.as_str()), (1, "10.0.0.1:7000"));
    assert_eq!((used(&st, b), objects(&st, b)), (PAGE, 1));
    assert_eq!(st.count_readable(), 11);
    assert_eq!(st.usage()["dram"], (2 * MIB, 14 * PAGE));
    assert_eq!(st.usage()["hbm"], (0, 0));
    ack_everyone(&st);

    assert_eq!(st.remove_all(), 11);
    assert_eq!(st.stat().keys, 0);
    assert_eq!(st.list_keys(None, 100), (vec![], None));
    assert_eq!(st.exist(&keys(&["x2", "rep"])), vec![false, false]);
    // Unleased objects wait only for the ack; leased ones for their leases too.
    ack_everyone(&st);
    assert_eq!(
        used(&st, a),
        2 * PAGE + 2 * PAGE,
        "the WRITING object and the two leased ones remain"
    );
    assert_eq!(used(&st, b), 0);
    st.release_leases(r, &[("x0".into(), id0), ("x1".into(), id1)]);
    st.tick();
    ack_everyone(&st);
    assert_eq!(used(&st, a), 2 * PAGE + PAGE, "x1 still has a second lease");
    st.release_leases(r, &[("x1".into(), id1)]);
    st.tick();
    ack_everyone(&st);
    assert_eq!(used(&st, a), 2 * PAGE, "only the WRITING object remains");
    assert_eq!(objects(&st, a), 0);
    // remove_all leaves writes alone: the commit still succeeds.
    assert_eq!(st.finish(a, &k("writing"), &[]), vec![Ok(())]);
    assert_eq!(st.stat().keys, 1);
    assert_eq!(st.remove_all(), 1);
    assert_eq!(st.remove_all(), 0);
}

#[test]
fn batch_calls_answer_per_key_in_order() {
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, MIB);
    put(&st, a, item("a", 1, 1, &[]));
    put(&st, a, item("c", 1, 1, &[]));
    assert_eq!(st.exist(&keys(&["a", "b", "c"])), vec![true, false, true]);
    let infos = st.key_info(&keys(&["a", "", "b"]));
    assert!(infos[0].is_ok());
    assert!(matches!(infos[1], Err(ref e) if e.kind() == ErrorKind::InvalidParam));
    assert_eq!(infos[2], Err(Error::from(ErrorKind::ObjectNotExists)));
    let (peers, items) = st.lookup(a, &keys(&["c", "b", "a"]));
    assert_eq!(peers.len(), 1, "one peer entry shared by both hits");
    assert!(items[0].is_ok() && items[2].is_ok());
    assert_eq!(items[1], Err(Error::from(ErrorKind::ObjectNotExists)));
    assert_eq!(
        st.remove(&keys(&["a", "b", "a"])),
        vec![
            Ok(()),
            Err(Error::from(ErrorKind::UnmatchedKey)),
            Err(Error::from(ErrorKind::UnmatchedKey))
        ]
    );
}

#[test]
fn departed_pure_client_has_its_writes_reclaimed_without_an_index_scan() {
    let (_clock, st) = new_state(params());
    let seg = reg(&st, 1, 16 * MIB);
    let client = reg_client(&st, 2);
    let other = reg_client(&st, 3);
    put(&st, other, item("committed", 3 * PAGE, 1, &[]));
    alloc(&st, client, item("inflight-1", MIB, 1, &[])).unwrap();
    alloc(&st, client, item("inflight-2", 2 * PAGE, 1, &[])).unwrap();
    alloc(&st, other, item("others-write", PAGE, 1, &[])).unwrap();
    assert_eq!(used(&st, seg), 3 * PAGE + MIB + 2 * PAGE + PAGE);
    st.unregister(client);
    assert_eq!(
        used(&st, seg),
        3 * PAGE + PAGE,
        "the client's writes are reclaimed at once"
    );
    assert!(!st.is_member(client));
    // Everyone else's objects and writes are untouched.
    assert!(present(&st, "committed"));
    assert_eq!(st.finish(other, &k("others-write"), &[]), vec![Ok(())]);
    assert!(
        st.finish(client, &k("inflight-1"), &[])[0].is_err(),
        "a late commit of the dead client fails"
    );
    // The keys are free for a new writer.
    put(&st, other, item("inflight-1", PAGE, 1, &[]));
}

/// A ledger poll built before its owner registered again (with a new
/// MetaService after a failover or restart) carries an ack counted in the
/// old MetaService's numbering; it must not acknowledge the new ledger's
/// ops, or they never reach the owner and the objects are lost at the next
/// failover (seen as whole providers' worth of lost objects in the HA churn
/// test).
#[test]
fn an_ack_counted_against_an_earlier_metaservice_acknowledges_nothing() {
    // The old MetaService: the owner acknowledged 5,000 ops there.
    let (_c, old) = new_state(params());
    let a_old = reg(&old, 1, 64 * PAGE);
    let old_epoch = old.ledger_epoch(a_old).unwrap();
    // The new one: the owner registered again; objects are committed there.
    let (_c, st) = new_state(params());
    let a = reg(&st, 1, 64 * PAGE);
    let epoch = st.ledger_epoch(a).unwrap();
    assert_ne!(epoch, old_epoch, "each registration has its own ledger epoch");
    for i in 0..3 {
        put(&st, a, item(&format!("k{i}"), PAGE, 1, &[]));
    }
    // The stale poll arrives: nothing is acknowledged, everything stays pending.
    let (_, ops) = st.ledger_poll(a, old_epoch, 5_000).unwrap();
    assert_eq!(ops.len(), 3, "the committed objects still go to their owner");
    assert!(st.ledgers_pending() > 0);
    // The owner's own poll, in the current epoch, gets and acknowledges them.
    let (last, ops) = st.ledger_poll(a, epoch, 0).unwrap();
    assert_eq!(ops.len(), 3);
    st.ledger_poll(a, epoch, last).unwrap();
    assert_eq!(st.ledgers_pending(), 0);
}

// ---- drain ------------------------------------------------------------------

#[test]
fn drain_moves_only_replicas_drops_extra_ones_and_reports_what_does_not_fit() {
    use mmc_wire::message::DrainState;
    let (clock, st) = new_state(params());
    let a = reg(&st, 1, 4 * PAGE);
    let b = reg(&st, 2, 16 * PAGE);
    let client = reg_client(&st, 3);
    // Clear errors for what cannot be drained.
    assert!(
        matches!(st.drain(999), Err(ref e) if e.kind() == ErrorKind::InvalidParam && e.message().contains("service 999 is not a member"))
    );
    assert!(
        matches!(st.drain(client), Err(ref e) if e.kind() == ErrorKind::InvalidParam && e.message().contains("pure client"))
    );
    assert!(st.drain_status(b).is_err());

    for i in 0..6 {
        put(&st, client, item(&format!("only{i}"), PAGE, 1, &[b]));
    }
    put(&st, client, item("both", PAGE, 2, &[b, a]));
    ack_everyone(&st);
    assert_eq!(st.drain(b).unwrap().state, DrainState::Running);
    // Nothing new lands on a draining provider.
    let r = put(&st, client, item("new", PAGE, 1, &[b]));
    assert_eq!(r[0].service, a);

    // A has room for two more pages: two of the six move, four stay.
    let plan = st.drain_plan(b, 100).unwrap();
    assert!(!plan.done);
    assert_eq!(plan.moves.len(), 2);
    assert!(plan
        .moves
        .iter()
        .all(|m| plan.peers[m.dst.peer as usize].service_id == a));
    // Still readable on B until the commit.
    let k0 = plan.moves[0].key.clone();
    let info = st.key_info(&k(&k0)).pop().unwrap().unwrap();
    assert_eq!(info.replicas.iter().map(|r| r.0).collect::<Vec<_>>(), vec![b]);
    // A forged commit (unknown key, wrong id) changes nothing.
    st.drain_commit(b, &[("nope".into(), 1), (k0.clone(), plan.moves[0].object_id + 1)], &[])
        .unwrap();
    let moved: Vec<(String, u64)> = plan.moves.iter().map(|m| (m.key.clone(), m.object_id)).collect();
    st.drain_commit(b, &moved, &[]).unwrap();
    let info = st.key_info(&k(&k0)).pop().unwrap().unwrap();
    assert_eq!(info.replicas.iter().map(|r| r.0).collect::<Vec<_>>(), vec![a]);
    let info = st.key_info(&k("both")).pop().unwrap().unwrap();
    assert_eq!(info.replicas.iter().map(|r| r.0).collect::<Vec<_>>(), vec![a]);
    // The receiver's ledger records the moved objects under their ids.
    let ops = ack(&st, a);
    for m in &plan.moves {
        assert!(ops
            .iter()
            .any(|o| matches!(o, LedgerOp::Add(e) if *e.key == *m.key && e.object_id == m.object_id)));
    }
    ack_everyone(&st);
    let plan = st.drain_plan(b, 100).unwrap();
    assert!(plan.done && !plan.leave, "nothing else fits");
    let r = st.drain_status(b).unwrap();
    assert_eq!(r.state, DrainState::Incomplete);
    assert_eq!((r.moved, r.dropped_replicas, r.unmoved.len()), (2, 1, 4));
    assert!(r.unmoved.iter().all(|u| u.reason.contains("no room")));
    // B takes allocations again and still holds the four.
    let r = put(&st, client, item("back", PAGE, 1, &[b]));
    assert_eq!(r[0].service, b);
    assert_eq!(
        st.exist(&keys(&["only0", "only1", "only2", "only3", "only4", "only5"])),
        vec![true; 6]
    );

    // With room, a second drain empties B; it may leave one lease later.
    let c = reg(&st, 4, 64 * PAGE);
    st.drain(b).unwrap();
    let plan = st.drain_plan(b, 100).unwrap();
    assert_eq!(plan.moves.len(), 5);
    assert!(plan
        .moves
        .iter()
        .all(|m| plan.peers[m.dst.peer as usize].service_id == c));
    let moved: Vec<(String, u64)> = plan.moves.iter().map(|m| (m.key.clone(), m.object_id)).collect();
    st.drain_commit(b, &moved, &[]).unwrap();
    let plan = st.drain_plan(b, 100).unwrap();
    assert!(!plan.done, "waits one lease period");
    assert_eq!(st.drain_status(b).unwrap().state, DrainState::Leaving);
    clock.advance(params().lease_ms);
    let plan = st.drain_plan(b, 100).unwrap();
    assert!(plan.done && plan.leave);
    st.unregister(b);
    assert_eq!(st.drain_status(b).unwrap().state, DrainState::Done);
    assert_eq!(st.count_readable(), 9);
}

#[test]
fn a_drained_provider_that_dies_mid_drain_aborts_it_and_frees_the_copies() {
    use mmc_wire::message::DrainState;
    let (_clock, st) = new_state(params());
    let a = reg(&st, 1, 16 * PAGE);
    let b = reg(&st, 2, 16 * PAGE);
    for i in 0..4 {
        put(&st, b, item(&format!("k{i}"), PAGE, 1, &[b]));
    }
    ack_everyone(&st);
    let used_a = st.stat().segments.iter().find(|s| s.service_id == a).unwrap().used;
    st.drain(b).unwrap();
    let plan = st.drain_plan(b, 100).unwrap();
    assert_eq!(plan.moves.len(), 4);
    st.declare_dead(b, "heartbeat timeout");
    let r = st.drain_status(b).unwrap();
    assert_eq!(r.state, DrainState::Aborted);
    assert!(r.message.contains("before its drain finished"), "{}", r.message);
    let after = st.stat().segments.iter().find(|s| s.service_id == a).unwrap().used;
    assert_eq!(after, used_a, "the ranges of unfinished copies are free again");
}

// ---- removes while ledgers may come back ---------------------------------------------

/// The chaos test's failure: after a failover, provider a re-registered with
/// k; a client removed k; provider b, later, brings its replica of the same
/// object. The removed object must not come back.
#[test]
fn a_remove_during_recovery_is_not_undone_by_a_later_ledger() {
    let (clock, st) = new_state(MetaParams {
        heartbeat_timeout_ms: 3_000,
        ..params()
    });
    let entry = |offset| LedgerEntry {
        key: "k".into(),
        offset,
        size: PAGE,
        object_id: id_of("k"),
    };
    let (a, _) = st.register(&recovering_req(1, MIB, 1)).unwrap();
    assert_eq!(st.recover(a, vec![entry(0)], true), Ok(1));
    assert_eq!(st.remove(&keys(&["k"])), vec![Ok(())]);
    clock.advance(1_000);
    st.tick();
    let (b, _) = st.register(&recovering_req(2, MIB, 2)).unwrap();
    assert_eq!(st.recover(b, vec![entry(PAGE)], true), Ok(0));
    assert_eq!(st.exist(&keys(&["k"])), vec![false], "the removed object stays removed");
    assert_eq!(ack(&st, b), vec![LedgerOp::Del { offset: PAGE }], "b drops its replica");
    assert_eq!(used(&st, b), 0);
}

/// A ledger that arrives after the recovery window of a new MetaService is
/// void: its owner would have been declared dead by a leader that lived on.
#[test]
fn a_ledger_after_the_recovery_window_is_void() {
    let (clock, st) = new_state(MetaParams {
        heartbeat_timeout_ms: 3_000,
        ..params()
    });
    clock.advance(3_001);
    st.tick();
    let (a, _) = st.register(&recovering_req(1, MIB, 1)).unwrap();
    let e = LedgerEntry {
        key: "late".into(),
        offset: 0,
        size: PAGE,
        object_id: id_of("late"),
    };
    assert_eq!(st.recover(a, vec![e], true), Ok(0));
    assert_eq!(st.exist(&keys(&["late"])), vec![false]);
    assert_eq!(ack(&st, a), vec![LedgerOp::Del { offset: 0 }]);
    // A fresh provider is not affected.
    let b = reg(&st, 2, MIB);
    put(&st, b, item("new", PAGE, 1, &[]));
    assert_eq!(st.exist(&keys(&["new"])), vec![true]);
}

/// A provider declared dead comes back to the same MetaService: an object
/// only it held comes back; one removed while it was away does not, nor one
/// whose removal it had not acknowledged when it died; and after
/// `DEAD_RETURN_FACTOR` heartbeat timeouts its ledger is void.
#[test]
fn a_provider_declared_dead_brings_back_only_what_was_not_removed() {
    let (clock, st) = new_state(MetaParams {
        heartbeat_timeout_ms: 3_000,
        ..params()
    });
    let a = reg(&st, 1, MIB);
    let b = reg(&st, 2, MIB);
    for key in ["kept", "gone_while_dead", "gone_unacked"] {
        put(&st, a, item(key, PAGE, 2, &[a, b]));
    }
    put(&st, a, item("only_b", PAGE, 1, &[b]));
    let mut lb = BTreeMap::new();
    sync_ledger(&st, b, &mut lb);
    ack(&st, a);
    // Removed, but b dies before it pulls the Del.
    assert_eq!(st.remove(&keys(&["gone_unacked"])), vec![Ok(())]);
    clock.advance(3_001);
    st.heartbeat(a);
    st.tick();
    assert!(!st.is_member(b));
    assert_eq!(st.exist(&keys(&["only_b"])), vec![false]);
    assert_eq!(st.remove(&keys(&["gone_while_dead"])), vec![Ok(())]);
    ack(&st, a);

    let (again, _) = st.register(&recovering_req(2, MIB, b)).unwrap();
    assert_eq!(again, b);
    assert_eq!(st.recover(b, lb.values().cloned().collect(), true), Ok(2));
    assert_eq!(
        st.exist(&keys(&["kept", "only_b", "gone_while_dead", "gone_unacked"])),
        vec![true, true, false, false]
    );
    let kept = st.key_info(&k("kept")).pop().unwrap().unwrap();
    assert_eq!(kept.replicas.len(), 2, "b's replica of the same object joins it again");
    sync_ledger(&st, b, &mut lb);
    assert_eq!(lb.len(), 2, "b dropped the two removed objects");

    // Dead again, back too late: void.
    clock.advance(3_001);
    st.heartbeat(a);
    st.tick();
    assert!(!st.is_member(b));
    clock.advance(3_000 * mmc_meta::returns::DEAD_RETURN_FACTOR + 1);
    st.heartbeat(a);
    st.tick();
    st.register(&recovering_req(2, MIB, b)).unwrap();
    assert_eq!(st.recover(b, lb.values().cloned().collect(), true), Ok(0));
    assert_eq!(st.exist(&keys(&["only_b"])), vec![false]);
    assert_eq!(st.exist(&keys(&["kept"])), vec![true], "a's replica stays");
}

/// A remove of a key whose ledger has not arrived yet: every object of the
/// key created before the remove stays out; a put after the remove stands.
#[test]
fn a_remove_of_a_key_not_yet_recovered_keeps_its_older_objects_out() {
    let (_clock, st) = new_state(params());
    let old_id = 1_000;
    let (a, _) = st.register(&recovering_req(1, MIB, 1)).unwrap();
    assert_eq!(
        st.remove(&keys(&["k", "other"])),
        vec![Err(Error::from(ErrorKind::UnmatchedKey)); 2]
    );
    let w = reg(&st, 2, MIB);
    put(&st, w, item("k", PAGE, 1, &[w]));
    let entries = ["k", "other"]
        .iter()
        .enumerate()
        .map(|(i, key)| LedgerEntry {
            key: (*key).into(),
            offset: i as u64 * PAGE,
            size: PAGE,
            object_id: old_id,
        })
        .collect();
    assert_eq!(st.recover(a, entries, true), Ok(0));
    assert_eq!(st.exist(&keys(&["k", "other"])), vec![true, false]);
    assert_eq!(
        st.key_info(&k("k")).pop().unwrap().unwrap().replicas,
        vec![(w, Medium::Dram)],
        "k is the put made after the remove"
    );
}

/// `remove_all` during recovery removes what has not arrived yet too.
#[test]
fn remove_all_during_recovery_covers_ledgers_still_on_their_way() {
    let (_clock, st) = new_state(params());
    st.remove_all();
    let (a, _) = st.register(&recovering_req(1, MIB, 1)).unwrap();
    let e = LedgerEntry {
        key: "k".into(),
        offset: 0,
        size: PAGE,
        object_id: 1_000,
    };
    assert_eq!(st.recover(a, vec![e], true), Ok(0));
    assert_eq!(st.exist(&keys(&["k"])), vec![false]);
}
