//! Replays the committed fuzz corpora of this crate's decoders (under
//! `fuzz/corpus/<target>/` at the repository root) through the same
//! `mmc_wire::fuzzing` functions the fuzz targets call, so inputs that once
//! crashed a target stay fixed. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

/// Runs `f` on every file of `fuzz/corpus/<target>`; fails when fewer than
/// `min` files are there (a moved or deleted corpus must not pass silently).
fn replay(target: &str, min: usize, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for p in &files {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if let Err(panic) = std::panic::catch_unwind(|| f(&data)) {
            eprintln!("corpus input {} fails", p.display());
            std::panic::resume_unwind(panic);
        }
    }
    assert!(
        files.len() >= min,
        "only {} files replayed from {} (expected at least {min})",
        files.len(),
        dir.display()
    );
}

#[test]
fn control_frame_corpus() {
    replay("control_frame", 30, mmc_wire::fuzzing::control_frame);
}

#[test]
fn transfer_header_corpus() {
    replay("transfer_header", 5, mmc_wire::fuzzing::transfer_header);
}

#[test]
fn ring_frames_corpus() {
    replay("ring_frames", 5, mmc_wire::fuzzing::ring_frames);
}

#[test]
fn auth_handshake_corpus() {
    replay("auth_handshake", 3, mmc_wire::fuzzing::auth_handshake);
}
