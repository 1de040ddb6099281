//! Shared-memory rings that carry a control connection's frames between a
//! LocalService and a MetaService on the same host.
//!
//! On a virtual machine a loopback TCP send costs about 9 us of kernel time
//! (the whole TCP stack runs twice), so a control round trip cannot get
//! below 20 us however fast both ends poll. Once a data-path connection is
//! established, its client offers a memfd holding two byte rings (one per
//! direction); a MetaService on the same host and network namespace maps it
//! and from then on both sides exchange the same frames through the rings:
//! a send is a copy into shared memory. The TCP socket stays open as the
//! doorbell (a side about to sleep sets a flag; a sender that sees it writes
//! one byte to the socket) and as the liveness signal (the socket closes
//! when either process dies).
//!
//! Each ring is single-producer single-consumer (each side serialises its
//! writers). Each side keeps its own index privately and validates the
//! other side's: a peer that scribbles over the shared header makes reads
//! fail with `InvalidData`, never read outside the ring.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of each ring. A frame larger than this streams through in pieces.
pub const RING_CAP: usize = 1 << 20;
const HEADER: usize = 4096;
/// Bytes of the shared region: a header page and two rings.
pub const REGION_LEN: usize = HEADER + 2 * RING_CAP;
const MAGIC: u64 = u64::from_le_bytes(*b"MMCRING1");

/// Ring 0 carries requests (client to MetaService), ring 1 answers.
pub const TO_META: usize = 0;
pub const TO_CLIENT: usize = 1;

/// The shared control block of one ring, each index on its own cache line.
#[repr(C, align(64))]
struct Line<T>(T);

#[repr(C)]
struct RingCtl {
    /// Bytes ever written (producer).
    head: Line<AtomicU64>,
    /// Bytes ever consumed (consumer).
    tail: Line<AtomicU64>,
    /// 1 while the consumer sleeps on the doorbell.
    sleeping: Line<AtomicU32>,
}

#[repr(C)]
struct Header {
    magic: Line<AtomicU64>,
    nonce: Line<AtomicU64>,
    rings: [RingCtl; 2],
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER);

/// A mapping of the shared region (created by the client, opened by the
/// MetaService).
pub struct ShmRegion {
    ptr: NonNull<u8>,
    /// Kept open by the creator so the peer can open it by name.
    fd: Option<libc::c_int>,
    name: String,
    nonce: u64,
}

// SAFETY: `ptr` is a process-wide shared mapping, valid until `Drop`
// unmaps it, not tied to the creating thread; `fd` and `name` are plain
// values. Moving the owner to another thread changes nothing.
unsafe impl Send for ShmRegion {}
// SAFETY: `&ShmRegion` only gives access to the header through atomics
// (`header`, `ctl`) and to ring bytes through raw pointers (`data`) that
// RingTx / RingRx copy with `ptr::copy_nonoverlapping` under the index
// protocol (one producer and one consumer per ring, each serialised by its
// owner); no `&`/`&mut` to ring bytes is ever formed, so concurrent use
// from several threads is no different from the peer process's.
unsafe impl Sync for ShmRegion {}

fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Maps `fd` shared, read-write, `REGION_LEN` bytes.
///
/// # Safety
/// `fd` is an open file of at least `REGION_LEN` bytes that cannot shrink
/// while mapped (else touching the mapping could fault with SIGBUS).
unsafe fn map(fd: libc::c_int) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh mapping at an address the kernel picks (NULL hint, no
    // MAP_FIXED) cannot alias existing Rust memory; failure is checked
    // below. The size precondition is the caller's.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            REGION_LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_err("mmap"));
    }
    Ok(NonNull::new(p as *mut u8).expect("mmap returned null"))
}

/// The pid in a region name: `/proc/<pid>/fd/<fd>` and nothing else.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("/proc/")?;
    let (pid, fd) = rest.split_once("/fd/")?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(fd)).then(|| pid.parse().ok()).flatten()
}

