//! Log files that `log_path` asks for: `<log_path>/logs/<name>` (the layout
//! of the original MemCache), rotated by size.
//!
//! [`RotatingFile`] is a plain [`std::io::Write`]: the services wrap it in a
//! mutex and hand it to their logger, which writes one whole event per
//! call, so rotation happens between events, never inside one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `<log_path>/logs/<name>`: where a service configured with `log_path`
/// writes its log. A relative `log_path` is relative to the working
/// directory.
pub fn log_file_path(log_path: &str, name: &str) -> PathBuf {
    Path::new(log_path).join("logs").join(name)
}

/// A log file rotated by size: when a write would take it past `max_size`
/// bytes, `name` becomes `name.1`, `name.1` becomes `name.2`, and so on up
/// to `name.<keep>` (the oldest, dropped at the next rotation), and a fresh
/// `name` is started. A single write larger than `max_size` still goes in
/// whole, into a file of its own.
pub struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Opens (appending) or creates `path`, creating its directory first.
    /// The error names the path.
    pub fn open(path: &Path, max_size: u64, keep: u32) -> io::Result<Self> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("log file {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(named)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(named)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile {
            path: path.to_owned(),
            max_size: max_size.max(1),
            keep: keep.max(1),
            file,
            written,
        })
    }

    /// The path of the current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..self.keep).rev() {
            let from = self.numbered(n);
            if from.exists() {
                std::fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.numbered(1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_size {
            // A failed rotation (directory removed, disk full) keeps
            // writing to the current file rather than losing the event.
            let _ = self.rotate();
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_count_files() {
        let dir = std::env::temp_dir().join(format!("mmc-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = log_file_path(dir.to_str().unwrap(), "t.log");
        assert!(path.ends_with("logs/t.log"));
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            f.write_all(format!("line {i:03} {}\n", "x".repeat(30)).as_bytes())
                .unwrap();
        }
        f.flush().unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        // 40-byte lines, 100-byte files: two lines a file; the newest two
        // files of old lines are kept.
        assert_eq!(read(path.clone()).lines().count(), 2);
        assert!(read(path.clone()).starts_with("line 008"));
        assert!(read(f.numbered(1)).starts_with("line 006"));
        assert!(read(f.numbered(2)).starts_with("line 004"));
        assert!(!f.numbered(3).exists());
        // Reopening appends and counts what is there.
        drop(f);
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        f.write_all(&[b'y'; 30]).unwrap();
        assert!(read(path.clone()).starts_with("y"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_errors_name_the_path() {
        let e = RotatingFile::open(Path::new("/proc/no/such/dir/x.log"), 100, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/proc/no/such/dir/x.log"), "{e}");
    }
}
