//! The MetaService connection of data-path requests (alloc, finish, lookup,
//! exist, remove, ...).
//!
//! It is a plain nonblocking socket, not registered with the async runtime:
//! the thread that sent a request polls the socket for the answer itself
//! (routing any other answer it reads) for up to `local.spin_wait_us`, so a
//! quick answer costs no thread wake-up in this process. On a virtual
//! machine a wake-up costs tens of microseconds, more than the MetaService
//! needs to answer. A caller that stops polling parks; while any caller is
//! parked, the connection's reader thread waits on the socket and routes the
//! answers. It also sweeps the socket every few milliseconds for answers
//! nobody polls for (a commit sent without waiting) and for a closed
//! connection.
//!
//! When the MetaService runs on the same host, the frames travel through a
//! pair of shared-memory rings instead ([`mmc_wire::shm_ring`]): a send is a
//! copy into shared memory rather than a trip through the kernel's TCP
//! stack, and polling for an answer reads memory, not the socket. The
//! socket then carries only doorbell bytes (for a side that sleeps) and
//! tells, by closing, that the MetaService is gone.

use mmc_wire::frame::{self, FrameKind};
use mmc_wire::frame_reader::{Fill, FrameReader, ReadSource};
use mmc_wire::message::{Request, Response};
use mmc_wire::shm_ring::{self, RingRx, RingTx, ShmRegion};
use mmc_wire::{Error, ErrorKind, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot::{self, error::TryRecvError};

/// How often the reader thread looks at the socket when no caller is
/// parked.
const SWEEP: Duration = Duration::from_millis(5);
/// Longest a reader-thread wait on the socket lasts before it re-checks
/// whether it is still needed.
const POLL_SLICE: Duration = Duration::from_millis(20);

/// Who gets an answer.
pub(crate) enum Waiter {
    /// A caller waiting for it.
    Call(oneshot::Sender<Response>),
    /// Nobody: a failure is logged under this name.
    Log(&'static str),
}

/// Where answers are read from.
enum Source {
    Tcp(Arc<TcpStream>),
    Ring(RingRx),
}

impl ReadSource for Source {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Tcp(s) => (&**s).read(buf),
            Source::Ring(r) => r.read(buf),
        }
    }
}

/// How long a ring offer waits for the MetaService's answer.
const OFFER_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct SpinConn {
    sock: Arc<TcpStream>,
    /// Keeps frames from interleaving; holds the request ring in ring mode.
    write: Mutex<Option<RingTx>>,
    write_timeout: Duration,
    src: Arc<Source>,
    reader: Mutex<FrameReader<Source>>,
    pending: Mutex<HashMap<u64, Waiter>>,
    alive: AtomicBool,
    /// Callers waiting without polling.
    parked: AtomicUsize,
    wake: Mutex<()>,
    wake_cv: Condvar,
}

