//! Shared-memory segments: the one this LocalService contributes, and the
//! mappings of other LocalServices' segments on the same host.
//!
//! A segment is a sealed memfd mapped shared. Its name is
//! `/proc/<pid>/fd/<fd>`, which any process of the same user on the same host
//! can open and map; when the owner dies the memory is released as soon as the
//! last mapping goes away, so a killed LocalService leaks nothing in /dev/shm.
//!
//! The name comes from a peer's registration, which this process cannot
//! trust: a hostile "provider" could name any file it can reach (say
//! `/proc/self/root/etc/...`), and a put placed on it would overwrite that
//! file. So [`Segment::open`] maps only what it can verify to be the owner's
//! segment: a `/proc/<pid>/fd/<n>` name of a process in this network
//! namespace, whose opened file is a memfd named `mmc-segment`, sealed
//! against shrinking and growing, at least `len` + [`TRAILER`] bytes long,
//! whose trailer page (after the data, so object offsets are unchanged)
//! carries the magic and the nonce the owner registered.

use mmc_wire::{Error, ErrorKind, Result};
use std::ptr::NonNull;

/// Bytes after the data area holding [`MAGIC`] and the nonce.
pub const TRAILER: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"MMCSEG01");
/// The memfd name every segment is created with.
const MEMFD_NAME: &std::ffi::CStr = c"mmc-segment";
/// What `readlink` shows for a memfd of that name (the kernel appends
/// " (deleted)", since a memfd has no directory entry).
const MEMFD_LINK: &str = "/memfd:mmc-segment";

/// A mapped region of shared memory (owned or a peer's).
pub struct Segment {
    name: String,
    ptr: NonNull<u8>,
    /// Bytes of the data area (the trailer follows, mapped but out of range).
    len: usize,
    nonce: u64,
    /// (st_dev, st_ino) of the memfd: two names of one file share it.
    file_id: (u64, u64),
    /// Kept open while we own the segment so peers can open it by name.
    fd: Option<libc::c_int>,
}

// SAFETY: the mapping is plain shared memory; concurrent access to disjoint
// ranges is coordinated by the MetaService's allocator and leases.
unsafe impl Send for Segment {}
// SAFETY: as for Send; `&Segment` hands out only raw pointers and metadata.
unsafe impl Sync for Segment {}

fn os_err(what: &str) -> Error {
    Error::caused_by(ErrorKind::Other, what, std::io::Error::last_os_error())
}

fn refused(msg: String) -> Error {
    Error::new(ErrorKind::NotConnectedLocal, msg)
}

/// A nonzero random nonce from the OS.
fn random_nonce() -> Result<u64> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: writes at most `b.len() - got` bytes into `b[got..]`.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::caused_by(ErrorKind::Other, "getrandom", e));
        }
        got += n as usize;
    }
    Ok(u64::from_le_bytes(b) | 1)
}

/// Maps `len` bytes of `fd` shared, read-write.
///
/// # Safety
/// `fd` must be an open descriptor; the caller keeps the file at least
/// `len` bytes long for the mapping's lifetime (or accepts SIGBUS).
unsafe fn map_fd(fd: libc::c_int, len: usize, prefault: bool) -> Result<NonNull<u8>> {
    let flags = libc::MAP_SHARED | if prefault { libc::MAP_POPULATE } else { 0 };
    // SAFETY: a fresh mapping chosen by the kernel; it aliases no Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_err("mmap"));
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| Error::other("mmap returned null"))
}

/// Closes `fd` when dropped (unless taken back with [`Fd::keep`]).
struct Fd(libc::c_int);

impl Fd {
    fn keep(self) -> libc::c_int {
        let fd = self.0;
        std::mem::forget(self);
        fd
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor and close it once.
        unsafe { libc::close(self.0) };
    }
}

fn fstat(fd: &Fd) -> Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer for the call.
    if unsafe { libc::fstat(fd.0, &mut st) } != 0 {
        return Err(os_err("fstat segment"));
    }
    Ok(st)
}

/// The pid of a segment name that is exactly `/proc/<pid>/fd/<n>`, in
/// canonical form (procfs itself refuses leading zeros).
fn owner_pid(name: &str) -> Option<u32> {
    let pid = mmc_wire::shm_ring::owner_pid(name)?;
    let fd = name.rsplit('/').next()?;
    let canonical = |s: &str| s == "0" || !s.starts_with('0');
    (name == format!("/proc/{pid}/fd/{fd}") && canonical(fd)).then_some(pid)
}

