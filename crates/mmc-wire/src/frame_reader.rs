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

use crate::frame::{parse_head, Frame, FrameError, HEADER_AFTER_LEN, MAX_FRAME};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::tcp::OwnedReadHalf;

/// Initial buffer size; it grows to hold the largest frame seen.
const INITIAL_BUF: usize = 64 << 10;

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
}

impl<S: ReadSource> FrameReader<S> {
    pub fn new(half: S) -> Self {
        Self::with_shared(Arc::new(half))
    }

    /// A reader of a socket also used elsewhere (for writing or polling).
    pub fn with_shared(half: Arc<S>) -> Self {
        FrameReader {
            half,
            buf: vec![0; INITIAL_BUF],
            start: 0,
            end: 0,
        }
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
            if self.buf.len() > 4 * INITIAL_BUF {
                // Do not keep a large frame's buffer for the connection's life.
                self.buf = vec![0; INITIAL_BUF];
            }
        }
        Ok(Some(Frame { kind, id, payload }))
    }

    /// One nonblocking read into the buffer.
    pub fn try_fill(&mut self) -> Result<Fill, FrameError> {
        self.make_room();
        match self.half.try_read_now(&mut self.buf[self.end..]) {
            Ok(0) => Ok(Fill::Closed),
            Ok(n) => {
                self.end += n;
                Ok(Fill::Data)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Fill::Empty),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes room after `end` for at least one more read: moves unparsed
    /// bytes to the front and grows the buffer to hold the frame in progress.
    fn make_room(&mut self) {
        let avail = &self.buf[self.start..self.end];
        let frame_total = if avail.len() >= 4 {
            4 + (u32::from_le_bytes(avail[0..4].try_into().expect("4 bytes")) as usize).min(MAX_FRAME)
        } else {
            0
        };
        if self.start > 0 && (self.end == self.buf.len() || self.start + frame_total > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() || frame_total > self.buf.len() {
            let grown = frame_total.max(self.buf.len() * 2).min(4 + MAX_FRAME);
            self.buf.resize(grown, 0);
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
                    !self.half.wait_readable().await?
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