impl SpinConn {
    /// Takes over `sock` (made nonblocking) and starts its reader thread.
    /// With `offer_ring` it first offers the MetaService a shared-memory
    /// ring pair, and uses it when accepted.
    pub fn open(sock: TcpStream, write_timeout: Duration, offer_ring: bool) -> io::Result<Arc<Self>> {
        sock.set_nodelay(true)?;
        let region = if offer_ring { offer(&sock)? } else { None };
        sock.set_nonblocking(true)?;
        let sock = Arc::new(sock);
        let (src, tx) = match region {
            Some(r) => (
                Source::Ring(RingRx::new(r.clone(), shm_ring::TO_CLIENT)),
                Some(RingTx::new(r, shm_ring::TO_META)),
            ),
            None => (Source::Tcp(sock.clone()), None),
        };
        let src = Arc::new(src);
        let conn = Arc::new(SpinConn {
            reader: Mutex::new(FrameReader::with_shared(src.clone())),
            src,
            sock,
            write: Mutex::new(tx),
            write_timeout,
            pending: Mutex::default(),
            alive: AtomicBool::new(true),
            parked: AtomicUsize::new(0),
            wake: Mutex::new(()),
            wake_cv: Condvar::new(),
        });
        let weak = Arc::downgrade(&conn);
        std::thread::Builder::new()
            .name("mmc-meta-rx".into())
            .spawn(move || reader_thread(weak))?;
        Ok(conn)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// True when frames travel through shared-memory rings.
    pub fn uses_ring(&self) -> bool {
        matches!(*self.src, Source::Ring(_))
    }

    /// Registers `waiter` for request `id` and writes its frame.
    pub fn send(&self, id: u64, frame: &[u8], waiter: Waiter) -> Result<()> {
        if !self.is_alive() {
            return Err(Error::new(ErrorKind::NotConnectedMeta, "connection closed"));
        }
        self.pending.lock().insert(id, waiter);
        if let Err(e) = self.write_all(frame) {
            self.pending.lock().remove(&id);
            self.close();
            return Err(Error::caused_by(ErrorKind::NotConnectedMeta, "sending to the metaservice", e));
        }
        Ok(())
    }

    /// Waits for the answer on `rx`: polls the socket for up to `spin`,
    /// then parks until `timeout` (counted from now).
    pub async fn wait(
        &self,
        id: u64,
        mut rx: oneshot::Receiver<Response>,
        spin: Duration,
        timeout: Duration,
    ) -> Result<Response> {
        if !spin.is_zero() {
            let until = Instant::now() + spin;
            loop {
                match rx.try_recv() {
                    Ok(r) => return answer(Ok(r)),
                    Err(TryRecvError::Closed) => return answer(Err(())),
                    Err(TryRecvError::Empty) => {}
                }
                if Instant::now() >= until {
                    break;
                }
                self.pump(false);
                // Give the CPU to any other runnable thread (the MetaService
                // or another client when there are more threads than CPUs);
                // returns at once when there is none.
                std::thread::yield_now();
            }
        }
        self.parked.fetch_add(1, Ordering::AcqRel);
        {
            let _g = self.wake.lock();
            self.wake_cv.notify_one();
        }
        let r = tokio::time::timeout(timeout, rx).await;
        self.parked.fetch_sub(1, Ordering::AcqRel);
        match r {
            Ok(r) => answer(r.map_err(|_| ())),
            Err(_) => {
                self.pending.lock().remove(&id);
                Err(Error::new(ErrorKind::Timeout, format!("metaservice did not answer within {timeout:?}")))
            }
        }
    }

    /// Marks the connection finished; every waiting call fails.
    pub fn close(&self) {
        self.alive.store(false, Ordering::Release);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        self.pending.lock().clear();
        let _g = self.wake.lock();
        self.wake_cv.notify_all();
    }

    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let g = self.write.lock();
        let deadline = Instant::now() + self.write_timeout;
        if let Some(tx) = g.as_ref() {
            return self.write_ring(tx, buf, deadline);
        }
        let mut off = 0;
        while off < buf.len() {
            match (&*self.sock).write(&buf[off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "socket stayed full"));
                    }
                    poll_fd(self.sock.as_raw_fd(), libc::POLLOUT, left);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes a frame into the request ring, ringing the doorbell when the
    /// MetaService sleeps.
    fn write_ring(&self, tx: &RingTx, buf: &[u8], deadline: Instant) -> io::Result<()> {
        let mut off = 0;
        loop {
            let n = tx.write(&buf[off..])?;
            off += n;
            if off == buf.len() {
                break;
            }
            // Full (a frame larger than the ring streams through): make
            // sure the MetaService is draining it, then wait for room.
            if tx.consumer_sleeping() {
                self.ring_bell()?;
            }
            if n == 0 {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "control ring stayed full"));
                }
                std::thread::yield_now();
            }
        }
        if tx.consumer_sleeping() {
            self.ring_bell()?;
        }
        Ok(())
    }

    /// Wakes the MetaService: one byte on the socket.
    fn ring_bell(&self) -> io::Result<()> {
        loop {
            match (&*self.sock).write(&[1]) {
                Ok(_) => return Ok(()),
                // Doorbell bytes already wait unread: it will wake.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// In ring mode, reads the doorbell bytes waiting on the socket.
    /// Returns false once the socket is closed (the MetaService is gone).
    fn drain_bell(&self) -> bool {
        shm_ring::drain_doorbell(&*self.sock).unwrap_or(false)
    }

    /// Reads and routes every answer the socket holds now. With `wait`
    /// false it returns at once when another thread is reading. Returns
    /// false once the connection is finished.
    fn pump(&self, wait: bool) -> bool {
        let mut r = if wait {
            self.reader.lock()
        } else {
            match self.reader.try_lock() {
                Some(r) => r,
                None => return self.is_alive(),
            }
        };
        if !self.is_alive() {
            return false;
        }
        loop {
            match r.next_buffered() {
                Ok(Some(f)) if f.kind == FrameKind::Response => {
                    let resp = f
                        .decode::<Response>()
                        .unwrap_or_else(|e| Response::Failed(Error::caused_by(ErrorKind::Other, "undecodable response", e)));
                    match self.pending.lock().remove(&f.id) {
                        Some(Waiter::Call(tx)) => {
                            let _ = tx.send(resp);
                        }
                        Some(Waiter::Log(what)) => {
                            if let Response::Failed(e) = resp {
                                tracing::warn!(what, error = %e, "request failed");
                            }
                        }
                        None => {}
                    }
                    continue;
                }
                Ok(Some(_)) => {
                    tracing::warn!("metaservice sent a request frame; closing");
                    drop(r);
                    self.close();
                    return false;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "metaservice connection failed");
                    drop(r);
                    self.close();
                    return false;
                }
            }
            match r.try_fill() {
                Ok(Fill::Data) => {}
                Ok(Fill::Empty) => return true,
                Ok(Fill::Closed) => {
                    drop(r);
                    self.close();
                    return false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metaservice connection failed");
                    drop(r);
                    self.close();
                    return false;
                }
            }
        }
    }
}

/// Routes answers for parked callers; sweeps the socket when none is.
/// Ends when the connection is closed or dropped.
fn reader_thread(weak: Weak<SpinConn>) {
    loop {
        let Some(c) = weak.upgrade() else { return };
        if !c.is_alive() {
            return;
        }
        let ring = match &*c.src {
            Source::Ring(rx) => Some(rx),
            Source::Tcp(_) => None,
        };
        if c.parked.load(Ordering::Acquire) > 0 {
            if let Some(rx) = ring {
                // Ask for the doorbell, unless answers already wait.
                match rx.prepare_sleep() {
                    Ok(true) => {}
                    Ok(false) => {
                        c.pump(true);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control ring failed");
                        c.close();
                        return;
                    }
                }
            }
            poll_fd(c.sock.as_raw_fd(), libc::POLLIN, POLL_SLICE);
            if let Some(rx) = ring {
                rx.awake();
                if !c.drain_bell() {
                    c.close();
                    return;
                }
            }
            c.pump(true);
            continue;
        }
        {
            let mut g = c.wake.lock();
            if c.parked.load(Ordering::Acquire) == 0 && c.is_alive() {
                c.wake_cv.wait_for(&mut g, SWEEP);
            }
        }
        if ring.is_some() && !c.drain_bell() {
            // The socket only closes when the MetaService goes away.
            c.close();
            return;
        }
        if c.parked.load(Ordering::Acquire) == 0 && !c.pending.lock().is_empty() {
            c.pump(false);
        }
    }
}

/// Offers the MetaService a ring pair on the (still blocking) socket.
/// `Ok(None)`: refused, the connection stays on TCP. An error (no answer in
/// time) fails the connection: the MetaService may have switched to the
/// ring after we stopped waiting.
fn offer(sock: &TcpStream) -> io::Result<Option<Arc<ShmRegion>>> {
    let region = match ShmRegion::create() {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::debug!(error = %e, "no control ring");
            return Ok(None);
        }
    };
    let req = Request::AttachRing {
        name: region.name().to_owned(),
        nonce: region.nonce(),
    };
    let buf = frame::encode(FrameKind::Request, 0, &req).map_err(io::Error::other)?;
    sock.set_nonblocking(false)?;
    sock.set_write_timeout(Some(OFFER_TIMEOUT))?;
    sock.set_read_timeout(Some(OFFER_TIMEOUT))?;
    (&*sock).write_all(&buf)?;
    let deadline = Instant::now() + OFFER_TIMEOUT;
    let mut rd = FrameReader::new(sock.try_clone()?);
    let f = loop {
        if let Some(f) = rd.next_buffered().map_err(io::Error::other)? {
            break f;
        }
        match rd.try_fill().map_err(io::Error::other)? {
            Fill::Data => {}
            Fill::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            Fill::Empty if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer to the control ring offer",
                ));
            }
            Fill::Empty => {}
        }
    };
    sock.set_write_timeout(None)?;
    sock.set_read_timeout(None)?;
    match f.decode::<Response>() {
        Ok(Response::Ok) if f.id == 0 && f.kind == FrameKind::Response => {
            tracing::debug!("data-path connection uses a shared-memory ring");
            Ok(Some(region))
        }
        other => {
            tracing::debug!(answer = ?other, "control ring refused; staying on tcp");
            Ok(None)
        }
    }
}

/// Waits until `fd` is ready for `events` or `timeout` passes.
fn poll_fd(fd: i32, events: libc::c_short, timeout: Duration) {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// The result of a call from its answer (`Err` when the connection was lost).
pub(crate) fn answer(r: std::result::Result<Response, ()>) -> Result<Response> {
    match r {
        Ok(Response::Failed(e)) => Err(e),
        Ok(r) => Ok(r),
        Err(()) => Err(Error::new(ErrorKind::NotConnectedMeta, "connection to the metaservice was lost")),
    }
}
