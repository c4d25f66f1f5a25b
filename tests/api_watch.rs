//! The real binary against the fake API server: start and stop
//! dependencies, reaction time, and no request storm.

use koordinator_integration::fixture::{started_within, Fixture, NAMESPACE, POD, STARTED};
use koordinator_integration::pods::{running, terminated};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[test]
fn start_waits_for_readiness_and_starts_within_50ms() {
    let f = Fixture::seed_job();
    let mut k = f.koordinator(r#"{"startDeps":["proxy"]}"#, STARTED).spawn();
    f.wait_for_watch(1);
    f.set("proxy", running(false));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!k.stdout().contains(&"started"));
    let served = f.set("proxy", running(true));
    started_within(&mut k, T);
    let latency = served.elapsed();
    assert!(
        latency < Duration::from_millis(50),
        "started {latency:?} after the status change"
    );
    let lists = f.requests().iter().filter(|r| !r.is_watch()).count();
    assert_eq!(lists, 1, "one list, then one watch");
    k.signal(libc::SIGTERM);
    assert_eq!(k.wait(T), 143);
}

#[test]
fn a_sidecar_is_stopped_with_exit_0_after_its_stop_dep_terminates() {
    let f = Fixture::seed_job();
    f.set("main", running(true));
    let mut k = f.koordinator(r#"{"stopDeps":["main"]}"#, STARTED).spawn();
    started_within(&mut k, T);
    f.wait_for_watch(1);
    f.set("main", terminated(1));
    assert_eq!(
        k.wait(T),
        0,
        "stopped by its stop dependency: 0, so the Job completes"
    );
    assert_eq!(
        f.termination_message(),
        "koordinator: stop dependency main exited; stopping the command\n"
    );
    assert!(k
        .stderr()
        .iter()
        .any(|l| l.contains("stop dependency main exited; stopping the command")));
}

#[test]
fn a_stop_dep_that_exited_before_the_sidecar_started_means_it_never_starts() {
    let f = Fixture::seed_job();
    f.set("main", terminated(0));
    let mut k = f.koordinator(r#"{"stopDeps":["main"]}"#, STARTED).spawn();
    assert_eq!(k.wait(T), 0);
    assert!(!k.stdout().contains(&"started"));
    assert!(f
        .termination_message()
        .contains("stop dependency main has already exited"));
}

#[test]
fn a_misspelt_dependency_lists_the_real_containers() {
    let f = Fixture::seed_job();
    let mut k = f.koordinator(r#"{"startDeps":["prxy"]}"#, STARTED).spawn();
    assert_eq!(k.wait(T), 2);
    let expected = format!(
        "configuration error: start dependency \"prxy\" is not a container of pod \"{POD}\" (did you mean \"proxy\"?); its containers are: main, proxy"
    );
    assert_eq!(
        f.termination_message(),
        format!("koordinator: {expected}\n")
    );
    assert!(
        k.stderr()
            .contains(&format!("koordinator: error: {expected}").as_str()),
        "{:?}",
        k.stderr()
    );
}

#[test]
fn a_deleted_pod_is_logged() {
    let f = Fixture::seed_job();
    let mut k = f.koordinator(r#"{"startDeps":["proxy"]}"#, STARTED).spawn();
    f.wait_for_watch(1);
    f.server.delete_pod(NAMESPACE, POD);
    let deadline = Instant::now() + T;
    while !k
        .stderr()
        .iter()
        .any(|l| l.contains(&format!("pod \"{POD}\" was deleted")))
    {
        assert!(Instant::now() < deadline, "{:?}", k.stderr());
        k.expect_no_line_for(Duration::from_millis(50));
    }
}

#[test]
fn a_watch_held_for_its_full_timeout_is_renewed_without_a_storm() {
    let f = Fixture::seed_job();
    f.server.set_bookmark_interval(Duration::from_millis(700));
    let started = Instant::now();
    let mut k = f
        .koordinator(r#"{"startDeps":["proxy"]}"#, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", "2s")
        .spawn();
    std::thread::sleep(Duration::from_secs(7));
    let requests = f.requests();
    let lists = requests.iter().filter(|r| !r.is_watch()).count();
    let watches: Vec<_> = requests.iter().filter(|r| r.is_watch()).collect();
    assert_eq!(lists, 1, "no relist while the watch works: {requests:#?}");
    assert!(
        (3..=8).contains(&watches.len()),
        "{} watches in 7 s with timeoutSeconds <= 2",
        watches.len()
    );
    for w in &watches {
        let t: u64 = w.query["timeoutSeconds"].parse().unwrap();
        assert!((1..=2).contains(&t), "timeoutSeconds={t}");
        assert_eq!(w.query["allowWatchBookmarks"], "true");
        assert_eq!(w.query["fieldSelector"], format!("metadata.name={POD}"));
        assert!(w.at.duration_since(started) < Duration::from_secs(8));
    }
    // Each renewal continues from the newest resourceVersion it saw (bookmarks included).
    let rvs: Vec<u64> = watches
        .iter()
        .map(|w| w.query["resourceVersion"].parse().unwrap())
        .collect();
    assert!(rvs.windows(2).all(|p| p[0] <= p[1]), "{rvs:?}");
    assert!(!k.stdout().contains(&"started"));
    f.set("proxy", running(true));
    started_within(&mut k, T);
}

#[test]
fn a_held_sigterm_is_forwarded_before_the_kubelets_sigkill() {
    // The stop dependency can only be followed through the API, which shows
    // nothing while the pod terminates: the held SIGTERM must be forwarded
    // before the grace period (here 4 s) ends, at min(5 s, grace/2) before it.
    let f = Fixture::seed_job();
    f.set("main", running(true));
    let mut k = f
        .koordinator(
            r#"{"stopDeps":["main"]}"#,
            &[
                "sh",
                "-c",
                "trap 'echo got TERM; exit 0' TERM; echo started; while :; do sleep 0.05; done",
            ],
        )
        .spawn();
    started_within(&mut k, T);
    f.wait_for_watch(1);
    f.server.begin_deletion(NAMESPACE, POD, 4);
    std::thread::sleep(Duration::from_millis(200));
    let term = Instant::now();
    k.signal(libc::SIGTERM);
    k.expect_line("got TERM", T);
    let held = term.elapsed();
    assert!(
        held >= Duration::from_millis(1900) && held < Duration::from_millis(3000),
        "held for {held:?}; the kubelet kills at 4 s"
    );
    assert_eq!(k.wait(T), 0, "the command's own exit code");
    let log = k.stderr().join("\n");
    assert!(
        log.contains("holding SIGTERM until stop dependencies main have exited (termWaitsForStopDeps), 2s at most (the pod's grace period is 4s)")
            && log.contains("forwarding SIGTERM now: stop dependencies main have not been seen exiting"),
        "{log}"
    );
}
