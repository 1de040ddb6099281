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

use mmc_wire::frame::FrameKind;
use mmc_wire::frame_reader::{Fill, FrameReader};
use mmc_wire::message::Response;
use mmc_wire::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::io::{self, Write};
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

pub(crate) struct SpinConn {
    sock: Arc<TcpStream>,
    /// Keeps frames from interleaving.
    write: Mutex<()>,
    write_timeout: Duration,
    reader: Mutex<FrameReader<TcpStream>>,
    pending: Mutex<HashMap<u64, Waiter>>,
    alive: AtomicBool,
    /// Callers waiting without polling.
    parked: AtomicUsize,
    wake: Mutex<()>,
    wake_cv: Condvar,
}

impl SpinConn {
    /// Takes over `sock` (made nonblocking) and starts its reader thread.
    pub fn open(sock: TcpStream, write_timeout: Duration) -> io::Result<Arc<Self>> {
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        let sock = Arc::new(sock);
        let conn = Arc::new(SpinConn {
            reader: Mutex::new(FrameReader::with_shared(sock.clone())),
            sock,
            write: Mutex::new(()),
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

    /// Registers `waiter` for request `id` and writes its frame.
    pub fn send(&self, id: u64, frame: &[u8], waiter: Waiter) -> Result<()> {
        if !self.is_alive() {
            return Err(Error::NotConnectedMeta("connection closed".into()));
        }
        self.pending.lock().insert(id, waiter);
        if let Err(e) = self.write_all(frame) {
            self.pending.lock().remove(&id);
            self.close();
            return Err(Error::NotConnectedMeta(format!("sending to the metaservice: {e}")));
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
                Err(Error::Timeout(format!("metaservice did not answer within {timeout:?}")))
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
        let _g = self.write.lock();
        let deadline = Instant::now() + self.write_timeout;
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
                        .unwrap_or_else(|e| Response::Failed(Error::Other(format!("undecodable response: {e}"))));
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
        if c.parked.load(Ordering::Acquire) > 0 {
            poll_fd(c.sock.as_raw_fd(), libc::POLLIN, POLL_SLICE);
            c.pump(true);
            continue;
        }
        {
            let mut g = c.wake.lock();
            if c.parked.load(Ordering::Acquire) == 0 && c.is_alive() {
                c.wake_cv.wait_for(&mut g, SWEEP);
            }
        }
        if c.parked.load(Ordering::Acquire) == 0 && !c.pending.lock().is_empty() {
            c.pump(false);
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
        Err(()) => Err(Error::NotConnectedMeta("connection to the metaservice was lost".into())),
    }
}
