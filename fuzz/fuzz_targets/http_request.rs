//! Fuzz target `http_request`: the MetaService's HTTP request head parser and
//! query parameters.
//! The body lives in `mmc_meta::http::fuzzing::http_request` so the corpus replay test runs the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmc_meta::http::fuzzing::http_request(data));
