//! An HTTP answer, as any bytes a probe endpoint, a quit endpoint or the API
//! server could send: a head and a de-chunked body, or an error, within
//! bounds.
#![no_main]

use koordinator::client::http::{read_head, Body, MAX_HEAD};
use libfuzzer_sys::fuzz_target;
use std::io::{BufReader, Cursor, Read};

fuzz_target!(|data: &[u8]| {
    let mut reader = BufReader::with_capacity(64, Cursor::new(data));
    let Ok(head) = read_head(&mut reader) else {
        return;
    };
    assert!((100..=599).contains(&head.status));
    assert!(head.headers.len() <= 64);
    let mut body = Body::new(reader, &head);
    let mut out = Vec::new();
    if body.by_ref().take((MAX_HEAD * 4) as u64).read_to_end(&mut out).is_ok() {
        assert!(out.len() <= data.len());
    }
});