impl ShmRegion {
    /// Creates a region: a sealed memfd (it can never shrink, so a peer's
    /// mapping cannot fault) stamped with a fresh random nonce.
    pub fn create() -> io::Result<Self> {
        // SAFETY: plain syscalls with checked results; the mapping is
        // REGION_LEN bytes of a file of that size.
        unsafe {
            let fd = libc::memfd_create(
                c"mmc-control-ring".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            );
            if fd < 0 {
                return Err(os_err("memfd_create"));
            }
            let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
            if libc::ftruncate(fd, REGION_LEN as libc::off_t) != 0 || libc::fcntl(fd, libc::F_ADD_SEALS, seals) != 0 {
                let e = os_err("sizing the control ring");
                libc::close(fd);
                return Err(e);
            }
            let ptr = match map(fd) {
                Ok(p) => p,
                Err(e) => {
                    libc::close(fd);
                    return Err(e);
                }
            };
            let nonce = std::collections::hash_map::RandomState::new().build_hasher().finish() | 1;
            let r = ShmRegion {
                ptr,
                fd: Some(fd),
                name: format!("/proc/{}/fd/{}", std::process::id(), fd),
                nonce,
            };
            r.header().nonce.0.store(nonce, Ordering::Relaxed);
            r.header().magic.0.store(MAGIC, Ordering::Release);
            Ok(r)
        }
    }

    /// Opens a region another process created. Checks, before mapping,
    /// that `name` is a `/proc/<pid>/fd/<n>` path to a memfd sealed against
    /// shrinking with room for the rings, and after mapping that it carries
    /// `nonce`: a name that points anywhere else is refused.
    pub fn open(name: &str, nonce: u64) -> io::Result<Self> {
        owner_pid(name).ok_or_else(|| bad(format!("control ring name {name:?} is not /proc/<pid>/fd/<n>")))?;
        let cname = std::ffi::CString::new(name).map_err(|_| bad("control ring name contains nul".into()))?;
        // SAFETY: plain syscalls with checked results; the file is sealed
        // against shrinking and holds at least REGION_LEN bytes, so the
        // mapping stays backed.
        unsafe {
            let fd = libc::open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(os_err(&format!("opening control ring {name}")));
            }
            let close_with = |e: io::Error| {
                libc::close(fd);
                Err(e)
            };
            let seals = libc::fcntl(fd, libc::F_GET_SEALS);
            if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
                return close_with(bad(format!("{name} is not a memfd sealed against shrinking")));
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 || (st.st_size as u64) < REGION_LEN as u64 {
                return close_with(bad(format!("{name} is smaller than {REGION_LEN} bytes")));
            }
            let ptr = match map(fd) {
                Ok(p) => p,
                Err(e) => return close_with(e),
            };
            libc::close(fd);
            let r = ShmRegion {
                ptr,
                fd: None,
                name: name.to_owned(),
                nonce,
            };
            let h = r.header();
            if h.magic.0.load(Ordering::Acquire) != MAGIC || h.nonce.0.load(Ordering::Relaxed) != nonce {
                return Err(bad(format!(
                    "{name} is not the control ring offered (magic or nonce differ)"
                )));
            }
            Ok(r)
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a page-aligned Header of atomics.
        unsafe { &*(self.ptr.as_ptr() as *const Header) }
    }

    fn ctl(&self, ring: usize) -> &RingCtl {
        &self.header().rings[ring]
    }

    fn data(&self, ring: usize) -> *mut u8 {
        // SAFETY: both rings lie inside the REGION_LEN mapping.
        unsafe { self.ptr.as_ptr().add(HEADER + ring * RING_CAP) }
    }
}

/// Stand-ins for a peer process writing the shared memory, for
/// [`crate::fuzzing`]: a peer may store anything in the indices, flags and
/// ring bytes at any time, and reads must stay inside the ring regardless.
impl ShmRegion {
    /// Stores `value` in ring `ring`'s shared producer (`head`) or
    /// consumer (`tail`) index, as a misbehaving peer could.
    pub(crate) fn peer_store_index(&self, ring: usize, head: bool, value: u64) {
        let ctl = self.ctl(ring);
        let index = if head { &ctl.head.0 } else { &ctl.tail.0 };
        index.store(value, Ordering::Release);
    }

