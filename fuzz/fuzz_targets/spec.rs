//! KOORDINATOR_SPEC: any text is a spec or a configuration error, and a
//! spec's normalised form (`--validate`) parses back to the same meaning.
#![no_main]

use koordinator::rules::{plan, spec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = spec::parse(text) else {
        return;
    };
    let normal = parsed.to_json().to_string();
    let again = spec::parse(&normal).expect("the normalised spec parses");
    assert_eq!(again.to_json(), parsed.to_json());
    let _ = plan::plan(&parsed, Err("no token".into()), None);
    let _ = plan::plan(&parsed, Ok(()), Some("/state".into())).map(|p| p.describe(&parsed));
});
