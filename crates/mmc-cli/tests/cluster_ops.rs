//! Every client operation, single and batch, against a real cluster (one
//! MetaService and three LocalService processes), over both data paths:
//! shared memory (same host) and forced TCP. Bytes are always verified.

mod common;

use common::{pattern, Cluster, Opts};
use mmc_local::{BlockingObjectStore, Error, ErrorKind, Medium, Protocol, PutOptions};

/// The DeepSeek-style block: 61 x 128 KiB + 61 x 16 KiB in 122 buffers.
fn layered_block(key: &str) -> Vec<Vec<u8>> {
    (0..122)
        .map(|i| {
            let len = if i % 2 == 0 { 128 << 10 } else { 16 << 10 };
            pattern(&format!("{key}/{i}"), len)
        })
        .collect()
}

fn exercise_all(s: &BlockingObjectStore, tag: &str) {
    let one = PutOptions::default();
    // put / get / get_into
    let k = format!("{tag}-single");
    let v = pattern(&k, 300_000);
    s.put(&k, &v, &one).unwrap();
    assert_eq!(s.get(&k).unwrap(), v);
    let mut buf = vec![0u8; v.len()];
    s.get_into(&k, &mut buf).unwrap();
    assert_eq!(buf, v);
    assert!(s.exist(&k).unwrap());
    let info = s.key_info(&k).unwrap();
    assert_eq!(info.size, v.len() as u64);
    assert_eq!(info.replicas.len(), 1);
    assert_eq!(info.replicas[0].1, Medium::Dram);
    // duplicate put succeeds without overwriting
    s.put(&k, &pattern("other", 300_000), &one).unwrap();
    assert_eq!(s.get(&k).unwrap(), v, "duplicate put must not overwrite");

    // layers: 122 buffers of mixed sizes
    let lk = format!("{tag}-layers");
    let layers = layered_block(&lk);
    let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
    s.put_layers(&lk, &refs, &one).unwrap();
    let total: usize = layers.iter().map(|l| l.len()).sum();
    assert_eq!(s.key_info(&lk).unwrap().size, total as u64);
    let mut out: Vec<Vec<u8>> = layers.iter().map(|l| vec![0u8; l.len()]).collect();
    let mut outs: Vec<&mut [u8]> = out.iter_mut().map(|b| b.as_mut_slice()).collect();
    s.get_into_layers(&lk, &mut outs).unwrap();
    assert_eq!(out, layers);
    assert_eq!(s.get(&lk).unwrap(), layers.concat(), "layered object reads back flat");

    // batches
    let keys: Vec<String> = (0..40).map(|i| format!("{tag}-batch-{i}")).collect();
    let krefs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    let vals: Vec<Vec<u8>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| pattern(k, 4096 + i * 1000))
        .collect();
    let vrefs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
    assert!(s.put_batch(&krefs, &vrefs, &one).unwrap().iter().all(|r| r.is_ok()));
    let got = s.get_batch(&krefs).unwrap();
    for (g, v) in got.iter().zip(&vals) {
        assert_eq!(g.as_ref().unwrap(), v);
    }
    let mut bufs: Vec<Vec<u8>> = vals.iter().map(|v| vec![0u8; v.len()]).collect();
    let mut brefs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
    assert!(s.get_into_batch(&krefs, &mut brefs).unwrap().iter().all(|r| r.is_ok()));
    assert_eq!(bufs, vals);
    let mut mixed = krefs.clone();
    mixed.push("absent-key");
    let ex = s.exist_batch(&mixed).unwrap();
    assert!(ex[..40].iter().all(|&e| e));
    assert!(!ex[40]);
    let infos = s.key_info_batch(&mixed).unwrap();
    assert_eq!(infos[3].as_ref().unwrap().size, 7096);
    assert_eq!(infos[40], Err(Error::from(ErrorKind::ObjectNotExists)));
    let gb = s.get_batch(&mixed).unwrap();
    assert_eq!(gb[40], Err(Error::from(ErrorKind::ObjectNotExists)));

    // layered batch
    let lkeys: Vec<String> = (0..3).map(|i| format!("{tag}-lbatch-{i}")).collect();
    let lvals: Vec<Vec<Vec<u8>>> = lkeys
        .iter()
        .map(|k| vec![pattern(k, 5000), pattern(&format!("{k}+"), 7000)])
        .collect();
    let lrefs: Vec<Vec<&[u8]>> = lvals
        .iter()
        .map(|ls| ls.iter().map(|l| l.as_slice()).collect())
        .collect();
    let lk: Vec<&str> = lkeys.iter().map(|k| k.as_str()).collect();
    assert!(s.put_layers_batch(&lk, &lrefs, &one).unwrap().iter().all(|r| r.is_ok()));
    for (k, ls) in lk.iter().zip(&lvals) {
        assert_eq!(s.get(k).unwrap(), ls.concat());
    }

    // remove
    s.remove(&keys[0]).unwrap();
    assert_eq!(s.remove(&keys[0]), Err(Error::from(ErrorKind::UnmatchedKey)));
    assert_eq!(s.get(&keys[0]), Err(Error::from(ErrorKind::ObjectNotExists)));
    let rb = s.remove_batch(&[keys[1].as_str(), keys[0].as_str()]).unwrap();
    assert_eq!(rb, vec![Ok(()), Err(Error::from(ErrorKind::UnmatchedKey))]);
    assert!(!s.exist(&keys[1]).unwrap());
}

