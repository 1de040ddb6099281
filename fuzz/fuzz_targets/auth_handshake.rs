//! Fuzz target `auth_handshake`: the cluster-token handshake, both sides, with fuzz bytes as the peer.
//! The body lives in `mmc_wire::fuzzing::auth_handshake` so the corpus replay test runs the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmc_wire::fuzzing::auth_handshake(data));
