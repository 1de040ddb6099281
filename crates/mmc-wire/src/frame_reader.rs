//! Reading frames from a connection without awaiting each one.
//!
//! Bytes are pulled from the socket with nonblocking reads into one buffer
//! and complete frames are parsed out of it, with the same checks as
//! [`frame::read_frame`](crate::frame::read_frame): length before
//! allocating, then version and kind. Because a read never blocks, a thread
//! that expects an answer within microseconds can poll the socket itself for
//! a bounded time instead of sleeping: on a virtual machine, waking a
//! sleeping thread costs tens of microseconds, more than a control request
//! takes to serve.
//!
//! The buffer grows with the bytes that actually arrive (doubling, from
//! [`INITIAL_BUF`]), never with the length a frame announces, and shrinks
//! back after a large frame: a peer that announces 64 MiB and falls silent
//! costs one initial buffer. A reader can also bound how long a frame may
//! take once its first byte arrived ([`FrameReader::frame_timeout`]) and
//! hand its buffer back while the connection is idle
//! ([`FrameReader::release_when_idle`]).

use crate::frame::{parse_head, Frame, FrameError, HEADER_AFTER_LEN, MAX_FRAME};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::tcp::OwnedReadHalf;

/// Buffer size allocated at the first read; it doubles while a frame's
/// bytes keep arriving, up to the frame's size.
pub const INITIAL_BUF: usize = 64 << 10;

/// What one nonblocking read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Some bytes arrived.
    Data,
    /// Nothing to read now.
    Empty,
    /// The peer closed the connection.
    Closed,
}

/// A socket that can be read without blocking.
pub trait ReadSource {
    /// Reads what is available now; `WouldBlock` when nothing is.
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl ReadSource for OwnedReadHalf {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
}

/// A source whose readiness can be awaited, for [`FrameReader::next_frame`].
pub trait WaitSource: ReadSource {
    /// Sleeps until bytes may have arrived. `Ok(false)`: the peer is gone
    /// (a source whose reads report the end of stream may never say so).
    fn wait_readable(&self) -> impl std::future::Future<Output = io::Result<bool>> + Send;

    /// Called between two polls while polling: lets other work run.
    fn between_polls(&self) {}
}

impl WaitSource for OwnedReadHalf {
    async fn wait_readable(&self) -> io::Result<bool> {
        self.readable().await.map(|()| true)
    }
}

/// A std stream must be in nonblocking mode.
impl ReadSource for std::net::TcpStream {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &*self, buf)
    }
}

pub struct FrameReader<S = OwnedReadHalf> {
    half: Arc<S>,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Longest a frame may take from its first byte to its last.
    frame_timeout: Option<Duration>,
    /// When the first byte of the frame in progress arrived (kept only
    /// with a `frame_timeout`).
    frame_started: Option<Instant>,
    /// Buffer allocated at the first read (and after an idle release).
    initial: usize,
    /// Shrink the buffer to `initial` whenever the reader goes to sleep
    /// between frames.
    release_idle: bool,
}

impl<S: ReadSource> FrameReader<S> {
    pub fn new(half: S) -> Self {
        Self::with_shared(Arc::new(half))
    }

    /// A reader of a socket also used elsewhere (for writing or polling).
    pub fn with_shared(half: Arc<S>) -> Self {
        FrameReader {
            half,
            // Allocated at the first read: a connection that never sends
            // anything costs no buffer.
            buf: Vec::new(),
            start: 0,
            end: 0,
            frame_timeout: None,
            frame_started: None,
            initial: INITIAL_BUF,
            release_idle: false,
        }
    }

    /// Bounds the time a frame may take once its first byte has arrived:
    /// [`next_frame`](FrameReader::next_frame) then fails with
    /// [`FrameError::Timeout`]. The time between frames stays unbounded.
    pub fn frame_timeout(mut self, limit: Duration) -> Self {
        self.frame_timeout = Some(limit);
        self
    }

    /// Starts with a buffer of `keep` bytes (at least 64) instead of
    /// [`INITIAL_BUF`], and shrinks back to it whenever
    /// [`next_frame`](FrameReader::next_frame) goes to sleep with no frame
    /// in progress: an idle connection holds at most `keep` bytes (a server
    /// with thousands of pooled client connections), a connection that
    /// never sent a byte none.
    pub fn release_when_idle(mut self, keep: usize) -> Self {
        self.initial = keep.max(64);
        self.release_idle = true;
        self
    }

    /// Bytes of buffer this reader holds now.
    pub fn buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// The socket half, for awaiting readiness without holding the reader.
    pub fn half(&self) -> Arc<S> {
        self.half.clone()
    }

    /// True when bytes of an incomplete frame are buffered.
    pub fn has_partial(&self) -> bool {
        self.end > self.start
    }

