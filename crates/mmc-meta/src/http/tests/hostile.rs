//! Clients that misbehave or push limits: pipelining, malformed heads,
//! slow and idle clients, too many connections, random bytes.

use super::*;

#[tokio::test]
async fn keep_alive_and_pipelining() {
    let (addr, _) = start().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut pending = Vec::new();
    // Two requests in one write, then a third after the answers.
    s.write_all(b"GET /health HTTP/1.1\r\n\r\nGET /role HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let a = read_reply(&mut s, &mut pending).await.expect("first");
    let b = read_reply(&mut s, &mut pending).await.expect("second");
    assert_eq!((a.status, a.body.as_str()), (200, "ok"));
    assert_eq!(a.header("connection"), Some("keep-alive"));
    assert_eq!(b.json()["role"], "leader");
    // Byte-at-a-time delivery, bare LF line ends, leading blank line.
    for &byte in b"\r\nGET /query_key?key=k%2C2 HTTP/1.1\nHost: x\n\n" {
        s.write_all(&[byte]).await.expect("write");
    }
    let c = read_reply(&mut s, &mut pending).await.expect("third");
    assert_eq!(c.status, 200);
    // Connection: close is honoured.
    s.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let d = read_reply(&mut s, &mut pending).await.expect("fourth");
    assert_eq!(d.header("connection"), Some("close"));
    assert!(read_reply(&mut s, &mut pending).await.is_none());
    // HTTP/1.0 closes by default.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.expect("write");
    let mut pending = Vec::new();
    assert_eq!(read_reply(&mut s, &mut pending).await.expect("reply").status, 200);
    assert!(read_reply(&mut s, &mut pending).await.is_none());
}

/// Heads hyper's parser refuses are answered by hyper (status only, no
/// JSON body); requests it parses but the endpoint refuses get a JSON
/// error. Either way the connection closes and the server stays healthy.
#[tokio::test]
async fn malformed_requests() {
    let (addr, _) = start().await;
    let huge_header = format!("GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD + 10));
    let huge_line = format!("GET /query_key?key={} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD + 10));
    let many_headers = format!("GET /health HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_HEADERS + 1));
    // (request, status, answered by the endpoint with a JSON error)
    let cases: Vec<(Vec<u8>, Option<u16>, bool)> = vec![
        (b"\x00\x01\x02garbage\xff\xfe\r\n\r\n".to_vec(), Some(400), false),
        (b"hello\r\n\r\n".to_vec(), Some(400), false),
        (b"GET /health HTTP/1.1 x\r\n\r\n".to_vec(), Some(400), false),
        (b"GET /health HTTP/1.1\r\nNoColon\r\n\r\n".to_vec(), Some(400), false),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
            Some(400),
            false,
        ),
        (
            b"POST /health HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody".to_vec(),
            Some(405),
            true,
        ),
        (b"DELETE /query_key?key=a HTTP/1.1\r\n\r\n".to_vec(), Some(405), true),
        // The hand-written parser answered 505; httparse refuses the version.
        (b"GET /health HTTP/9.9\r\n\r\n".to_vec(), Some(400), false),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            Some(400),
            true,
        ),
        (
            b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            Some(400),
            true,
        ),
        (b"GET http://x/health HTTP/1.1\r\n\r\n".to_vec(), Some(400), true),
        (
            b"GET /role HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n".to_vec(),
            Some(400),
            true,
        ),
        (huge_header.into_bytes(), Some(431), false),
        // The hand-written parser answered 414 for a long request line;
        // hyper counts it against the head limit.
        (huge_line.into_bytes(), Some(431), false),
        (many_headers.into_bytes(), Some(431), false),
        // No end of head and then EOF: nothing to answer.
        (b"GET /health HTTP/1.1\r\nHost".to_vec(), None, false),
    ];
    for (bytes, want, ours) in cases {
        let what = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.write_all(&bytes).await;
        if want.is_none() {
            let _ = s.shutdown().await;
        }
        let mut pending = Vec::new();
        let got = read_reply(&mut s, &mut pending).await;
        assert_eq!(got.as_ref().map(|r| r.status), want, "{what:?}");
        if let Some(r) = got {
            if ours {
                assert_eq!(r.header("connection"), Some("close"), "{what:?}");
                assert!(r.json()["error"].is_string(), "{what:?}");
                assert_eq!(r.header("allow").is_some(), r.status == 405, "{what:?}");
            }
            // The server closed the connection after the error.
            assert!(read_reply(&mut s, &mut pending).await.is_none(), "{what:?}");
        }
        assert_healthy(addr).await;
    }
    // Endless garbage without a line end is cut off at the head limit.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let junk = vec![b'x'; 64 * 1024];
    let _ = s.write_all(&junk).await;
    let got = read_reply(&mut s, &mut Vec::new()).await;
    // Usually answered; the peer may also see a reset.
    if let Some(r) = got {
        assert!(matches!(r.status, 400 | 431), "{}", r.status);
    }
    assert_healthy(addr).await;
}
#[tokio::test]
async fn slow_and_idle_clients_are_closed() {
    let addr = start_limited(64).await;
    // Slowloris: a head that never completes, one byte now and then.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\n").await.expect("write");
    let trickle = async {
        for _ in 0..1000 {
            if s.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), trickle).await;
    let got = read_to_close(&mut s).await;
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    // An idle keep-alive connection is closed after its answer.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\n\r\n").await.expect("write");
    let got = read_to_close(&mut s).await;
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    // A connection that never sends anything is closed too.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    assert!(read_to_close(&mut s).await.is_empty());
    assert_healthy(addr).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let addr = start_limited(2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut pending = Vec::new();
        s.write_all(b"GET /health HTTP/1.1\r\n\r\n").await.expect("write");
        assert_eq!(read_reply(&mut s, &mut pending).await.expect("reply").status, 200);
        held.push(s);
    }
    let r = raw(addr, b"GET /health HTTP/1.1\r\n\r\n").await.expect("refusal");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "too many connections");
    assert_eq!(r.header("connection"), Some("close"));
    // A slot frees when a connection closes (after its short linger).
    drop(held.pop());
    let mut served = false;
    for _ in 0..200 {
        if raw(addr, b"GET /health HTTP/1.1\r\n\r\n")
            .await
            .is_some_and(|r| r.status == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(served, "a freed slot serves again");
}
#[tokio::test]
async fn random_bytes_never_break_the_server() {
    let (addr, _) = start().await;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..50 {
        let len = 1 + (round * 37) % 600;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.write_all(&bytes).await;
        let _ = s.write_all(b"\r\n\r\n").await;
        let _ = s.shutdown().await;
        if let Some(r) = read_reply(&mut s, &mut Vec::new()).await {
            assert!(r.status >= 400, "{}", r.status);
        }
    }
    assert_healthy(addr).await;
}