    /// Stores `value` in ring `ring`'s shared sleeping flag.
    pub(crate) fn peer_store_sleeping(&self, ring: usize, value: u32) {
        self.ctl(ring).sleeping.0.store(value, Ordering::Relaxed);
    }

    /// Copies `bytes` into ring `ring` from byte `at` on, wrapping at the
    /// end of the ring (at most one ring's worth).
    pub(crate) fn peer_write_bytes(&self, ring: usize, at: usize, bytes: &[u8]) {
        let at = at % RING_CAP;
        let n = bytes.len().min(RING_CAP);
        let first = n.min(RING_CAP - at);
        let data = self.data(ring);
        // SAFETY: `at < RING_CAP`, `first <= RING_CAP - at` and
        // `n - first <= RING_CAP`, so both destination ranges lie inside
        // ring `ring` of the mapping; `bytes` is a separate Rust slice, so
        // source and destination do not overlap. A consumer reading these
        // bytes concurrently copies them with `ptr::copy_nonoverlapping`
        // too and never forms a reference to ring memory.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(at), first);
            std::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), data, n - first);
        }
    }
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; closing our own fd.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, REGION_LEN);
            if let Some(fd) = self.fd {
                libc::close(fd);
            }
        }
    }
}

/// The producing end of one ring. Callers serialise writes.
pub struct RingTx {
    region: Arc<ShmRegion>,
    ring: usize,
    /// Our own count of bytes written (the shared copy is not trusted).
    head: AtomicU64,
}

impl RingTx {
    pub fn new(region: Arc<ShmRegion>, ring: usize) -> Self {
        let head = region.ctl(ring).head.0.load(Ordering::Acquire);
        RingTx {
            region,
            ring,
            head: AtomicU64::new(head),
        }
    }

    /// Copies as much of `buf` as fits now and publishes it; returns how
    /// many bytes were taken (0 when the ring is full).
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let ctl = self.region.ctl(self.ring);
        let head = self.head.load(Ordering::Relaxed);
        let tail = ctl.tail.0.load(Ordering::Acquire);
        let used = head.wrapping_sub(tail);
        if used > RING_CAP as u64 {
            return Err(bad(format!("control ring {} consumer index is corrupt", self.ring)));
        }
        let n = buf.len().min(RING_CAP - used as usize);
        if n == 0 {
            return Ok(0);
        }
        let at = (head % RING_CAP as u64) as usize;
        let first = n.min(RING_CAP - at);
        let data = self.region.data(self.ring);
        // SAFETY: [at, at+first) and [0, n-first) lie inside the ring, and
        // the consumer reads no byte past the published head.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), data.add(at), first);
            std::ptr::copy_nonoverlapping(buf.as_ptr().add(first), data, n - first);
        }
        // Indices count bytes modulo 2^64 (a multiple of RING_CAP, so ring
        // positions stay consistent across the wrap); the starting value
        // came from shared memory, so it may be anything.
        let head = head.wrapping_add(n as u64);
        self.head.store(head, Ordering::Relaxed);
        ctl.head.0.store(head, Ordering::Release);
        Ok(n)
    }

    /// Whether the consumer sleeps and needs the doorbell rung. Call after
    /// [`write`](Self::write) has published a frame.
    pub fn consumer_sleeping(&self) -> bool {
        // Pairs with the fence in RingRx::prepare_sleep: either this load
        // sees the flag, or the consumer's re-check sees the new head.
        fence(Ordering::SeqCst);
        self.region.ctl(self.ring).sleeping.0.load(Ordering::Relaxed) != 0
    }
}

/// The consuming end of one ring; reads go through [`crate::frame_reader`].
pub struct RingRx {
    region: Arc<ShmRegion>,
    ring: usize,
    /// Our own count of bytes consumed (the shared copy is not trusted).
    tail: AtomicU64,
}

impl RingRx {
    pub fn new(region: Arc<ShmRegion>, ring: usize) -> Self {
        let tail = region.ctl(ring).tail.0.load(Ordering::Acquire);
        RingRx {
            region,
            ring,
            tail: AtomicU64::new(tail),
        }
    }

