//! Fuzz target `ring_frames`: frames read through a shared-memory ring whose
//! header and bytes a peer scribbles over.
//! The body lives in `mmc_wire::fuzzing::ring_frames` so the corpus replay test runs the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmc_wire::fuzzing::ring_frames(data));