#[test]
fn every_operation_over_shared_memory() {
    let c = Cluster::start(Opts::default());
    let s = c.client(Protocol::Auto, 0);
    exercise_all(&s, "shm");
    assert_eq!(
        s.store().data_path_uses_ring(),
        Some(true),
        "a client on the MetaService's host sends its data-path requests through the shared-memory ring"
    );
    // a client contributing its own segment works too (writer-local first)
    let own = c.client(Protocol::Auto, 16 << 20);
    own.put("own-key", &pattern("own-key", 10_000), &PutOptions::default())
        .unwrap();
    let info = own.key_info("own-key").unwrap();
    assert_eq!(
        info.replicas[0].0,
        own.service_id(),
        "the writer's own segment is preferred"
    );
    assert_eq!(s.get("own-key").unwrap(), pattern("own-key", 10_000));
    let n = s.remove_all().unwrap();
    assert!(n >= 40, "remove_all removed {n}");
    assert!(!s.exist("shm-single").unwrap());
    c.wait_until(std::time::Duration::from_secs(5), "space freed", |st| st.keys == 0);
    own.close();
    s.close();
}

#[test]
fn every_operation_over_forced_tcp() {
    let c = Cluster::start(Opts::default());
    let s = c.client(Protocol::Tcp, 0);
    exercise_all(&s, "tcp");
    assert_eq!(
        s.store().data_path_uses_ring(),
        Some(false),
        "forced TCP keeps the control path on TCP too"
    );
    // large objects are split across several connections
    let big = pattern("big", 9 << 20);
    s.put("big", &big, &PutOptions::default()).unwrap();
    assert_eq!(s.get("big").unwrap(), big);
    // a shm reader sees what the tcp writer wrote
    let shm = c.client(Protocol::Auto, 0);
    assert_eq!(shm.get("tcp-single").unwrap(), pattern("tcp-single", 300_000));
    s.close();
    shm.close();
}

#[test]
fn replicas_and_placement() {
    let c = Cluster::start(Opts::default());
    let s = c.client(Protocol::Auto, 0);
    let ids: Vec<u32> = c.locals.iter().map(|p| p.service_id).collect();
    let two = PutOptions {
        replicas: 2,
        preferred: vec![],
    };
    s.put("r2", &pattern("r2", 50_000), &two).unwrap();
    let info = s.key_info("r2").unwrap();
    assert_eq!(info.replicas.len(), 2);
    assert_ne!(info.replicas[0].0, info.replicas[1].0, "replicas on distinct services");
    let pref = PutOptions {
        replicas: 1,
        preferred: vec![ids[2]],
    };
    s.put("pref", &pattern("pref", 1000), &pref).unwrap();
    assert_eq!(s.key_info("pref").unwrap().replicas[0].0, ids[2]);
    let four = PutOptions {
        replicas: 4,
        preferred: vec![],
    };
    match s.put("r4", b"x", &four) {
        Err(ref e) if e.kind() == ErrorKind::NoProvider => {
            assert!(e.message().contains("4 replicas"), "{e}")
        }
        other => panic!("expected NoProvider (3 providers alive), got {other:?}"),
    }
    let three = PutOptions {
        replicas: 3,
        preferred: vec![],
    };
    s.put("r3", &pattern("r3", 70_000), &three).unwrap();
    assert_eq!(s.key_info("r3").unwrap().replicas.len(), 3);
    assert_eq!(s.get("r3").unwrap(), pattern("r3", 70_000));
    s.close();
}

#[test]
fn async_commit_puts_are_visible_to_the_writer_at_once() {
    let c = Cluster::start(Opts::default());
    let mut cfg = c.client_config(Protocol::Auto, 0);
    cfg.async_commit = true;
    let w = mmc_local::ObjectStore::connect(cfg).unwrap().blocking();
    let other = c.client(Protocol::Auto, 0);
    for i in 0..50 {
        let k = format!("async-{i}");
        w.put(&k, &pattern(&k, 64 << 10), &PutOptions::default()).unwrap();
        // The writer's next request is processed after its commit.
        assert_eq!(w.get(&k).unwrap(), pattern(&k, 64 << 10));
    }
    // Others see the objects once the commits are processed.
    assert!(other.exist("async-49").unwrap());
    let keys: Vec<String> = (0..50).map(|i| format!("async-{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    assert!(other.exist_batch(&refs).unwrap().iter().all(|&e| e));
    // A duplicate is still reported as success without overwriting.
    w.put("async-0", &pattern("x", 10), &PutOptions::default()).unwrap();
    assert_eq!(other.get("async-0").unwrap(), pattern("async-0", 64 << 10));
    w.close();
    other.close();
}

#[test]
fn cli_output_into_a_closed_pipe_ends_quietly() {
    let c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    // `mmc stat | head -0`: the reader is gone before anything is written.
    let mut child = std::process::Command::new(common::MMC)
        .args(["stat", "--meta", &c.meta_addr])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// More replicas than live memory providers is the retryable NO_PROVIDER
/// (not INVALID_PARAM); it succeeds once another provider joins.
#[test]
fn too_few_providers_is_retryable_no_provider() {
    let mut cluster = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let c = cluster.client(Protocol::Tcp, 0);
    let two = PutOptions {
        replicas: 2,
        preferred: vec![],
    };
    let data = pattern("np", 4096);
    match c.put("np", &data, &two) {
        Err(ref e) if e.kind() == ErrorKind::NoProvider => {
            assert_eq!(e.code(), mmc_wire::error::code::NO_PROVIDER);
            assert!(e.is_retryable());
            assert!(e.to_string().contains("2 replicas requested"), "{e}");
        }
        other => panic!("expected NoProvider, got {other:?}"),
    }
    cluster.add_local();
    // Retried as the code invites, the put succeeds once the new provider
    // has joined.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match c.put("np", &data, &two) {
            Ok(()) => break,
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("put after a second provider joined: {e:?}"),
        }
    }
    assert_eq!(c.get("np").unwrap(), data);
    c.close();
}
