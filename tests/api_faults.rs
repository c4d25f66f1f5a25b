//! Every fault the fake API server can produce is survived: no hang, no
//! crash, and no status change missed after the relist that follows.

use koordinator_integration::apiserver::Fault;
use koordinator_integration::fixture::{started_within, Fixture, STARTED};
use koordinator_integration::harness::Running;
use koordinator_integration::pods::running;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const SPEC: &str = r#"{"startDeps":["proxy"]}"#;

fn lists(f: &Fixture) -> usize {
    f.requests().iter().filter(|r| !r.is_watch()).count()
}

/// Starts koordinator, lets it watch, injects `fault`, waits until the server
/// has served the faulty request, and only then makes the proxy ready: the
/// change can only be seen through the recovery.
fn survive(fault: Fault, env: &[(&str, &str)]) -> (Fixture, Running, Duration) {
    let f = Fixture::seed_job();
    let mut k = f.koordinator(SPEC, STARTED);
    for (key, value) in env {
        k = k.env(key, value);
    }
    let mut k = k.spawn();
    f.wait_for_watch(1);
    let before = f.requests().len();
    f.server.inject(fault);
    f.wait_for_requests(before + 1, |_| true, T);
    f.set("proxy", running(true));
    let changed = Instant::now();
    started_within(&mut k, T);
    (f, k, changed.elapsed())
}

#[test]
fn a_500_is_retried() {
    let (f, k, _) = survive(Fault::Status500, &[]);
    assert!(f.requests().iter().any(|r| r.status == 500));
    assert!(
        k.stderr()
            .iter()
            .any(|l| l.contains("500 InternalError: etcdserver: request timed out; retrying")),
        "{:?}",
        k.stderr()
    );
}

#[test]
fn a_500_on_the_first_list_is_retried() {
    let f = Fixture::seed_job();
    f.server.inject(Fault::Status500);
    f.set("proxy", running(true));
    let mut k = f.koordinator(SPEC, STARTED).spawn();
    started_within(&mut k, T);
    assert_eq!(f.requests()[0].status, 500);
}

#[test]
fn a_connection_dropped_mid_stream_relists() {
    let (f, k, _) = survive(Fault::DropMidStream, &[]);
    assert_eq!(lists(&f), 2);
    assert!(
        k.stderr().iter().any(|l| l.contains("failed")),
        "{:?}",
        k.stderr()
    );
}

#[test]
fn a_stalled_watch_is_abandoned_at_its_deadline() {
    // A 1 s watch ends 2 s after its timeoutSeconds at the latest; the stall lasts a minute.
    let (f, _k, took) = survive(
        Fault::Stall(Duration::from_secs(60)),
        &[("KOORDINATOR_WATCH_TIMEOUT", "1s")],
    );
    assert!(
        took >= Duration::from_millis(2500),
        "noticed the stall after {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "noticed the stall after {took:?}"
    );
    assert_eq!(lists(&f), 2);
}

#[test]
fn an_error_410_event_inside_a_200_stream_relists() {
    let (f, k, _) = survive(Fault::Error410InStream, &[]);
    assert_eq!(lists(&f), 2);
    assert!(
        k.stderr()
            .iter()
            .any(|l| l.contains("too old resource version")),
        "{:?}",
        k.stderr()
    );
}

#[test]
fn an_http_410_relists() {
    let (f, _k, _) = survive(Fault::Http410, &[]);
    assert!(f.requests().iter().any(|r| r.status == 410));
    assert_eq!(lists(&f), 2);
}

#[test]
fn compacted_history_after_a_server_restart_relists() {
    let f = Fixture::seed_job();
    let mut k = f.koordinator(SPEC, STARTED).spawn();
    f.wait_for_watch(1);
    f.set("proxy", running(false));
    f.server.compact();
    f.server.end_watches();
    f.wait_for_requests(2, |r| !r.is_watch(), T);
    f.set("proxy", running(true));
    started_within(&mut k, T);
}

#[test]
fn a_malformed_line_relists() {
    let (f, k, _) = survive(Fault::MalformedLine, &[]);
    assert_eq!(lists(&f), 2);
    assert!(
        k.stderr()
            .iter()
            .any(|l| l.contains("unexpected answer: watch event")),
        "{:?}",
        k.stderr()
    );
}

#[test]
fn an_event_of_the_wrong_shape_relists() {
    let (f, _k, _) = survive(Fault::WrongShape, &[]);
    assert_eq!(lists(&f), 2);
}

#[test]
fn an_oversized_line_relists_with_bounded_memory() {
    let (f, k, _) = survive(Fault::OversizedLine, &[]);
    assert_eq!(lists(&f), 2);
    assert!(
        k.stderr().iter().any(|l| l.contains("larger than 8 MiB")),
        "{:?}",
        k.stderr()
    );
    let hwm = koordinator_integration::harness::status_kb(k.pid, "VmHWM");
    assert!(hwm > 0);
    assert!(hwm < 24 * 1024, "peak RSS {hwm} kB after a 9 MiB line");
}
