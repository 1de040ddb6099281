//! Fuzz target `config`: config files (from_toml, validate) and sizes (parse_size).
//! The body lives in `mmc_config::fuzzing::config` so the corpus replay test runs the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mmc_config::fuzzing::config(data));
