//! `koordinator --check` (in progress: see issue 4).

pub fn run() -> i32 {
    eprintln!("koordinator: --check is not available in this build yet");
    crate::EXIT_FAILURE
}
