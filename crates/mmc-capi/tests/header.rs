//! The committed C header (`include/memcache.h`) must equal what cbindgen
//! generates from `src/lib.rs` with `cbindgen.toml`. Run with
//! `MMC_UPDATE_HEADER=1` to rewrite the header instead of checking it.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen could not generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!(
                "first difference at line {}:\n  committed: {x}\n  generated: {y}",
                i + 1
            );
        }
    }
    format!(
        "the files differ in length: committed {} lines, generated {} lines",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn committed_header_is_up_to_date() {
    let header: PathBuf = crate_dir().join("../../include/memcache.h");
    let fresh = generate();
    if std::env::var_os("MMC_UPDATE_HEADER").is_some_and(|v| !v.is_empty()) {
        std::fs::create_dir_all(header.parent().unwrap()).unwrap();
        std::fs::write(&header, &fresh).unwrap();
        eprintln!("wrote {}", header.display());
        return;
    }
    let committed = std::fs::read_to_string(&header).unwrap_or_default();
    if committed != fresh {
        let tmp = std::env::temp_dir().join("memcache.h.generated");
        let _ = std::fs::write(&tmp, &fresh);
        panic!(
            "include/memcache.h is out of date with crates/mmc-capi/src/lib.rs.\n{}\n\
             See the whole difference with: diff -u include/memcache.h {}\n\
             Regenerate it with:  MMC_UPDATE_HEADER=1 cargo test -p mmc-capi --test header",
            first_difference(&committed, &fresh),
            tmp.display()
        );
    }
    assert!(Path::new(&header).exists());
}
