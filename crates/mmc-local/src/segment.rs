//! Shared-memory segments: the one this LocalService contributes, and the
//! mappings of other LocalServices' segments on the same host.
//!
//! A segment is a memfd of the configured size, mapped shared. Its name is
//! `/proc/<pid>/fd/<fd>`, which any process of the same user on the same host
//! can open and map; when the owner dies the memory is released as soon as the
//! last mapping goes away, so a killed LocalService leaks nothing in /dev/shm.

use mmc_wire::{Error, Result};
use std::ffi::CString;
use std::ptr::NonNull;

/// A mapped region of shared memory (owned or a peer's).
pub struct Segment {
    name: String,
    ptr: NonNull<u8>,
    len: usize,
    /// Kept open while we own the segment so peers can open it by name.
    fd: Option<libc::c_int>,
}

// SAFETY: the mapping is plain shared memory; concurrent access to disjoint
// ranges is coordinated by the MetaService's allocator and leases.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

fn os_err(what: &str) -> Error {
    Error::Other(format!("{what}: {}", std::io::Error::last_os_error()))
}

unsafe fn map_fd(fd: libc::c_int, len: usize, prefault: bool) -> Result<NonNull<u8>> {
    let flags = libc::MAP_SHARED | if prefault { libc::MAP_POPULATE } else { 0 };
    let p = libc::mmap(
        std::ptr::null_mut(),
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        flags,
        fd,
        0,
    );
    if p == libc::MAP_FAILED {
        return Err(os_err("mmap"));
    }
    Ok(NonNull::new(p as *mut u8).expect("mmap returned null"))
}

impl Segment {
    /// Creates a new segment of `len` bytes backed by a memfd. With
    /// `prefault` every page is allocated and mapped now (no page faults on
    /// the data path later; the memory is committed at once).
    pub fn create(len: usize, prefault: bool) -> Result<Self> {
        let cname = CString::new("mmc-segment").expect("no nul");
        // SAFETY: plain syscalls with checked results.
        unsafe {
            let fd = libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return Err(os_err("memfd_create"));
            }
            if libc::ftruncate(fd, len as libc::off_t) != 0 {
                let e = os_err("ftruncate segment");
                libc::close(fd);
                return Err(e);
            }
            let ptr = match map_fd(fd, len, prefault) {
                Ok(p) => p,
                Err(e) => {
                    libc::close(fd);
                    return Err(e);
                }
            };
            let name = format!("/proc/{}/fd/{}", std::process::id(), fd);
            Ok(Segment {
                name,
                ptr,
                len,
                fd: Some(fd),
            })
        }
    }

    /// Maps a peer's segment by name; `len` must be the size it registered.
    /// With `prefault` the page tables are filled now rather than on first touch.
    pub fn open(name: &str, len: usize, prefault: bool) -> Result<Self> {
        if !name.starts_with("/proc/") || name.contains("..") {
            return Err(Error::NotConnectedLocal(format!("unsupported segment name {name}")));
        }
        let cname = CString::new(name).map_err(|_| Error::invalid("segment name contains nul"))?;
        // SAFETY: plain syscalls with checked results.
        unsafe {
            let fd = libc::open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(Error::NotConnectedLocal(format!(
                    "cannot open peer segment {name}: {}",
                    std::io::Error::last_os_error()
                )));
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 || (st.st_size as u64) < len as u64 {
                libc::close(fd);
                return Err(Error::NotConnectedLocal(format!(
                    "peer segment {name} is smaller than {len} bytes"
                )));
            }
            let r = map_fd(fd, len, prefault);
            libc::close(fd);
            Ok(Segment {
                name: name.to_owned(),
                ptr: r?,
                len,
                fd: None,
            })
        }
    }

    pub fn name(&self) -> &str {
        &self.name
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

    /// Pointer to `[offset, offset + len)`, checked against the mapping.
    pub fn range(&self, offset: u64, len: u64) -> Result<*mut u8> {
        match offset.checked_add(len) {
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
        // SAFETY: unmapping our own mapping once.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
            if let Some(fd) = self.fd {
                libc::close(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_mapping_sees_owner_writes() {
        let seg = Segment::create(1 << 20, true).unwrap();
        let peer = Segment::open(seg.name(), 1 << 20, false).unwrap();
        unsafe {
            *seg.range(4096, 1).unwrap() = 42;
            assert_eq!(*peer.range(4096, 1).unwrap(), 42);
        }
        assert!(seg.range(1 << 20, 1).is_err());
        assert!(seg.range(u64::MAX, 2).is_err());
        assert!(Segment::open("/etc/passwd", 10, false).is_err());
        assert!(Segment::open(seg.name(), 2 << 20, false).is_err());
    }
}
