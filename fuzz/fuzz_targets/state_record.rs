//! A record in the state directory, as any bytes another container could
//! have written: a record or an error, never a crash.
#![no_main]

use koordinator::sources::state_dir::parse_record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = parse_record(data) {
        let _ = record.observation();
    }
});