    /// The next complete frame already buffered, if any.
    pub fn next_buffered(&mut self) -> Result<Option<Frame>, FrameError> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 4 + HEADER_AFTER_LEN {
            // A too-small length is rejected as soon as its 4 bytes are here.
            if avail.len() >= 4 {
                check_len(u32::from_le_bytes(avail[0..4].try_into().expect("4 bytes")) as usize)?;
            }
            return Ok(None);
        }
        let len = check_len(u32::from_le_bytes(avail[0..4].try_into().expect("4 bytes")) as usize)?;
        let head: &[u8; HEADER_AFTER_LEN] = avail[4..4 + HEADER_AFTER_LEN].try_into().expect("header bytes");
        let (kind, id) = parse_head(head)?;
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let payload = avail[4 + HEADER_AFTER_LEN..4 + len].to_vec();
        self.start += 4 + len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.frame_started = None;
            if self.buf.len() > 4 * INITIAL_BUF.max(self.initial) {
                // Do not keep a large frame's buffer for the connection's life.
                self.buf = vec![0; self.initial];
            }
        } else if self.frame_timeout.is_some() {
            // The next frame's first bytes came with this one.
            self.frame_started = Some(Instant::now());
        }
        Ok(Some(Frame { kind, id, payload }))
    }

    /// One nonblocking read into the buffer.
    pub fn try_fill(&mut self) -> Result<Fill, FrameError> {
        self.make_room();
        match self.half.try_read_now(&mut self.buf[self.end..]) {
            Ok(0) => Ok(Fill::Closed),
            Ok(n) => {
                if self.end == self.start && self.frame_timeout.is_some() {
                    self.frame_started = Some(Instant::now());
                }
                self.end += n;
                Ok(Fill::Data)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Fill::Empty),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes room after `end` for at least one more read: moves unparsed
    /// bytes to the front, and when the buffer is full of them doubles it
    /// (at most to the size of the frame in progress). Growth follows the
    /// bytes received: the announced length only caps it.
    fn make_room(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0; self.initial];
            return;
        }
        let avail = &self.buf[self.start..self.end];
        let frame_total = if avail.len() >= 4 {
            4 + (u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize).min(MAX_FRAME)
        } else {
            0
        };
        if self.start > 0 && (self.end == self.buf.len() || self.start + frame_total > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Full of one incomplete frame (anything complete was parsed
            // before this read): room for as many bytes again as arrived.
            let cap = if frame_total > 0 { frame_total } else { 4 + MAX_FRAME };
            let grown = (self.buf.len() * 2).min(cap.max(self.end + 1));
            self.buf.resize(grown, 0);
        }
    }

    /// When the frame in progress must be complete, if it is bounded.
    fn deadline(&self) -> Option<Instant> {
        match (self.frame_timeout, self.frame_started) {
            (Some(limit), Some(start)) if self.has_partial() => Some(start + limit),
            _ => None,
        }
    }
}

