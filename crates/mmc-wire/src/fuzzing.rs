//! Fuzzing entry points for the decoders of this crate.
//!
//! Each function takes arbitrary bytes, feeds them to one decoder and
//! checks properties that must hold for any input (no panic, no read
//! outside a buffer, decode-encode-decode gives the same value). The fuzz
//! targets under `fuzz/fuzz_targets/` and the corpus replay tests under
//! `tests/fuzz_corpus.rs` call these same functions, so a corpus file that
//! once crashed a target keeps being checked by `cargo test`.
//!
//! Not part of the API: hidden from the documentation and free to change.

use crate::frame::{self, Frame, FrameError, FrameKind, HEADER_AFTER_LEN};
use crate::frame_reader::{Fill, FrameReader, ReadSource};
use crate::message::{Request, Response};
use crate::shm_ring::{RingRx, RingTx, ShmRegion};
use crate::transfer;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A small deterministic generator driven by fuzz bytes (chunk sizes,
/// stalls), so one input always replays the same way.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Polls a future that never waits (its reads come from memory) to
/// completion without a runtime.
fn run_ready<F: Future>(fut: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory read returned Pending"),
    }
}

/// Decodes a payload as the message its frame kind announces and checks
/// that re-encoding it (alone and inside a frame) decodes to the same value.
fn check_payload(f: &Frame) {
    match f.kind {
        FrameKind::Request => {
            if let Ok(m) = f.decode::<Request>() {
                round_trip_message(f.kind, f.id, &m);
            }
        }
        FrameKind::Response => {
            if let Ok(m) = f.decode::<Response>() {
                round_trip_message(f.kind, f.id, &m);
            }
        }
    }
}

fn round_trip_message<T>(kind: FrameKind, id: u64, m: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = postcard::to_allocvec(m).expect("a decoded message re-encodes");
    let again: T = postcard::from_bytes(&bytes).expect("a re-encoded message decodes");
    assert_eq!(&again, m, "postcard decode-encode-decode changed the message");
    let framed = frame::encode(kind, id, m).expect("a decoded message fits a frame");
    let mut cur = io::Cursor::new(framed);
    let f = run_ready(frame::read_frame(&mut cur))
        .expect("an encoded frame reads back")
        .expect("an encoded frame is not end of stream");
    assert_eq!((f.kind, f.id), (kind, id));
    assert_eq!(&f.decode::<T>().expect("framed message decodes"), m);
}

/// A fake socket handing out `data` in chunks of fuzz-chosen sizes, with
/// `WouldBlock` and `Interrupted` stalls in between.
struct ChunkedSource {
    data: Vec<u8>,
    pos: Cell<usize>,
    rng: Cell<u64>,
    max_chunk: usize,
}

impl ReadSource for ChunkedSource {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rng = Lcg(self.rng.get());
        let r = rng.next();
        self.rng.set(rng.0);
        match r % 8 {
            0 => return Err(io::ErrorKind::WouldBlock.into()),
            1 => return Err(io::ErrorKind::Interrupted.into()),
            _ => {}
        }
        let pos = self.pos.get();
        let left = self.data.len() - pos;
        let n = left.min(buf.len()).min(1 + (r as usize >> 3) % self.max_chunk);
        buf[..n].copy_from_slice(&self.data[pos..pos + n]);
        self.pos.set(pos + n);
        Ok(n)
    }
}

/// Frames read one at a time with [`frame::read_frame`] until the stream
/// ends or a frame is refused.
fn frames_by_read_frame(stream: &[u8]) -> Vec<Frame> {
    let mut cur = io::Cursor::new(stream);
    let mut out = Vec::new();
    while let Ok(Some(f)) = run_ready(frame::read_frame(&mut cur)) {
        out.push(f);
    }
    out
}

/// Frames parsed out of `source` by a [`FrameReader`] until the source is
/// drained or a frame is refused.
fn frames_by_reader<S: ReadSource>(reader: &mut FrameReader<S>) -> Vec<Frame> {
    let mut out = Vec::new();
    // Each round reads something or stalls; a stall is bounded by the
    // generator (it cannot stall forever), but bound the loop anyway.
    for _ in 0..1_000_000 {
        match reader.next_buffered() {
            Ok(Some(f)) => {
                out.push(f);
                continue;
            }
            Ok(None) => {}
            Err(_) => return out,
        }
        match reader.try_fill() {
            Ok(Fill::Data | Fill::Empty) => {}
            Ok(Fill::Closed) | Err(_) => return out,
        }
    }
    panic!("FrameReader made no progress");
}

fn same_frames(a: &[Frame], b: &[Frame]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.kind == y.kind && x.id == y.id && x.payload == y.payload)
}

