//! Fuzzing entry point for the configuration decoders.
//!
//! [`config`] takes arbitrary bytes and runs them through
//! [`ConfigFile::from_toml`], the reader of the original MemCache's format
//! ([`crate::ock::parse`]), both sections' `validate` and [`parse_size`],
//! checking that nothing panics and that what decodes survives a
//! serialize-and-decode round trip (an `ock.mmc.*` file's settings written
//! as TOML read back the same). The fuzz target `config` (under
//! `fuzz/`) and the corpus replay test `tests/fuzz_corpus.rs` call this same
//! function.
//!
//! Not part of the API: hidden from the documentation and free to change.

use crate::{format_size, parse_size, ConfigFile};

/// One fuzz input: the bytes as a config file and as a size.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(n) = parse_size(text) {
        assert_eq!(
            parse_size(&format_size(n)),
            Ok(n),
            "format_size({n}) does not parse back"
        );
        // A plain integer means bytes.
        if let Ok(exact) = text.trim().parse::<u64>() {
            assert_eq!(n, exact);
        }
    }

    if let Ok(cfg) = crate::ock::parse(text) {
        // What it accepted is valid, and reads back the same as TOML.
        cfg.meta.validate().expect("ock::parse checks the meta section");
        cfg.local.validate().expect("ock::parse checks the local section");
        let again = toml::to_string(&cfg).expect("a decoded config serializes");
        let cfg2 = ConfigFile::from_toml(&again).unwrap_or_else(|e| panic!("ock config as TOML fails: {e}\n{again}"));
        assert_eq!(cfg2.meta, cfg.meta, "meta section changed in a round trip:\n{again}");
        assert_eq!(cfg2.local, cfg.local, "local section changed in a round trip:\n{again}");
    }

    let Ok(cfg) = ConfigFile::from_toml(text) else {
        return;
    };
    let meta_ok = cfg.meta.validate().is_ok();
    let local_ok = cfg.local.validate().is_ok();
    // What was read writes back as TOML that reads as the same settings
    // (and validates the same way).
    let again = toml::to_string(&cfg).expect("a decoded config serializes");
    let cfg2 = ConfigFile::from_toml(&again).unwrap_or_else(|e| panic!("re-serialized config fails: {e}\n{again}"));
    assert_eq!(cfg2.meta, cfg.meta, "meta section changed in a round trip:\n{again}");
    assert_eq!(cfg2.local, cfg.local, "local section changed in a round trip:\n{again}");
    assert_eq!(
        cfg2.cluster, cfg.cluster,
        "cluster section changed in a round trip:\n{again}"
    );
    assert_eq!(cfg2.meta.validate().is_ok(), meta_ok);
    assert_eq!(cfg2.local.validate().is_ok(), local_ok);
}
