//! One line of a watch stream, as any bytes: an event or a malformed-answer
//! error; a pod it carries goes through validation and observation.
#![no_main]

use koordinator::client::kube::{decode_event, WatchEvent};
use koordinator::rules::{pod, spec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(WatchEvent::Pod { pod: p, .. }) = decode_event(data) {
        let s = spec::parse(r#"{"startDeps":["proxy"],"stopDeps":["main"]}"#).unwrap();
        let _ = pod::validate(&p, &s, r#"{"startDeps":["proxy"]}"#);
        for name in p.container_names() {
            let _ = p.observe(name);
            let _ = p.restart_policy(name);
        }
        let _ = p.grace_period();
        let _ = p.is_finished();
    }
});
