//! The coordinator under arbitrary sequences of pod snapshots, state
//! records, probe results, signals, exits and timers: every invariant of
//! `rules::simulate` holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = koordinator::rules::simulate::run(data) {
        panic!("{e}");
    }
});