/// Whether process `pid` lives in this process's network namespace (other
/// namespaces count as other hosts).
fn same_netns(pid: u32) -> Result<()> {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map_err(|e| refused(format!("network namespace of segment owner pid {pid}: {e}")))?;
    let ours = std::fs::read_link("/proc/self/ns/net").map_err(|e| refused(format!("own network namespace: {e}")))?;
    if theirs == ours {
        Ok(())
    } else {
        Err(refused(format!(
            "segment owner pid {pid} is in another network namespace"
        )))
    }
}

/// Checks that `fd` is a segment memfd: sealed against shrinking and
/// growing, named `mmc-segment`, of at least `min_len` bytes.
fn verify_memfd(fd: &Fd, name: &str, min_len: usize) -> Result<libc::stat> {
    // SAFETY: F_GET_SEALS takes no argument and only reads the fd's state.
    let seals = unsafe { libc::fcntl(fd.0, libc::F_GET_SEALS) };
    let need = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    if seals < 0 || seals & need != need {
        return Err(refused(format!(
            "peer segment {name} is not a memfd sealed against shrinking and growing"
        )));
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.0))
        .map_err(|e| refused(format!("cannot resolve peer segment {name}: {e}")))?;
    let link = link.to_string_lossy();
    let rest = link.strip_prefix(MEMFD_LINK);
    if !matches!(rest, Some("") | Some(" (deleted)")) {
        return Err(refused(format!(
            "peer segment {name} is {link}, not a MemCache segment memfd"
        )));
    }
    let st = fstat(fd)?;
    if (st.st_size as u64) < min_len as u64 {
        return Err(refused(format!("peer segment {name} is smaller than {min_len} bytes")));
    }
    Ok(st)
}

impl Segment {
    /// Creates a new segment of `len` bytes backed by a sealed memfd with a
    /// trailer page holding a fresh random nonce. With `prefault` every page
    /// is allocated and mapped now (no page faults on the data path later;
    /// the memory is committed at once).
    pub fn create(len: usize, prefault: bool) -> Result<Self> {
        let total = len
            .checked_add(TRAILER)
            .filter(|&t| t <= libc::off_t::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("segment size {len} is too large")))?;
        let nonce = random_nonce()?;
        // SAFETY: the name is a valid C string; the result is checked.
        let raw = unsafe { libc::memfd_create(MEMFD_NAME.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(os_err("memfd_create"));
        }
        let fd = Fd(raw);
        // SAFETY: plain syscalls on our own descriptor; results checked.
        let sized = unsafe {
            libc::ftruncate(fd.0, total as libc::off_t) == 0
                && libc::fcntl(
                    fd.0,
                    libc::F_ADD_SEALS,
                    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
                ) == 0
        };
        if !sized {
            return Err(os_err("sizing and sealing the segment"));
        }
        let st = fstat(&fd)?;
        // SAFETY: the file is `total` bytes and sealed against shrinking.
        let ptr = unsafe { map_fd(fd.0, total, prefault)? };
        let fd = fd.keep();
        let seg = Segment {
            name: format!("/proc/{}/fd/{}", std::process::id(), fd),
            ptr,
            len,
            nonce,
            file_id: (st.st_dev, st.st_ino),
            fd: Some(fd),
        };
        let mut trailer = [0u8; 16];
        trailer[..8].copy_from_slice(&MAGIC.to_le_bytes());
        trailer[8..].copy_from_slice(&nonce.to_le_bytes());
        // SAFETY: [len, len + 16) lies in the trailer page of our mapping,
        // which nobody else knows of yet.
        unsafe { std::ptr::copy_nonoverlapping(trailer.as_ptr(), seg.ptr.as_ptr().add(len), trailer.len()) };
        Ok(seg)
    }