/// Control connection bytes: `data[0]` seeds the chunking, `data[1]`
/// bounds chunk sizes, the rest is the byte stream.
///
/// Checks `parse_head` on the stream's first header, that `read_frame`
/// over a cursor and a [`FrameReader`] fed the same bytes in arbitrary
/// chunks produce the same frames, that every frame's payload either
/// fails to decode or round-trips, and that the raw stream decodes (or
/// not) as a `Request` and a `Response` without panicking.
pub fn control_frame(data: &[u8]) {
    let (seed, max_chunk, stream) = match data {
        [s, m, rest @ ..] => (*s as u64, 1 + *m as usize, rest),
        _ => (0, 1, data),
    };
    if let Some(head) = stream.get(4..4 + HEADER_AFTER_LEN) {
        let head: &[u8; HEADER_AFTER_LEN] = head.try_into().expect("header bytes");
        match frame::parse_head(head) {
            Ok((kind, id)) => {
                assert_eq!(head[0], frame::FRAME_VERSION);
                assert_eq!(kind as u8, head[1]);
                assert_eq!(id.to_le_bytes(), head[2..10]);
            }
            Err(FrameError::BadVersion(_) | FrameError::BadKind(_)) => {}
            Err(e) => panic!("parse_head failed with {e}"),
        }
    }

    let by_read = frames_by_read_frame(stream);
    let mut reader = FrameReader::new(ChunkedSource {
        data: stream.to_vec(),
        pos: Cell::new(0),
        rng: Cell::new(seed),
        max_chunk,
    });
    let by_reader = frames_by_reader(&mut reader);
    assert!(
        same_frames(&by_read, &by_reader),
        "read_frame found {} frames, FrameReader {}",
        by_read.len(),
        by_reader.len()
    );
    for f in &by_read {
        check_payload(f);
    }

    if let Ok(m) = postcard::from_bytes::<Request>(stream) {
        round_trip_message(FrameKind::Request, 0, &m);
    }
    if let Ok(m) = postcard::from_bytes::<Response>(stream) {
        round_trip_message(FrameKind::Response, 0, &m);
    }
}

/// Transfer-protocol bytes: the first 32 as a request header, the first 64
/// as a reply. A header that decodes must encode to bytes that decode to
/// the same header and carry the same magic, version, op and fields.
pub fn transfer_header(data: &[u8]) {
    if let Some(b) = data.get(..transfer::HEADER_LEN) {
        let b: &[u8; transfer::HEADER_LEN] = b.try_into().expect("header bytes");
        if let Ok(h) = transfer::Header::decode(b) {
            let enc = h.encode();
            assert_eq!(transfer::Header::decode(&enc), Ok(h));
            // Everything but the reserved bytes is reproduced.
            for range in [0..6, 8..12, 16..32] {
                assert_eq!(enc[range.clone()], b[range]);
            }
        }
    }
    if let Some(b) = data.get(..transfer::REPLY_LEN) {
        let b: &[u8; transfer::REPLY_LEN] = b.try_into().expect("reply bytes");
        let code = transfer::decode_reply(b);
        assert_eq!(transfer::decode_reply(&transfer::encode_reply(code)), code);
    }
}

/// Takes the next `n` bytes of a fuzz input, or all that is left.
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (a, b) = data.split_at(n.min(data.len()));
    *data = b;
    a
}

fn take_u64(data: &mut &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let t = take(data, 8);
    b[..t.len()].copy_from_slice(t);
    u64::from_le_bytes(b)
}

