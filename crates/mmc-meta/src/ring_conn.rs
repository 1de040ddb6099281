//! Both ends of a connection whose frames travel through a shared-memory
//! ring pair (`mmc_wire::shm_ring`), on the MetaService's side.
//!
//! Requests ([`RingRequests`]) are read from the request ring; when there
//! are none the connection sleeps on the socket, which carries only the
//! client's doorbell bytes and whose end means the client is gone.
//!
//! Answers ([`RingSink`]): an answer is copied into the client's answer ring at once when it fits.
//! What does not fit (the client has not read earlier answers yet, or a
//! frame is larger than the ring) waits in a backlog, in order, and a
//! flusher task moves it into the ring as the client makes room, so no
//! runtime thread ever blocks on a client. A client that leaves its ring
//! full for [`STALL`] fails the connection. The socket is the doorbell:
//! one byte is written whenever the client announced that it sleeps.

use mmc_wire::frame_reader::{ReadSource, WaitSource};
use mmc_wire::frame_writer::FrameWriter;
use mmc_wire::shm_ring::{drain_doorbell, RingRx, RingTx};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;

/// How long the ring may stay full before the client counts as gone.
pub const STALL: Duration = Duration::from_secs(5);
/// How often the flusher retries a full ring.
const RETRY: Duration = Duration::from_micros(200);

pub struct RingSink {
    state: Mutex<State>,
    bell: Arc<FrameWriter>,
    failed: AtomicBool,
    /// Wakes the flusher when a backlog starts.
    backlog_started: Notify,
    /// Wakes the connection when the sink fails.
    pub failure: Notify,
}

struct State {
    ring: RingTx,
    backlog: VecDeque<Vec<u8>>,
    /// Bytes of `backlog[0]` already in the ring.
    head_off: usize,
}

impl RingSink {
    /// A sink writing into `ring`; spawns its flusher on the current
    /// runtime (abort the handle when the connection ends).
    pub fn new(ring: RingTx, bell: Arc<FrameWriter>) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let sink = Arc::new(RingSink {
            state: Mutex::new(State {
                ring,
                backlog: VecDeque::new(),
                head_off: 0,
            }),
            bell,
            failed: AtomicBool::new(false),
            backlog_started: Notify::new(),
            failure: Notify::new(),
        });
        let flusher = tokio::spawn(sink.clone().flush_loop());
        (sink, flusher)
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Queues one answer frame; never waits.
    pub fn send(&self, buf: Vec<u8>) {
        if self.is_failed() {
            return;
        }
        let mut st = self.state.lock();
        if !st.backlog.is_empty() {
            st.backlog.push_back(buf);
            return;
        }
        match st.ring.write(&buf) {
            Ok(n) if n == buf.len() => {}
            Ok(n) => {
                st.backlog.push_back(buf);
                st.head_off = n;
                self.backlog_started.notify_one();
            }
            Err(e) => {
                drop(st);
                self.fail(&format!("control ring failed: {e}"));
                return;
            }
        }
        self.ring_bell(&st.ring);
    }

    fn ring_bell(&self, ring: &RingTx) {
        if ring.consumer_sleeping() {
            let _ = self.bell.send(vec![1]);
        }
    }

    fn fail(&self, why: &str) {
        tracing::warn!(why, "closing a ring connection");
        self.failed.store(true, Ordering::Release);
        self.failure.notify_one();
    }

    /// Moves what fits of the backlog into the ring; returns (bytes moved,
    /// backlog now empty).
    fn flush_some(&self) -> Result<(usize, bool), std::io::Error> {
        let mut st = self.state.lock();
        let mut moved = 0;
        while let Some(front) = st.backlog.front() {
            let n = st.ring.write(&front[st.head_off..])?;
            moved += n;
            st.head_off += n;
            if st.head_off < st.backlog.front().map_or(0, Vec::len) {
                break;
            }
            st.backlog.pop_front();
            st.head_off = 0;
        }
        if moved > 0 {
            self.ring_bell(&st.ring);
        }
        Ok((moved, st.backlog.is_empty()))
    }

    async fn flush_loop(self: Arc<Self>) {
        loop {
            self.backlog_started.notified().await;
            let mut progress_at = Instant::now();
            loop {
                match self.flush_some() {
                    Ok((_, true)) => break,
                    Ok((moved, false)) => {
                        if moved > 0 {
                            progress_at = Instant::now();
                        } else if progress_at.elapsed() > STALL {
                            self.fail("the client left its answer ring full");
                            return;
                        }
                    }
                    Err(e) => {
                        self.fail(&format!("control ring failed: {e}"));
                        return;
                    }
                }
                // In case the client sleeps on its doorbell.
                {
                    let st = self.state.lock();
                    self.ring_bell(&st.ring);
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// The request side: a [`WaitSource`] for `FrameReader::next_frame`.
pub struct RingRequests {
    pub rx: RingRx,
    /// The socket: doorbell bytes, and its end.
    pub sock: Arc<OwnedReadHalf>,
    /// The answer side: its failure ends the connection.
    pub sink: Arc<RingSink>,
}

fn sink_failed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading its answer ring")
}

impl ReadSource for RingRequests {
    fn try_read_now(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sink.is_failed() {
            return Err(sink_failed());
        }
        self.rx.read(buf)
    }
}

impl WaitSource for RingRequests {
    async fn wait_readable(&self) -> std::io::Result<bool> {
        if !self.rx.prepare_sleep()? {
            return Ok(true);
        }
        tokio::select! {
            r = self.sock.readable() => r?,
            _ = self.sink.failure.notified() => return Err(sink_failed()),
        }
        let open = drain_doorbell(&*self.sock)?;
        self.rx.awake();
        Ok(open)
    }

    /// Polling shared memory needs no system call: give the CPU to any
    /// other runnable thread between polls.
    fn between_polls(&self) {
        std::thread::yield_now();
    }
}