impl<S: WaitSource + Send + Sync> FrameReader<S> {
    /// The next frame: one already buffered, else one read by polling the
    /// source for up to `spin`, else one awaited. `Ok(None)` is a clean end
    /// of stream between frames; an end of stream inside a frame is an error.
    pub async fn next_frame(&mut self, spin: Duration) -> Result<Option<Frame>, FrameError> {
        let mut spin_until: Option<Instant> = None;
        loop {
            if let Some(f) = self.next_buffered()? {
                return Ok(Some(f));
            }
            let closed = match self.try_fill()? {
                Fill::Data => continue,
                Fill::Closed => true,
                Fill::Empty => {
                    if !spin.is_zero() {
                        let until = *spin_until.get_or_insert_with(|| Instant::now() + spin);
                        if Instant::now() < until {
                            // Let the runtime run other tasks (and poll for
                            // I/O without sleeping) before reading again.
                            tokio::task::yield_now().await;
                            self.half.between_polls();
                            continue;
                        }
                    }
                    spin_until = None;
                    if self.release_idle && !self.has_partial() && self.buf.len() > self.initial {
                        self.buf = vec![0; self.initial];
                        self.start = 0;
                        self.end = 0;
                    }
                    match (self.deadline(), self.frame_timeout) {
                        (Some(deadline), Some(limit)) => {
                            match tokio::time::timeout_at(deadline.into(), self.half.wait_readable()).await {
                                Ok(r) => !r?,
                                Err(_) => return Err(FrameError::Timeout(limit)),
                            }
                        }
                        _ => !self.half.wait_readable().await?,
                    }
                }
            };
            if closed {
                if self.has_partial() {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
                return Ok(None);
            }
        }
    }
}

fn check_len(len: usize) -> Result<usize, FrameError> {
    if (HEADER_AFTER_LEN..=MAX_FRAME).contains(&len) {
        Ok(len)
    } else {
        Err(FrameError::BadLength(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode, FrameKind};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, FrameReader) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let c = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (s, _) = l.accept().await.unwrap();
        let (rd, _) = s.into_split();
        (c.await.unwrap(), FrameReader::new(rd))
    }

    #[tokio::test]
    async fn frames_split_and_coalesced_arrive_whole() {
        let (mut w, mut r) = pair().await;
        let mut bytes = Vec::new();
        for i in 0..50u64 {
            bytes.extend(encode(FrameKind::Request, i, &vec![i as u8; (i as usize) * 997]).unwrap());
        }
        // A frame larger than the initial buffer.
        bytes.extend(encode(FrameKind::Response, 99, &vec![7u8; 300 << 10]).unwrap());
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(7919) {
                w.write_all(chunk).await.unwrap();
            }
            w
        });
        for i in 0..50u64 {
            let f = r.next_frame(Duration::from_micros(50)).await.unwrap().unwrap();
            assert_eq!(f.id, i);
            assert_eq!(f.decode::<Vec<u8>>().unwrap(), vec![i as u8; (i as usize) * 997]);
        }
        let f = r.next_frame(Duration::ZERO).await.unwrap().unwrap();
        assert_eq!((f.kind, f.id), (FrameKind::Response, 99));
        assert_eq!(f.decode::<Vec<u8>>().unwrap().len(), 300 << 10);
        drop(writer.await.unwrap());
        assert!(r.next_frame(Duration::ZERO).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn buffer_grows_with_arrivals_not_announcements() {
        let (mut w, mut r) = pair().await;
        // A head announcing the largest frame, then a few bytes.
        let mut head = (MAX_FRAME as u32).to_le_bytes().to_vec();
        head.extend([crate::frame::FRAME_VERSION, 0]);
        head.extend(1u64.to_le_bytes());
        w.write_all(&head).await.unwrap();
        w.write_all(&[0u8; 100]).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(200), r.next_frame(Duration::ZERO)).await;
        assert!(got.is_err(), "the frame is incomplete");
        assert_eq!(
            r.buffer_len(),
            INITIAL_BUF,
            "one initial buffer, not the announced 64 MiB"
        );
        // 1 MiB more arrives: the buffer follows it, within a doubling.
        w.write_all(&vec![0u8; 1 << 20]).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(500), r.next_frame(Duration::ZERO)).await;
        assert!(got.is_err(), "still incomplete");
        assert!(r.buffer_len() <= 4 << 20, "{} bytes for 1 MiB received", r.buffer_len());
    }

    #[tokio::test]
    async fn a_frame_must_complete_within_the_timeout() {
        let (mut w, r) = pair().await;
        let mut r = r.frame_timeout(Duration::from_millis(300));
        // Idle time between frames is not bounded.
        let bytes = encode(FrameKind::Request, 5, &String::from("hello")).unwrap();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            w.write_all(&bytes).await.unwrap();
            // Then half a frame, and silence.
            w.write_all(&bytes[..7]).await.unwrap();
            w
        });
        let f = r.next_frame(Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(f.id, 5);
        let e = r.next_frame(Duration::ZERO).await.unwrap_err();
        assert!(matches!(e, FrameError::Timeout(_)), "{e}");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn an_idle_reader_can_release_its_buffer() {
        let (mut w, r) = pair().await;
        let mut r = r.release_when_idle(4096);
        assert_eq!(r.buffer_len(), 0, "nothing allocated before the first byte");
        w.write_all(&encode(FrameKind::Request, 1, &vec![1u8; 100_000]).unwrap())
            .await
            .unwrap();
        r.next_frame(Duration::ZERO).await.unwrap().unwrap();
        w.write_all(&encode(FrameKind::Request, 1, &vec![1u8; 10_000]).unwrap())
            .await
            .unwrap();
        r.next_frame(Duration::ZERO).await.unwrap().unwrap();
        assert!(r.buffer_len() > 4096, "grown for the frame");
        let got = tokio::time::timeout(Duration::from_millis(100), r.next_frame(Duration::ZERO)).await;
        assert!(got.is_err());
        assert_eq!(r.buffer_len(), 4096, "shrunk while waiting");
        w.write_all(&encode(FrameKind::Request, 2, &2u8).unwrap())
            .await
            .unwrap();
        assert_eq!(r.next_frame(Duration::ZERO).await.unwrap().unwrap().id, 2);
    }

    #[tokio::test]
    async fn bad_frames_are_rejected_before_allocating() {
        let (mut w, mut r) = pair().await;
        w.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        assert!(matches!(
            r.next_frame(Duration::ZERO).await,
            Err(FrameError::BadLength(_))
        ));
        assert!(r.buf.len() <= INITIAL_BUF);

        let (mut w, mut r) = pair().await;
        let mut bad = encode(FrameKind::Request, 1, &1u8).unwrap();
        bad[4] = 9;
        w.write_all(&bad).await.unwrap();
        assert!(matches!(
            r.next_frame(Duration::ZERO).await,
            Err(FrameError::BadVersion(9))
        ));

        let (mut w, mut r) = pair().await;
        let bytes = encode(FrameKind::Request, 1, &String::from("abc")).unwrap();
        w.write_all(&bytes[..bytes.len() - 1]).await.unwrap();
        drop(w);
        assert!(matches!(r.next_frame(Duration::ZERO).await, Err(FrameError::Io(_))));
    }
}