/// Shared-memory ring bytes: a program of peer actions and reads.
///
/// Creates a fresh region and, for each op byte of `data`, lets the "peer"
/// store arbitrary values in the shared indices and sleeping flags, write
/// arbitrary bytes anywhere in the rings, or produce through [`RingTx`]
/// (raw bytes or whole frames); or reads through a [`FrameReader`] over a
/// [`RingRx`], or re-attaches either end (which trusts the shared index
/// it starts from). A read may fail (a corrupt index is `InvalidData`), but
/// must never panic or touch memory outside the ring and the read buffer.
/// While the peer behaves (only produces through `RingTx`), every frame
/// written arrives intact and in order.
pub fn ring_frames(data: &[u8]) {
    let Ok(region) = ShmRegion::create() else {
        return; // out of file descriptors or memory: nothing to test
    };
    let region = Arc::new(region);
    let mut data = data;
    let ring = take(&mut data, 1).first().map_or(0, |b| (b & 1) as usize);
    let mut tx = RingTx::new(region.clone(), ring);
    let mut reader = FrameReader::new(RingRx::new(region.clone(), ring));
    // Frames written and not yet read, while the peer has not scribbled.
    let mut expected: Option<std::collections::VecDeque<(u64, Vec<u8>)>> = Some(Default::default());
    let mut next_id = 0u64;
    let mut ops = 0;
    while let Some(&op) = take(&mut data, 1).first() {
        ops += 1;
        if ops > 512 {
            break;
        }
        match op % 11 {
            0 => {
                region.peer_store_index(ring, true, take_u64(&mut data));
                expected = None;
            }
            1 => {
                region.peer_store_index(ring, false, take_u64(&mut data));
                expected = None;
            }
            2 => region.peer_store_sleeping(ring, take_u64(&mut data) as u32),
            3 => {
                let at = take_u64(&mut data) as usize;
                let len = take(&mut data, 1).first().copied().unwrap_or(0) as usize;
                region.peer_write_bytes(ring, at, take(&mut data, len));
                expected = None;
            }
            4 => {
                // Raw bytes through the producer: the frame boundary is lost.
                let len = take(&mut data, 1).first().copied().unwrap_or(0) as usize;
                let _ = tx.write(take(&mut data, len));
                expected = None;
            }
            5 => {
                // A whole frame through the producer, with a size in
                // 0..64 KiB so frames also wrap around the ring.
                let len = take(&mut data, 2);
                let len = len.iter().fold(0usize, |a, &b| a << 8 | b as usize);
                let payload: Vec<u8> = (0..len).map(|i| (i as u64 ^ next_id) as u8).collect();
                let bytes = frame_bytes(next_id, &payload);
                match tx.write(&bytes) {
                    Ok(n) if n == bytes.len() => {
                        if let Some(q) = &mut expected {
                            q.push_back((next_id, payload));
                        }
                    }
                    // Partly written (ring full) or refused (corrupt index).
                    _ => expected = None,
                }
                next_id += 1;
            }
            6 | 7 => {
                // Read what is there.
                for _ in 0..64 {
                    match reader.next_buffered() {
                        Ok(Some(f)) => {
                            if let Some(q) = &mut expected {
                                let (id, payload) = q.pop_front().expect("a frame that was never written");
                                assert_eq!((f.id, &f.payload), (id, &payload), "a frame changed in the ring");
                            }
                            continue;
                        }
                        Ok(None) => {}
                        Err(_) => {
                            reader = FrameReader::new(RingRx::new(region.clone(), ring));
                            expected = None;
                            break;
                        }
                    }
                    match reader.try_fill() {
                        Ok(Fill::Data) => {}
                        Ok(Fill::Empty | Fill::Closed) => break,
                        Err(_) => {
                            reader = FrameReader::new(RingRx::new(region.clone(), ring));
                            expected = None;
                            break;
                        }
                    }
                }
            }
            8 => {
                // The consumer re-attaches from the shared tail.
                reader = FrameReader::new(RingRx::new(region.clone(), ring));
                expected = None;
            }
            9 => {
                // The producer re-attaches from the shared head.
                tx = RingTx::new(region.clone(), ring);
                expected = None;
            }
            _ => {
                let rx = RingRx::new(region.clone(), ring);
                let _ = rx.prepare_sleep();
                let _ = tx.consumer_sleeping();
                rx.awake();
            }
        }
    }
    // A well-behaved producer's frames all arrive.
    if let Some(q) = &mut expected {
        while let Some((id, payload)) = q.pop_front() {
            let f = loop {
                if let Some(f) = reader.next_buffered().expect("an intact frame") {
                    break f;
                }
                assert_eq!(
                    reader.try_fill().expect("an intact ring"),
                    Fill::Data,
                    "frame {id} lost"
                );
            };
            assert_eq!((f.id, &f.payload), (id, &payload), "a frame changed in the ring");
        }
    }
}

/// One request frame carrying `payload` as its raw payload bytes.
fn frame_bytes(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + HEADER_AFTER_LEN + payload.len());
    b.extend_from_slice(&((HEADER_AFTER_LEN + payload.len()) as u32).to_le_bytes());
    b.push(frame::FRAME_VERSION);
    b.push(FrameKind::Request as u8);
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// A stream whose reads come from fuzz bytes and whose writes are kept.
struct Scripted<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl std::io::Read for Scripted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::io::Read::read(&mut self.input, buf)
    }
}

impl std::io::Write for Scripted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.input.len());
        let (head, rest) = self.input.split_at(n);
        buf.put_slice(head);
        self.input = rest;
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Scripted<'_> {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The cluster-token handshake ([`crate::auth`]) with fuzz bytes as the
/// peer's messages, on both sides, with and without a token. Never panics;
/// with a token neither side ever accepts (the peer would have to forge an
/// HMAC-SHA256), and whatever a side sends is one whole message.
pub fn auth_handshake(data: &[u8]) {
    use crate::auth::{self, Domain, CHALLENGE_LEN, PROOF_LEN, VERDICT_LEN};
    const TOKEN: &[u8] = b"fuzz-cluster-token-0123456789";
    for (token, domain) in [(None, Domain::Control), (Some(TOKEN), Domain::Transfer)] {
        let mut client = Scripted {
            input: data,
            output: Vec::new(),
        };
        let r = auth::client_handshake_blocking(&mut client, token, domain);
        assert!(client.output.is_empty() || client.output.len() == PROOF_LEN);
        if token.is_some() {
            assert!(r.is_err(), "a client with a token accepted a forged verdict");
        }
        let mut server = Scripted {
            input: data,
            output: Vec::new(),
        };
        let r = run_ready(auth::server_handshake(&mut server, token, domain));
        assert!(
            server.output.len() == CHALLENGE_LEN || server.output.len() == CHALLENGE_LEN + VERDICT_LEN,
            "server wrote {} bytes",
            server.output.len()
        );
        if token.is_some() {
            assert!(r.is_err(), "a server with a token accepted a forged proof");
        }
    }
}