    /// Maps a peer's segment, `len` data bytes, after checking that `name`
    /// is the memfd of a segment owner stamped with `nonce` (see the module
    /// comment). Anything else is refused (`NotConnectedLocal`) with
    /// nothing mapped. With `prefault` the page tables are filled now
    /// rather than on first touch.
    pub fn open(name: &str, len: usize, nonce: u64, prefault: bool) -> Result<Self> {
        let pid =
            owner_pid(name).ok_or_else(|| refused(format!("peer segment name {name:?} is not /proc/<pid>/fd/<n>")))?;
        let total = len
            .checked_add(TRAILER)
            .ok_or_else(|| refused(format!("peer segment {name} size {len} is too large")))?;
        same_netns(pid)?;
        let cname = std::ffi::CString::new(name).map_err(|_| Error::invalid("segment name contains nul"))?;
        // SAFETY: a valid C string; the result is checked.
        let raw = unsafe { libc::open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(refused(format!(
                "cannot open peer segment {name}: {}",
                std::io::Error::last_os_error()
            )));
        }
        let fd = Fd(raw);
        let st = verify_memfd(&fd, name, total)?;
        // SAFETY: verified: a memfd of at least `total` bytes sealed against
        // shrinking, so the whole mapping stays backed.
        let ptr = unsafe { map_fd(fd.0, total, prefault)? };
        drop(fd);
        let seg = Segment {
            name: name.to_owned(),
            ptr,
            len,
            nonce,
            file_id: (st.st_dev, st.st_ino),
            fd: None,
        };
        let mut trailer = [0u8; 16];
        // SAFETY: [len, len + 16) lies inside the `total`-byte mapping.
        unsafe { std::ptr::copy_nonoverlapping(seg.ptr.as_ptr().add(len), trailer.as_mut_ptr(), trailer.len()) };
        if trailer[..8] != MAGIC.to_le_bytes() || trailer[8..] != nonce.to_le_bytes() {
            // Dropping `seg` unmaps it.
            return Err(refused(format!(
                "peer segment {name} does not carry the registered nonce (not the owner's segment)"
            )));
        }
        Ok(seg)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The nonce in this segment's trailer (registered with the name).
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Identifies the underlying file: two segments with equal ids are the
    /// same memory, whatever names they were opened by.
    pub fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Pointer to `[offset, offset + len)`, checked against the data area.
    pub fn range(&self, offset: u64, len: u64) -> Result<*mut u8> {
        match offset.checked_add(len) {
            // SAFETY: offset <= end <= self.len, inside the mapping.
            Some(end) if end <= self.len as u64 => Ok(unsafe { self.base().add(offset as usize) }),
            _ => Err(Error::invalid(format!(
                "range {offset}+{len} is outside segment {} of {} bytes",
                self.name, self.len
            ))),
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping (data and trailer) once; closing
        // our own descriptor once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len + TRAILER);
            if let Some(fd) = self.fd {
                libc::close(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    const LEN: usize = 1 << 20;

    fn fd_name(fd: libc::c_int) -> String {
        format!("/proc/{}/fd/{fd}", std::process::id())
    }

    fn assert_refused(r: Result<Segment>, what: &str) {
        match r {
            Err(e) if e.kind() == ErrorKind::NotConnectedLocal => eprintln!("{what}: refused: {e}"),
            Err(e) => panic!("{what}: wrong error {e:?}"),
            Ok(s) => panic!("{what}: opened {}", s.name()),
        }
    }

    /// A file of `LEN + TRAILER` bytes at `path` with a plausible trailer
    /// (magic and `nonce`), so only the provenance checks can refuse it.
    fn forged_file(path: &std::path::Path, nonce: u64) -> std::fs::File {
        let mut bytes = vec![7u8; LEN + TRAILER];
        bytes[LEN..LEN + 8].copy_from_slice(&MAGIC.to_le_bytes());
        bytes[LEN + 8..LEN + 16].copy_from_slice(&nonce.to_le_bytes());
        std::fs::write(path, &bytes).unwrap();
        std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap()
    }

    #[test]
    fn peer_mapping_sees_owner_writes() {
        let seg = Segment::create(LEN, true).unwrap();
        let peer = Segment::open(seg.name(), LEN, seg.nonce(), false).unwrap();
        assert_eq!(peer.file_id(), seg.file_id());
        // SAFETY: both pointers are inside the 1 MiB mappings of one memfd.
        unsafe {
            *seg.range(4096, 1).unwrap() = 42;
            assert_eq!(*peer.range(4096, 1).unwrap(), 42);
        }
        assert!(seg.range(LEN as u64, 1).is_err());
        assert!(seg.range(u64::MAX, 2).is_err());
        assert_refused(
            Segment::open(seg.name(), 2 * LEN, seg.nonce(), false),
            "larger than the memfd",
        );
    }

    #[test]
    fn only_the_genuine_segment_opens() {
        let dir = std::env::temp_dir().join(format!("mmc-seg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let nonce = 0x1234_5678_9abc_def1;

        // A regular file, by path and through /proc/<pid>/fd/<n>.
        let victim = dir.join("victim");
        let file = forged_file(&victim, nonce);
        assert_refused(Segment::open(victim.to_str().unwrap(), LEN, nonce, false), "plain path");
        let via_root = format!("/proc/self/root{}", victim.display());
        assert_refused(Segment::open(&via_root, LEN, nonce, false), "/proc/self/root path");
        let via_pid_root = format!("/proc/{}/root{}", std::process::id(), victim.display());
        assert_refused(Segment::open(&via_pid_root, LEN, nonce, false), "/proc/<pid>/root path");
        assert_refused(
            Segment::open("/proc/self/fd/0", LEN, nonce, false),
            "/proc/self/fd path",
        );
        let fd = file.as_raw_fd();
        assert_refused(Segment::open(&fd_name(fd), LEN, nonce, false), "regular file fd");
        let zero_padded = format!("/proc/{}/fd/0{fd}", std::process::id());
        assert_refused(Segment::open(&zero_padded, LEN, nonce, false), "non-canonical fd");

        // A tmpfs file (shmem, but never sealed).
        let shm = std::path::Path::new("/dev/shm").join(format!("mmc-seg-test-{}", std::process::id()));
        let tmpfs = forged_file(&shm, nonce);
        assert_refused(
            Segment::open(&fd_name(tmpfs.as_raw_fd()), LEN, nonce, false),
            "tmpfs file",
        );
        let _ = std::fs::remove_file(&shm);

        // A memfd of the right name and size, without seals.
        // SAFETY: valid C string; result checked.
        let raw = unsafe { libc::memfd_create(MEMFD_NAME.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        let unsealed = Fd(raw);
        // SAFETY: sizing our own descriptor.
        let sized = unsafe { libc::ftruncate(unsealed.0, (LEN + TRAILER) as libc::off_t) };
        assert_eq!(sized, 0);
        assert_refused(Segment::open(&fd_name(unsealed.0), LEN, nonce, false), "unsealed memfd");

        // A sealed memfd of another name (e.g. a control ring).
        // SAFETY: valid C string; result checked.
        let raw = unsafe { libc::memfd_create(c"other".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        assert!(raw >= 0);
        let other = Fd(raw);
        // SAFETY: sizing and sealing our own descriptor.
        unsafe {
            assert_eq!(libc::ftruncate(other.0, (LEN + TRAILER) as libc::off_t), 0);
            assert_eq!(
                libc::fcntl(other.0, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW),
                0
            );
        }
        assert_refused(
            Segment::open(&fd_name(other.0), LEN, nonce, false),
            "memfd of another name",
        );

        // The genuine segment with the wrong nonce, then the right one.
        let seg = Segment::create(LEN, false).unwrap();
        assert_refused(Segment::open(seg.name(), LEN, seg.nonce() ^ 2, false), "wrong nonce");
        assert_refused(Segment::open(seg.name(), LEN, 0, false), "zero nonce");
        let peer = Segment::open(seg.name(), LEN, seg.nonce(), false).unwrap();
        assert_eq!(peer.len(), LEN);

        // The forged files were never written.
        drop(file);
        assert!(std::fs::read(&victim).unwrap()[..LEN].iter().all(|&b| b == 7));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nonces_differ_and_offsets_start_at_zero() {
        let a = Segment::create(4096, false).unwrap();
        let b = Segment::create(4096, false).unwrap();
        assert_ne!(a.nonce(), b.nonce());
        assert_ne!(a.nonce(), 0);
        assert_ne!(a.file_id(), b.file_id());
        assert!(a.range(0, 4096).is_ok());
        assert!(a.range(1, 4096).is_err());
    }
}
