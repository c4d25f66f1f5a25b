//! Link settings for the shipped static build (README, "Size").
//!
//! Only for release builds of the musl targets: those abort on panic, so the
//! unwind tables that `link/release.ld` drops are never used, and it lays
//! the code out for the plain-init path (see the script). Debug and test
//! builds keep their tables (they unwind on panic).

fn main() {
    println!("cargo:rerun-if-changed=link/release.ld");
    let target = std::env::var("TARGET").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if target.ends_with("-linux-musl") && release {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/link/release.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{script}");
    }
}
