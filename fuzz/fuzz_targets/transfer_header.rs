//! Fuzz target `transfer_header`: transfer-protocol request headers and replies.
//! The body lives in `mmc_wire::fuzzing::transfer_header` so the corpus replay test runs the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmc_wire::fuzzing::transfer_header(data));
