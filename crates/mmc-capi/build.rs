//! Gives the shared library a SONAME, so programs linked against
//! `libmemcache.so` record that name (not the build path) as their
//! dependency and find the installed library through the usual search path.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmemcache.so");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
