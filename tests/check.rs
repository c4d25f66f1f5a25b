//! `koordinator --check` against a healthy and a broken API server: each
//! problem is named with its fix, and the exit code says whether all passed.

use koordinator_integration::apiserver::Access;
use koordinator_integration::fixture::{Fixture, POD, TOKEN};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn check(f: &Fixture, spec: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut k = f.koordinator(spec, &["--check"]);
    for (key, value) in env {
        k = k.env(key, value);
    }
    let mut k = k.spawn();
    let code = k.wait(T);
    (code, k.stdout().join("\n"))
}

#[test]
fn a_healthy_setup_passes_every_check() {
    let f = Fixture::seed_job();
    let (code, out) = check(&f, r#"{"startDeps":["proxy"],"stopDeps":["main"]}"#, &[]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "ok    spec: startDeps proxy (ready); stopDeps main",
            "ok    source: start dependency proxy (ready): through the API (API credentials found; no state directory)",
            "ok    source: stop dependency main: through the API (API credentials found; no state directory)",
        ]
    );
    assert!(lines[3].starts_with("note  state directory: none"), "{out}");
    assert_eq!(
        lines[4],
        format!("ok    pod name: {POD} (from KOORDINATOR_POD_NAME)")
    );
    assert!(
        lines[5].starts_with("ok    namespace: jobs (from ")
            && lines[5].ends_with("serviceaccount/namespace)")
    );
    assert!(
        lines[6].starts_with("ok    API server: https://127.0.0.1:")
            && lines[6].contains("TLS verified")
    );
    assert_eq!(
        lines[7],
        format!("ok    list pods: allowed; pod \"{POD}\" found")
    );
    assert_eq!(lines[8], "ok    watch pods: allowed");
    assert!(
        lines[9].starts_with("ok    dependencies: all exist among the pod's containers (main, proxy); no start cycle"),
        "{out}"
    );
    assert_eq!(lines.len(), 10);
}

#[test]
fn the_state_directory_and_probes_are_checked_without_the_api() {
    let f = Fixture::seed_job();
    let dir = f.files.path("state");
    let (code, out) = check(
        &f,
        r#"{"name":"main","startDeps":[{"tcp":"127.0.0.1:9"}],"stopDeps":["proxy"],"source":"local"}"#,
        &[("KOORDINATOR_STATE_DIR", dir.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "ok    source: stop dependency proxy: through the state directory {} (\"source\": \"local\")",
            dir.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("ok    source: start dependency tcp 127.0.0.1:9: probed every 250ms"),
        "{out}"
    );
    assert!(out.contains("exists and is writable by this user"), "{out}");
    assert!(
        out.contains("note  probe: tcp 127.0.0.1:9 does not pass yet (connection refused)"),
        "{out}"
    );
    assert!(
        f.requests().is_empty(),
        "local mode never asks the API server"
    );
}

#[test]
fn a_ready_dependency_without_the_api_says_what_to_use() {
    let f = Fixture::seed_job();
    let (code, out) = check(
        &f,
        r#"{"startDeps":["proxy"]}"#,
        &[("KOORDINATOR_SERVICEACCOUNT_DIR", "/nonexistent")],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "FAIL  sources: start dependency \"proxy\" waits for the container to be ready"
        ) && out.contains(
            "no API credentials: there is no service-account token at /nonexistent/token"
        ),
        "{out}"
    );
}

#[test]
fn a_bad_token_is_named() {
    let f = Fixture::seed_job();
    f.files.write_token("stale");
    let (code, out) = check(&f, r#"{"startDeps":["proxy"]}"#, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  list pods: 401 Unauthorized: Unauthorized"),
        "{out}"
    );
    assert!(out.contains("rejected the service-account token"), "{out}");
}

#[test]
fn a_missing_permission_shows_the_role() {
    let f = Fixture::seed_job();
    f.server.set_token(TOKEN, Access::Nothing);
    let (code, out) = check(&f, r#"{"startDeps":["proxy"]}"#, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  list pods: 403 Forbidden: pods is forbidden"),
        "{out}"
    );
    assert!(
        out.contains("      kind: Role") && out.contains(&format!("resourceNames: [\"{POD}\"]")),
        "{out}"
    );
}

#[test]
fn an_unknown_pod_is_named_with_where_the_name_came_from() {
    let f = Fixture::seed_job();
    f.server.set_token(TOKEN, Access::AllPods);
    let (code, out) = check(
        &f,
        r#"{"startDeps":["proxy"]}"#,
        &[("KOORDINATOR_POD_NAME", "ghost")],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  list pods: pod \"ghost\" not found in namespace \"jobs\""),
        "{out}"
    );
    assert!(
        out.contains("the name came from KOORDINATOR_POD_NAME"),
        "{out}"
    );
}

#[test]
fn an_unknown_dependency_name_is_named() {
    let f = Fixture::seed_job();
    let (code, out) = check(&f, r#"{"stopDeps":["mian"]}"#, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  dependencies: stop dependency \"mian\" is not a container of pod \"job-x7k2p\" (did you mean \"main\"?)"),
        "{out}"
    );
}

#[test]
fn an_unreachable_server_is_named() {
    let f = Fixture::seed_job();
    let (code, out) = check(
        &f,
        r#"{"startDeps":["proxy"]}"#,
        &[("KUBERNETES_SERVICE_PORT", "9")],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  list pods: cannot reach https://127.0.0.1:9"),
        "{out}"
    );
}

#[test]
fn a_plain_spec_needs_no_api() {
    let f = Fixture::seed_job();
    let (code, out) = check(&f, "{}", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("none needed"), "{out}");
    assert!(f.requests().is_empty());
}

#[test]
fn a_broken_spec_fails_first() {
    let f = Fixture::seed_job();
    let (code, out) = check(&f, r#"{"startDeps":"proxy"}"#, &[]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(
            "FAIL  spec: invalid KOORDINATOR_SPEC: field \"startDeps\": must be a list"
        ),
        "{out}"
    );
}
