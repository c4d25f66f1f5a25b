//! Process entry. `no_main` keeps Rust's runtime from setting SIGPIPE to
//! "ignore" before we can see how we were started: the command must inherit
//! koordinator's original dispositions (`nohup` must keep working).

#![no_main]

use std::io::Write;

#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    let inherited = koordinator::init::child::Inherited::capture();
    // First, before any thread exists: see signals.rs for why.
    if let Err(e) = koordinator::init::signals::block_all() {
        eprintln!("koordinator: cannot block signals: {e}");
        return koordinator::EXIT_FAILURE;
    }
    // SAFETY: argc and argv come straight from the C runtime.
    let args = unsafe { koordinator::argv_from_c(argc, argv) };
    let code = koordinator::entry(args, inherited);
    let _ = std::io::stdout().flush();
    // Ends the watcher thread too, even when it is blocked in a TLS read.
    std::process::exit(code)
}
