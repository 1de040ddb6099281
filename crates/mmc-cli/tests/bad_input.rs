//! Bad input on every entry point: API arguments, control frames sent to
//! the MetaService, and requests sent to a transfer server. Each gets a
//! clear error and the services keep serving everyone else.

mod common;

use common::{pattern, Cluster, Opts};
use mmc_local::{Error, ErrorKind, Protocol, PutOptions};
use mmc_wire::frame::{self, FrameKind};
use mmc_wire::message::{Request, Response};
use mmc_wire::transfer::{decode_reply, Header, Op, HEADER_LEN, REPLY_LEN};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(ref e) if e.kind() == ErrorKind::InvalidParam => assert!(!e.message().is_empty(), "{what}: empty message"),
        other => panic!("{what}: expected InvalidParam, got {other:?}"),
    }
}

#[test]
fn bad_api_arguments_are_rejected_with_clear_errors() {
    let c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    let one = PutOptions::default();
    assert_invalid(s.put("", b"v", &one), "empty key");
    let long = "k".repeat(257);
    assert_invalid(s.put(&long, b"v", &one), "257-byte key");
    assert_invalid(s.get(&long), "257-byte key get");
    assert_invalid(s.put("ok", b"", &one), "empty value");
    assert_invalid(
        s.put(
            "ok",
            b"v",
            &PutOptions {
                replicas: 0,
                preferred: vec![],
            },
        ),
        "0 replicas",
    );
    assert_invalid(
        s.put(
            "ok",
            b"v",
            &PutOptions {
                replicas: 9,
                preferred: vec![],
            },
        ),
        "9 replicas",
    );
    let max = "m".repeat(256);
    s.put(&max, b"256-byte keys are fine", &one).unwrap();
    assert_eq!(s.get(&max).unwrap(), b"256-byte keys are fine");

    let keys: Vec<String> = (0..16385).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    let vals: Vec<&[u8]> = vec![b"v".as_slice(); 16385];
    assert_invalid(s.put_batch(&refs, &vals, &one), "batch of 16385");
    assert_invalid(s.exist_batch(&refs), "exist batch of 16385");
    assert_invalid(s.get_batch(&refs), "get batch of 16385");
    assert_invalid(s.remove_batch(&refs), "remove batch of 16385");
    assert_invalid(s.put_batch(&refs[..2], &vals[..1], &one), "keys/values length mismatch");
    assert_eq!(s.exist_batch(&refs[..16384]).unwrap().len(), 16384, "16384 is allowed");

    // per-key errors inside an otherwise good batch
    let r = s
        .put_batch(&["good", "", "also-good"], &[b"1", b"2", b"3"], &one)
        .unwrap();
    assert!(r[0].is_ok() && r[2].is_ok());
    assert!(matches!(r[1], Err(ref e) if e.kind() == ErrorKind::InvalidParam));

    // size mismatches on get_into and layers
    let v = pattern("sized", 10_000);
    s.put("sized", &v, &one).unwrap();
    let mut small = vec![0u8; 9_999];
    assert_invalid(s.get_into("sized", &mut small), "get_into too small");
    let mut big = vec![0u8; 10_001];
    assert_invalid(s.get_into("sized", &mut big), "get_into too big");
    let (mut a, mut b) = (vec![0u8; 5000], vec![0u8; 4000]);
    assert_invalid(
        s.get_into_layers("sized", &mut [&mut a, &mut b]),
        "layers sum too small",
    );
    let mut empty: Vec<&mut [u8]> = vec![];
    assert_invalid(s.get_into_layers("sized", &mut empty), "no layers");
    let (mut a, mut b) = (vec![0u8; 5000], vec![0u8; 5000]);
    s.get_into_layers("sized", &mut [&mut a, &mut b]).unwrap();
    assert_eq!([a, b].concat(), v);
    assert_eq!(s.get("missing"), Err(Error::from(ErrorKind::ObjectNotExists)));
    assert_eq!(s.remove("missing"), Err(Error::from(ErrorKind::UnmatchedKey)));
    s.close();
}

fn read_response(sock: &mut TcpStream) -> std::io::Result<(u64, Response)> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    sock.read_exact(&mut body)?;
    let id = u64::from_le_bytes(body[2..10].try_into().unwrap());
    Ok((id, postcard::from_bytes(&body[10..]).unwrap()))
}

