//! Writing encoded frames to a connection shared by many tasks.
//!
//! A sender writes its frame straight into the socket from its own thread
//! when the socket can take it (the common case for small control frames),
//! saving a hand-off to another task. Whatever does not fit is queued, in
//! order, and a flusher task writes it when the socket becomes writable. One
//! lock keeps frames from interleaving.
//!
//! A server's writer bounds its queue ([`FrameWriter::bounded`]): a peer
//! that sends requests but never reads the answers fails its connection
//! once that many bytes are queued, instead of growing the queue forever.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

pub struct FrameWriter {
    half: OwnedWriteHalf,
    state: Mutex<State>,
    wake: Notify,
    /// Most bytes queued before the connection is failed.
    max_backlog: usize,
}

#[derive(Default)]
struct State {
    backlog: VecDeque<Vec<u8>>,
    /// Bytes of `backlog[0]` already written.
    head_off: usize,
    /// Bytes in `backlog`, written or not.
    queued: usize,
    failed: bool,
}

impl FrameWriter {
    /// Wraps `half`; spawns the flusher on the current runtime.
    pub fn new(half: OwnedWriteHalf) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        Self::bounded(half, usize::MAX)
    }

    /// [`new`](Self::new), failing the connection (every send then fails)
    /// when a frame is sent while `max_backlog` bytes or more are queued.
    pub fn bounded(half: OwnedWriteHalf, max_backlog: usize) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let w = Arc::new(FrameWriter {
            half,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            max_backlog,
        });
        let flusher = tokio::spawn(w.clone().flush_loop());
        (w, flusher)
    }

    /// Queues `buf` for writing, writing as much as possible right away.
    pub fn send(&self, buf: Vec<u8>) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.failed {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "connection failed"));
        }
        if !st.backlog.is_empty() {
            if st.queued >= self.max_backlog {
                st.failed = true;
                return Err(io::Error::other(format!(
                    "peer not reading: {} bytes of frames already queued",
                    st.queued
                )));
            }
            st.queued += buf.len();
            st.backlog.push_back(buf);
            return Ok(());
        }
        let mut off = 0;
        while off < buf.len() {
            match self.half.try_write(&buf[off..]) {
                Ok(0) => {
                    st.failed = true;
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    st.failed = true;
                    return Err(e);
                }
            }
        }
        if off < buf.len() {
            st.queued += buf.len();
            st.backlog.push_back(buf);
            st.head_off = off;
            drop(st);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// True once a write failed; later sends fail at once.
    pub fn is_failed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).failed
    }

    async fn flush_loop(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            loop {
                if self.half.writable().await.is_err() {
                    self.state.lock().unwrap_or_else(|p| p.into_inner()).failed = true;
                    return;
                }
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                while let Some(front) = st.backlog.front() {
                    match self.half.try_write(&front[st.head_off..]) {
                        Ok(0) => {
                            st.failed = true;
                            return;
                        }
                        Ok(n) => {
                            st.head_off += n;
                            if st.head_off == st.backlog.front().map_or(0, Vec::len) {
                                let done = st.backlog.pop_front().map_or(0, |b| b.len());
                                st.queued -= done;
                                st.head_off = 0;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            st.failed = true;
                            return;
                        }
                    }
                }
                if st.backlog.is_empty() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_peer_that_never_reads_fails_a_bounded_writer() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _cli = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (srv, _) = l.accept().await.unwrap();
        let (_, wr) = srv.into_split();
        let (w, _flusher) = FrameWriter::bounded(wr, 4 << 20);
        let mut sent = 0usize;
        let err = loop {
            match w.send(vec![0u8; 1 << 20]) {
                Ok(()) => sent += 1 << 20,
                Err(e) => break e,
            }
            assert!(sent < 256 << 20, "the queue kept growing");
        };
        assert!(err.to_string().contains("peer not reading"), "{err}");
        assert!(w.is_failed());
        assert!(w.send(vec![1]).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_and_many_frames_arrive_in_order() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move { tokio::net::TcpStream::connect(addr).await.unwrap() });
        let (srv, _) = l.accept().await.unwrap();
        let mut cli = client.await.unwrap();
        let (_, wr) = srv.into_split();
        let (w, _flusher) = FrameWriter::new(wr);
        // 64 frames of 1 MiB overflow the socket buffer and exercise the backlog.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 20];
            cli.read_exact(&mut buf).await.unwrap();
            buf
        });
        for i in 0..64u8 {
            w.send(vec![i; 1 << 20]).unwrap();
        }
        let buf = reader.await.unwrap();
        for (i, chunk) in buf.chunks(1 << 20).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8), "frame {i} intact and in order");
        }
    }
}