    /// Bytes published and not yet read.
    fn available(&self) -> io::Result<usize> {
        let head = self.region.ctl(self.ring).head.0.load(Ordering::Acquire);
        let avail = head.wrapping_sub(self.tail.load(Ordering::Relaxed));
        if avail > RING_CAP as u64 {
            return Err(bad(format!("control ring {} producer index is corrupt", self.ring)));
        }
        Ok(avail as usize)
    }

    /// Reads what is available now (`WouldBlock` when nothing is).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.available()?;
        let n = avail.min(buf.len());
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let tail = self.tail.load(Ordering::Relaxed);
        let at = (tail % RING_CAP as u64) as usize;
        let first = n.min(RING_CAP - at);
        let data = self.region.data(self.ring);
        // SAFETY: the n bytes from tail were published by the producer
        // (Acquire on head) and are not rewritten until tail moves past them.
        unsafe {
            std::ptr::copy_nonoverlapping(data.add(at), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, buf.as_mut_ptr().add(first), n - first);
        }
        // Modulo 2^64 like the producer's index: `tail` started from the
        // shared copy, which a peer may have set near u64::MAX.
        let tail = tail.wrapping_add(n as u64);
        self.tail.store(tail, Ordering::Relaxed);
        self.region.ctl(self.ring).tail.0.store(tail, Ordering::Release);
        Ok(n)
    }

    /// Announces that this consumer is about to sleep on the doorbell.
    /// Returns false (and withdraws the announcement) when bytes arrived
    /// meanwhile: read them instead of sleeping.
    pub fn prepare_sleep(&self) -> io::Result<bool> {
        let ctl = self.region.ctl(self.ring);
        ctl.sleeping.0.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.available()? > 0 {
            ctl.sleeping.0.store(0, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    /// Withdraws the sleep announcement (the consumer polls again).
    pub fn awake(&self) {
        self.region.ctl(self.ring).sleeping.0.store(0, Ordering::Relaxed);
    }
}

/// Reads the doorbell bytes waiting on `sock` (nonblocking). Returns false
/// once the socket is closed: the peer process is gone.
pub fn drain_doorbell(sock: &impl crate::frame_reader::ReadSource) -> io::Result<bool> {
    let mut b = [0u8; 64];
    loop {
        match sock.try_read_now(&mut b) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl crate::frame_reader::ReadSource for RingRx {
    fn try_read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Arc<ShmRegion>, Arc<ShmRegion>) {
        let a = Arc::new(ShmRegion::create().unwrap());
        let b = Arc::new(ShmRegion::open(a.name(), a.nonce()).unwrap());
        (a, b)
    }

    #[test]
    fn bytes_cross_between_two_mappings_and_wrap() {
        let (a, b) = pair();
        let tx = RingTx::new(a, TO_META);
        let rx = RingRx::new(b, TO_META);
        let mut got = vec![0u8; RING_CAP];
        assert_eq!(rx.read(&mut got).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // Chunks of a size coprime with the ring make every write wrap
        // somewhere over a few passes.
        let chunk: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..40 {
            assert_eq!(tx.write(&chunk).unwrap(), chunk.len());
            let mut off = 0;
            while off < chunk.len() {
                off += rx.read(&mut got[off..chunk.len()]).unwrap();
            }
            assert_eq!(&got[..chunk.len()], &chunk[..]);
        }
    }

    #[test]
    fn a_full_ring_takes_nothing_until_read() {
        let (a, b) = pair();
        let tx = RingTx::new(a, TO_CLIENT);
        let rx = RingRx::new(b, TO_CLIENT);
        let big = vec![7u8; RING_CAP + 10];
        assert_eq!(tx.write(&big).unwrap(), RING_CAP);
        assert_eq!(tx.write(&big).unwrap(), 0);
        let mut buf = vec![0u8; 10];
        assert_eq!(rx.read(&mut buf).unwrap(), 10);
        assert_eq!(tx.write(&big).unwrap(), 10);
    }

    #[test]
    fn a_large_stream_crosses_with_a_concurrent_reader() {
        let (a, b) = pair();
        let tx = RingTx::new(a, TO_META);
        let rx = RingRx::new(b, TO_META);
        let total = 8 * RING_CAP + 12345;
        let reader = std::thread::spawn(move || {
            let mut got = Vec::with_capacity(total);
            let mut buf = vec![0u8; 70_000];
            while got.len() < total {
                match rx.read(&mut buf) {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            got
        });
        let src: Vec<u8> = (0..total).map(|i| (i * 7 % 256) as u8).collect();
        let mut off = 0;
        while off < total {
            off += tx.write(&src[off..]).unwrap();
            std::thread::yield_now();
        }
        assert_eq!(reader.join().unwrap(), src);
    }

    #[test]
    fn sleep_announcement_is_withdrawn_when_bytes_wait() {
        let (a, b) = pair();
        let tx = RingTx::new(a, TO_CLIENT);
        let rx = RingRx::new(b, TO_CLIENT);
        assert!(!tx.consumer_sleeping());
        assert!(rx.prepare_sleep().unwrap(), "empty: may sleep");
        assert!(tx.consumer_sleeping(), "the producer sees the flag");
        rx.awake();
        tx.write(b"x").unwrap();
        assert!(!rx.prepare_sleep().unwrap(), "bytes wait: no sleep");
        assert!(!tx.consumer_sleeping());
    }

    #[test]
    fn corrupt_indices_are_errors_not_wild_reads() {
        let (a, b) = pair();
        let tx = RingTx::new(a.clone(), TO_META);
        let rx = RingRx::new(b, TO_META);
        // The peer claims more bytes than the ring holds.
        a.ctl(TO_META).head.0.store(RING_CAP as u64 * 3, Ordering::Release);
        let mut buf = [0u8; 16];
        assert_eq!(rx.read(&mut buf).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // The peer moves the tail ahead of anything written.
        a.ctl(TO_META).tail.0.store(5, Ordering::Release);
        assert_eq!(tx.write(b"abc").unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn indices_near_u64_max_wrap_instead_of_overflowing() {
        // Found by the ring_frames fuzz target: a peer stores indices near
        // u64::MAX before an end attaches; reads and writes past the wrap
        // must carry on (the ring position is the index modulo RING_CAP).
        let (a, b) = pair();
        let start = u64::MAX - 2;
        a.ctl(TO_META).head.0.store(start, Ordering::Release);
        a.ctl(TO_META).tail.0.store(start, Ordering::Release);
        let tx = RingTx::new(a, TO_META);
        let rx = RingRx::new(b, TO_META);
        assert_eq!(tx.write(b"0123456789").unwrap(), 10);
        let mut buf = [0u8; 16];
        assert_eq!(rx.read(&mut buf).unwrap(), 10);
        assert_eq!(&buf[..10], b"0123456789");
        assert_eq!(tx.write(b"ab").unwrap(), 2);
        assert_eq!(rx.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
    }

    #[test]
    fn open_refuses_what_is_not_an_offered_ring() {
        let a = ShmRegion::create().unwrap();
        for name in ["/etc/passwd", "/proc/self/fd/0", "/proc/1/fd/../../etc/passwd", ""] {
            assert!(ShmRegion::open(name, a.nonce()).is_err(), "{name}");
        }
        let err = ShmRegion::open(a.name(), a.nonce() ^ 2)
            .err()
            .expect("wrong nonce refused");
        assert!(err.to_string().contains("nonce"), "{err}");
        // A regular file, even under /proc/<pid>/fd, is not sealed.
        let f =
            std::fs::File::create(std::env::temp_dir().join(format!("mmc-ring-test-{}", std::process::id()))).unwrap();
        f.set_len(REGION_LEN as u64).unwrap();
        use std::os::fd::AsRawFd;
        let name = format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd());
        let err = ShmRegion::open(&name, a.nonce()).err().expect("regular file refused");
        assert!(err.to_string().contains("sealed"), "{err}");
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("mmc-ring-test-{}", std::process::id())));
    }
}