/// True when the peer closed the connection (EOF or reset) within 5 s.
fn closed(sock: &mut TcpStream) -> bool {
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    loop {
        match sock.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn malformed_control_frames_close_only_that_connection() {
    let c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let s = c.client(Protocol::Auto, 0);
    s.put("survivor", b"still here", &PutOptions::default()).unwrap();

    // A length beyond the limit: closed before anything is allocated.
    let mut x = c.control_conn();
    x.write_all(&u32::MAX.to_le_bytes()).unwrap();
    assert!(closed(&mut x), "oversize frame closes the connection");

    // A wrong version byte.
    let mut x = c.control_conn();
    let mut f = frame::encode(FrameKind::Request, 1, &Request::Stat).unwrap();
    f[4] = 77;
    x.write_all(&f).unwrap();
    assert!(closed(&mut x), "bad version closes the connection");

    // Random garbage.
    let mut x = c.control_conn();
    x.write_all(&[0x0b, 0, 0, 0, 1, 0, 9, 9, 9, 9, 9, 9, 9, 9, 0xff])
        .unwrap();
    let _ = closed(&mut x);

    // A well-formed frame whose payload is not a request: answered with
    // INVALID_PARAM, and the connection keeps working.
    let mut x = c.control_conn();
    x.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut f = frame::encode(FrameKind::Request, 5, &Request::Stat).unwrap();
    let n = f.len();
    f[n - 1] = 0xEE; // an enum tag that does not exist
    f.extend_from_slice(&frame::encode(FrameKind::Request, 6, &Request::Stat).unwrap());
    x.write_all(&f).unwrap();
    let (id, r) = read_response(&mut x).unwrap();
    assert_eq!(id, 5);
    match r {
        Response::Failed(ref e) if e.kind() == ErrorKind::InvalidParam => {
            assert!(e.message().contains("undecodable"), "{e}")
        }
        other => panic!("expected InvalidParam, got {other:?}"),
    }
    let (id, r) = read_response(&mut x).unwrap();
    assert_eq!(id, 6);
    assert!(matches!(r, Response::Stat(_)));

    // A response frame sent to the server is a protocol violation.
    let mut x = c.control_conn();
    x.write_all(&frame::encode(FrameKind::Response, 1, &Response::Ok).unwrap())
        .unwrap();
    assert!(closed(&mut x));

    // Oversize batch in a well-formed request.
    let mut x = c.control_conn();
    x.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let keys: Vec<String> = (0..16385).map(|i| i.to_string()).collect();
    x.write_all(&frame::encode(FrameKind::Request, 9, &Request::Exist { keys }).unwrap())
        .unwrap();
    assert!(matches!(read_response(&mut x).unwrap().1, Response::Failed(ref e) if e.kind() == ErrorKind::InvalidParam));

    // Everyone else is still served.
    assert_eq!(s.get("survivor").unwrap(), b"still here");
    s.put("after-garbage", b"ok", &PutOptions::default()).unwrap();
    s.close();
}

#[test]
fn malformed_transfer_requests_close_only_that_connection() {
    let c = Cluster::start(Opts {
        locals: 1,
        ..Opts::default()
    });
    let st = c.stat().unwrap();
    let seg = &st.segments[0];
    let addr = seg.transfer_addr.clone();
    let tcp = c.client(Protocol::Tcp, 0);
    tcp.put("over-tcp", &pattern("over-tcp", 50_000), &PutOptions::default())
        .unwrap();

    let reply_then_close = |bytes: &[u8]| {
        let mut x = c.transfer_conn(&addr);
        x.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        x.write_all(bytes).unwrap();
        let mut r = [0u8; REPLY_LEN];
        x.read_exact(&mut r).unwrap();
        assert_eq!(decode_reply(&r), mmc_wire::error::code::INVALID_PARAM);
        assert!(closed(&mut x));
    };
    let good = |op, segment, offset, len| {
        Header {
            op,
            segment,
            offset,
            len,
        }
        .encode()
    };
    // bad magic
    let mut h = good(Op::Read, seg.service_id, 0, 16);
    h[0..4].copy_from_slice(b"EVIL");
    reply_then_close(&h);
    // unknown op
    let mut h = good(Op::Read, seg.service_id, 0, 16);
    h[5] = 42;
    reply_then_close(&h);
    // wrong segment id
    reply_then_close(&good(Op::Read, seg.service_id + 100, 0, 16));
    // out of range, overflowing, empty
    reply_then_close(&good(Op::Read, seg.service_id, seg.capacity - 8, 16));
    reply_then_close(&good(Op::Write, seg.service_id, u64::MAX - 4, 16));
    reply_then_close(&good(Op::Read, seg.service_id, 0, 0));
    // truncated header then hang-up
    let mut x = c.transfer_conn(&addr);
    x.write_all(&[0u8; HEADER_LEN / 2]).unwrap();
    drop(x);

    // The transfer server still serves real clients.
    assert_eq!(tcp.get("over-tcp").unwrap(), pattern("over-tcp", 50_000));
    tcp.put("over-tcp-2", b"fine", &PutOptions::default()).unwrap();
    assert_eq!(tcp.get("over-tcp-2").unwrap(), b"fine");
    tcp.close();
}
