//! Tokens and permissions: rotation mid-watch, 401 re-reads the token,
//! 403 shows the Role needed and recovers once it is granted, and a refusal
//! that lasts 60 s before the start ends koordinator with exit 1.

use koordinator_integration::apiserver::Access;
use koordinator_integration::fixture::{started_within, Fixture, POD, STARTED, TOKEN};
use koordinator_integration::pods::{running, terminated};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const SPEC: &str = r#"{"startDeps":["proxy"]}"#;

#[test]
fn a_token_rotated_mid_watch_is_picked_up_without_a_401() {
    let f = Fixture::seed_job();
    let mut k = f
        .koordinator(SPEC, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", "1s")
        .spawn();
    f.wait_for_watch(1);
    // The kubelet writes the new token before the old one expires.
    f.server.set_token("token-2", Access::OnePod(POD.into()));
    f.files.write_token("token-2");
    f.server.remove_token(TOKEN);
    let rotated = f.requests().len();
    f.wait_for_requests(rotated + 2, |r| r.is_watch(), T);
    f.set("proxy", running(true));
    started_within(&mut k, T);
    assert!(
        f.requests().iter().all(|r| r.status == 200),
        "{:#?}",
        f.requests()
    );
}

#[test]
fn a_401_re_reads_the_token_and_recovers() {
    let f = Fixture::seed_job();
    let mut k = f
        .koordinator(SPEC, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", "1s")
        .spawn();
    f.wait_for_watch(1);
    // The old token expires before the file is updated.
    f.server.remove_token(TOKEN);
    f.wait_for_requests(1, |r| r.status == 401, T);
    f.server.set_token("token-2", Access::OnePod(POD.into()));
    f.files.write_token("token-2");
    f.set("proxy", running(true));
    started_within(&mut k, T);
    assert!(
        k.stderr()
            .iter()
            .any(|l| l.contains("rejected the service-account token (401 Unauthorized")),
        "{:?}",
        k.stderr()
    );
}

#[test]
fn a_403_shows_the_role_needed_and_recovers_when_granted() {
    let f = Fixture::seed_job();
    f.server.set_token(TOKEN, Access::Nothing);
    f.set("proxy", running(true));
    let mut k = f.koordinator(SPEC, STARTED).spawn();
    f.wait_for_requests(2, |r| r.status == 403, T);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!k.stdout().contains(&"started"));
    f.server.set_token(TOKEN, Access::OnePod(POD.into()));
    started_within(&mut k, T);
    let log = k.stderr().join("\n");
    assert!(
        log.contains("the API server refused access (403 Forbidden"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "  verbs: [\"list\", \"watch\"]\n  # least privilege for a pod with a fixed name (not for Jobs): resourceNames: [\"{POD}\"]"
        )),
        "{log}"
    );
    assert!(
        log.contains("- kind: ServiceAccount\n  name: koordinator-test\n  namespace: jobs")
            && log.contains("kind: Role\nmetadata:\n  name: koordinator-koordinator-test\n"),
        "{log}"
    );
    assert_eq!(
        log.matches("kind: RoleBinding").count(),
        1,
        "the hint is logged once a minute at most"
    );
}

#[test]
fn permissions_revoked_after_the_start_never_stop_the_command() {
    let f = Fixture::seed_job();
    f.set("main", running(true));
    let mut k = f
        .koordinator(r#"{"stopDeps":["main"]}"#, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", "1s")
        .spawn();
    started_within(&mut k, T);
    f.server.set_token(TOKEN, Access::Nothing);
    f.wait_for_requests(3, |r| r.status == 403, T);
    assert!(k.child.try_wait().unwrap().is_none(), "still running");
    f.server.set_token(TOKEN, Access::OnePod(POD.into()));
    f.set("main", terminated(0));
    assert_eq!(
        k.wait(Duration::from_secs(40)),
        0,
        "the stop dependency still stops it"
    );
}

#[test]
fn a_403_lasting_60s_before_the_start_exits_1() {
    let f = Fixture::seed_job();
    f.server.set_token(TOKEN, Access::Nothing);
    let started = Instant::now();
    let mut k = f.koordinator(SPEC, STARTED).spawn();
    assert_eq!(k.wait(Duration::from_secs(90)), 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(60) && took < Duration::from_secs(75),
        "{took:?}"
    );
    assert!(!k.stdout().contains(&"started"));
    let log = k.stderr().join("\n");
    assert!(log.contains("kind: RoleBinding"), "{log}");
    assert!(f
        .termination_message()
        .contains("the API server has refused access for 60s (403 Forbidden"));
    let requests = f.requests().len();
    assert!(
        requests < 30,
        "backoff keeps it to a trickle: {requests} requests in 60 s"
    );
}

#[test]
fn an_unknown_pod_name_says_how_to_set_it() {
    // With the broad Role the list succeeds and finds nothing; with the
    // least-privilege one it is a 403 (see a_403_names_where_the_pod_name_came_from).
    let f = Fixture::seed_job();
    f.server.set_token(TOKEN, Access::AllPods);
    let mut k = f
        .koordinator(SPEC, STARTED)
        .env("KOORDINATOR_POD_NAME", "not-this-pod")
        .spawn();
    f.wait_for_requests(1, |_| true, T);
    k.expect_no_line_for(Duration::from_millis(300));
    let log = k.stderr().join("\n");
    assert!(
        log.contains("pod \"not-this-pod\" not found in namespace \"jobs\" (name from KOORDINATOR_POD_NAME, namespace from"),
        "{log}"
    );
    assert!(log
        .contains("set KOORDINATOR_POD_NAME and KOORDINATOR_POD_NAMESPACE from the downward API"));
}

#[test]
fn a_403_names_where_the_pod_name_came_from() {
    let f = Fixture::seed_job();
    let mut k = f
        .koordinator(SPEC, STARTED)
        .env("KOORDINATOR_POD_NAME", "not-this-pod")
        .spawn();
    f.wait_for_requests(1, |r| r.status == 403, T);
    k.expect_no_line_for(Duration::from_millis(300));
    let log = k.stderr().join("\n");
    assert!(
        log.contains("The pod name \"not-this-pod\" came from KOORDINATOR_POD_NAME; if this pod is called otherwise, set KOORDINATOR_POD_NAME"),
        "{log}"
    );
}
