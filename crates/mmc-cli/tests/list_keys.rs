//! Paging all keys (HTTP `/get_all_keys` and the `ListKeys` RPC) while
//! readers run gets: the key-ordered cursor neither skips nor repeats a key.

mod common;

use common::{Cluster, Opts};
use mmc_local::{Protocol, PutOptions};
use mmc_wire::message::{Request, Response};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KEYS: usize = 10_000;

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn check(listed: Vec<String>, names: &BTreeSet<String>, how: &str) {
    let set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        set.len(),
        listed.len(),
        "{how}: {} keys repeated",
        listed.len() - set.len()
    );
    let missed = names.difference(&set).count();
    assert_eq!(missed, 0, "{how}: {missed} keys missed");
    assert_eq!(&set, names, "{how}: unexpected keys");
}

#[test]
fn paging_with_readers_running_never_skips_or_repeats() {
    let c = Cluster::start(Opts {
        locals: 1,
        http: true,
        ..Opts::default()
    });
    let writer = c.client(Protocol::Tcp, 0);
    let names: Vec<String> = (0..KEYS).map(|i| format!("page-key-{i}")).collect();
    for chunk in names.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let values: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        for r in writer.put_batch(&keys, &values, &PutOptions::default()).unwrap() {
            r.unwrap();
        }
    }
    writer.close();
    let all: BTreeSet<String> = names.iter().cloned().collect();
    let names = Arc::new(names);

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (stop, names, store) = (stop.clone(), names.clone(), c.client(Protocol::Tcp, 0));
            std::thread::spawn(move || {
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    let k = &names[i % names.len()];
                    assert_eq!(store.get(k).unwrap(), k.as_bytes());
                    i += 104_729;
                }
                store.close();
            })
        })
        .collect();

    // HTTP, 250 keys a page.
    let http = c.http_addr.clone().unwrap();
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let body = http_get(&http, &format!("/get_all_keys?limit=250&cursor={cursor}"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        listed.extend(
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(n) => cursor = n.to_owned(),
            None => break,
        }
    }
    check(listed, &all, "HTTP /get_all_keys");

    // The ListKeys RPC, 333 keys a page.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = rt.block_on(async {
        let mc = mmc_local::AdminClient::new(
            c.meta_addr.clone(),
            Duration::from_secs(5),
            tokio::runtime::Handle::current(),
        )
        .with_token(c.token());
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            match mc.call(&Request::ListKeys { after, limit: 333 }).await {
                Ok(Response::Keys { keys, next_cursor }) => {
                    listed.extend(keys);
                    match next_cursor {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
                other => panic!("ListKeys: {other:?}"),
            }
        }
        listed
    });
    check(listed, &all, "ListKeys RPC");

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
}
