//! Fuzz target `control_frame`: control-RPC frames (parse_head, read_frame,
//! FrameReader over arbitrary chunkings) and postcard Request / Response.
//! The body lives in `mmc_wire::fuzzing::control_frame` so the corpus replay test runs the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmc_wire::fuzzing::control_frame(data));
