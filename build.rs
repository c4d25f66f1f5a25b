//! Link settings for the shipped static build (README, "Size").
//!
//! Only for release builds of the musl targets: those abort on panic, so the
//! unwind tables that `link/no-eh-frame.ld` drops are never used. Debug and
//! test builds keep them (they unwind on panic).

fn main() {
    println!("cargo:rerun-if-changed=link/no-eh-frame.ld");
    let target = std::env::var("TARGET").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if target.ends_with("-linux-musl") && release {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/link/no-eh-frame.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{script}");
    }
}
