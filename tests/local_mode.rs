//! Coordination without the API server (SPEC §7): the real binary, several
//! koordinators sharing one state directory, no API server and no
//! credentials at all; and one pod that mixes both.

use koordinator_integration::fixture::{
    readiness_endpoint, started_within, Fixture, LocalPod, STARTED,
};
use koordinator_integration::harness::{require_root, Koordinator};
use koordinator_integration::pods::running;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const PROXY: &str = r#"{"stopDeps":["main-container"]}"#;

/// Waits until `name`'s record in the state directory says `state`.
fn wait_for_record(pod: &LocalPod, name: &str, state: &str) {
    let deadline = Instant::now() + T;
    while !pod.record(name).contains(&format!("\"state\":\"{state}\"")) {
        assert!(
            Instant::now() < deadline,
            "{name} never published {state}: {:?}",
            pod.record(name)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_seed_job_without_rbac() {
    // SPEC §7.4, verbatim specs.
    let pod = LocalPod::new();
    let port = readiness_endpoint(Duration::from_millis(600));
    let main_spec = format!(
        r#"{{"name": "main-container", "startDeps": [{{"http": "http://127.0.0.1:{port}/readiness"}}]}}"#
    );
    let mut proxy = pod.container("cloud-sql-proxy", PROXY, STARTED).spawn();
    let began = Instant::now();
    let mut main = pod
        .container(
            "main-container",
            &main_spec,
            &["sh", "-c", "echo started; sleep 0.3; exit 0"],
        )
        .spawn();
    started_within(&mut proxy, T);
    started_within(&mut main, T);
    assert!(
        began.elapsed() >= Duration::from_millis(550),
        "main started before its proxy answered 200"
    );
    assert_eq!(main.wait(T), 0);
    assert_eq!(proxy.wait(T), 0, "stopped by its stop dependency: exit 0");
    assert_eq!(
        pod.termination_message("cloud-sql-proxy"),
        "koordinator: stop dependency main-container exited; stopping the command\n"
    );
    assert!(pod
        .record("main-container")
        .contains(r#""state":"exited","restart":0,"code":0"#));
    let log = proxy.stderr().join("\n");
    assert!(
        log.contains("following stop dependency main-container: through the state directory")
            && log.contains("(no API credentials: "),
        "{log}"
    );
    let main_log = main.stderr().join("\n");
    assert!(
        main_log.contains(&format!("waiting for http://127.0.0.1:{port}/readiness")),
        "{main_log}"
    );
}

#[test]
fn a_sigkilled_main_still_stops_its_proxy() {
    if !require_root("a_sigkilled_main_still_stops_its_proxy") {
        return;
    }
    let pod = LocalPod::new();
    let main = pod.around(
        Koordinator::pid1(STARTED),
        "main-container",
        r#"{"name": "main-container"}"#,
    );
    let mut main = main.spawn();
    started_within(&mut main, T);
    wait_for_record(&pod, "main-container", "running");
    let mut proxy = pod.container("proxy", PROXY, STARTED).spawn();
    started_within(&mut proxy, T);
    // An OOM kill of the whole container looks the same: koordinator gone
    // without a word.
    main.signal(libc::SIGKILL);
    main.wait(T);
    assert_eq!(proxy.wait(T), 0);
    assert!(
        proxy
            .stderr()
            .iter()
            .any(|l| l.contains("stop dependency main-container exited; stopping the command")),
        "{:?}",
        proxy.stderr()
    );
}

/// The kernel's per-user limits on inotify instances are shared by every
/// container of that user on a node (128 by default). With none left, the
/// proxy follows the state directory by looking at it every 100 ms, says
/// which limit to raise, and still stops when main exits. (A user namespace
/// whose inotify limit is 0 stands in for a busy node.)
#[test]
fn without_inotify_the_state_directory_is_looked_at_every_100ms() {
    if !require_root("without_inotify_the_state_directory_is_looked_at_every_100ms") {
        return;
    }
    let pod = LocalPod::new();
    let bin = koordinator_integration::harness::koordinator_bin();
    let no_inotify = "echo 0 > /proc/sys/user/max_inotify_instances && exec \"$@\"";
    let mut args: Vec<std::ffi::OsString> = ["-U", "-r", "sh", "-c", no_inotify, "sh"]
        .iter()
        .map(Into::into)
        .collect();
    args.push(bin.into());
    args.extend(STARTED.iter().map(Into::into));
    let mut proxy = pod
        .around(Koordinator::command("unshare", &args), "proxy", PROXY)
        .spawn();
    started_within(&mut proxy, T);
    let mut main = pod
        .container(
            "main-container",
            r#"{"name": "main-container"}"#,
            &["sh", "-c", "echo started; sleep 0.3; exit 0"],
        )
        .spawn();
    started_within(&mut main, T);
    assert_eq!(main.wait(T), 0);
    let exited = Instant::now();
    assert_eq!(proxy.wait(T), 0, "stopped by its stop dependency: exit 0");
    assert!(exited.elapsed() < Duration::from_secs(2));
    let log = proxy.stderr().join("\n");
    assert!(
        log.contains("cannot watch ")
            && log.contains("raise fs.inotify.max_user_instances")
            && log.contains("looking at it every 100 ms instead")
            && log.contains("stop dependency main-container exited; stopping the command"),
        "{log}"
    );
}

#[test]
fn under_on_failure_a_killed_main_is_restarted_and_followed_again() {
    if !require_root("under_on_failure_a_killed_main_is_restarted_and_followed_again") {
        return;
    }
    let pod = LocalPod::new();
    let spec = r#"{"name": "main-container"}"#;
    let mut main = pod
        .around(Koordinator::pid1(STARTED), "main-container", spec)
        .spawn();
    started_within(&mut main, T);
    let mut proxy = pod
        .container(
            "proxy",
            r#"{"stopDeps":["main-container"],"restartPolicy":"OnFailure"}"#,
            STARTED,
        )
        .spawn();
    started_within(&mut proxy, T);
    main.signal(libc::SIGKILL);
    main.wait(T);
    proxy.expect_no_line_for(Duration::from_millis(500));
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "a failed OnFailure container is restarted: its proxy must stay"
    );
    // The kubelet restarts main; it publishes again with restart 1 and succeeds.
    let mut again = pod
        .around(
            Koordinator::pid1(&["sh", "-c", "echo started; sleep 0.2"]),
            "main-container",
            spec,
        )
        .spawn();
    started_within(&mut again, T);
    assert!(pod.record("main-container").contains(r#""restart":1"#));
    assert_eq!(again.wait(T), 0);
    assert_eq!(proxy.wait(T), 0);
}

#[test]
fn a_stop_dependency_that_exited_before_the_start_means_no_start() {
    let pod = LocalPod::new();
    let mut main = pod
        .container("main-container", r#"{"name":"main-container"}"#, &["true"])
        .spawn();
    assert_eq!(main.wait(T), 0);
    let mut proxy = pod.container("proxy", PROXY, STARTED).spawn();
    assert_eq!(proxy.wait(T), 0);
    assert!(!proxy.stdout().contains(&"started"));
    assert_eq!(
        pod.termination_message("proxy"),
        "koordinator: not starting the command: stop dependency main-container has already exited\n"
    );
}

#[test]
fn stop_on_all_waits_for_all_three() {
    let pod = LocalPod::new();
    let worker = |name: &str| {
        pod.container(
            name,
            &format!(r#"{{"name":"{name}"}}"#),
            &["sh", "-c", "echo started; exec sleep 1000"],
        )
    };
    let mut a = worker("a").spawn();
    let mut b = worker("b").spawn();
    let mut c = worker("c").spawn();
    for w in [&mut a, &mut b, &mut c] {
        started_within(w, T);
    }
    let mut sidecar = pod
        .container(
            "sidecar",
            r#"{"stopDeps":["a","b","c"],"stopOn":"all"}"#,
            STARTED,
        )
        .spawn();
    started_within(&mut sidecar, T);
    for w in [&mut a, &mut b] {
        w.signal(libc::SIGTERM);
        w.wait(T);
    }
    sidecar.expect_no_line_for(Duration::from_millis(400));
    assert!(sidecar.child.try_wait().unwrap().is_none(), "c still runs");
    c.signal(libc::SIGTERM);
    c.wait(T);
    assert_eq!(sidecar.wait(T), 0);
    assert!(pod
        .termination_message("sidecar")
        .contains("stop dependency a, b, c exited"));
}

#[test]
fn a_completed_dependency_gates_the_start_and_a_failed_one_ends_it() {
    let pod = LocalPod::new();
    let spec = r#"{"startDeps":[{"name":"migrate","condition":"completed"}]}"#;
    let mut app = pod.container("app", spec, STARTED).spawn();
    let mut migrate = pod
        .container(
            "migrate",
            r#"{"name":"migrate"}"#,
            &["sh", "-c", "sleep 0.3"],
        )
        .spawn();
    app.expect_no_line_for(Duration::from_millis(100));
    assert!(!app.stdout().contains(&"started"), "migrate still runs");
    assert_eq!(migrate.wait(T), 0);
    started_within(&mut app, T);
    app.signal(libc::SIGTERM);
    assert_eq!(app.wait(T), 143);

    let pod = LocalPod::new();
    let mut migrate = pod
        .container("migrate", r#"{"name":"migrate"}"#, &["sh", "-c", "exit 3"])
        .spawn();
    assert_eq!(migrate.wait(T), 3);
    let mut app = pod.container("app", spec, STARTED).spawn();
    assert_eq!(app.wait(T), 1);
    assert!(!app.stdout().contains(&"started"));
    assert!(
        pod.termination_message("app").contains(
            "start dependency \"migrate\" terminated with exit code 3 and will not be restarted"
        ),
        "{}",
        pod.termination_message("app")
    );
}

#[test]
fn probes_of_each_form_gate_the_start() {
    let pod = LocalPod::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap().port();
    let http = readiness_endpoint(Duration::from_millis(300));
    let file = pod.dir.join("ready");
    let spec = format!(
        r#"{{"startDeps":[{{"tcp":"127.0.0.1:{tcp}"}},{{"http":"http://127.0.0.1:{http}/healthz","period":"50ms"}},{{"file":"{}"}}]}}"#,
        file.display()
    );
    let mut k = pod.container("app", &spec, STARTED).spawn();
    k.expect_no_line_for(Duration::from_millis(600));
    assert!(!k.stdout().contains(&"started"), "the file is missing");
    std::fs::write(&file, "").unwrap();
    started_within(&mut k, T);
    k.signal(libc::SIGTERM);
    k.wait(T);
}

#[test]
fn a_probe_that_never_passes_ends_with_start_timeout_and_its_last_error() {
    let pod = LocalPod::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = readiness_endpoint(Duration::from_secs(3600));
    let spec = format!(
        r#"{{"startDeps":[{{"tcp":"127.0.0.1:{closed}"}},{{"http":"http://127.0.0.1:{http}/ready"}}],"startTimeout":"1s"}}"#
    );
    let mut k = pod.container("app", &spec, STARTED).spawn();
    assert_eq!(k.wait(T), 1);
    let message = pod.termination_message("app");
    assert!(
        message.contains(&format!(
            "tcp 127.0.0.1:{closed} (last attempt: connection refused)"
        )) && message.contains(&format!(
            "http://127.0.0.1:{http}/ready (last attempt: HTTP 503)"
        )),
        "{message}"
    );
}

#[test]
fn a_ready_dependency_without_api_access_is_a_configuration_error() {
    let pod = LocalPod::new();
    let mut k = pod
        .container("main", r#"{"startDeps":["proxy"]}"#, STARTED)
        .spawn();
    assert_eq!(k.wait(T), 2);
    let message = pod.termination_message("main");
    assert!(
        message.contains("only the API server knows")
            && message.contains(r#"{"http": "http://127.0.0.1:9090/readiness"}"#),
        "{message}"
    );
}

#[test]
fn sigterm_is_held_until_the_stop_dependency_exits() {
    let pod = LocalPod::new();
    let mut main = pod
        .container(
            "main-container",
            r#"{"name":"main-container"}"#,
            &[
                "sh",
                "-c",
                "trap 'sleep 0.5; exit 0' TERM; echo started; while :; do sleep 0.05; done",
            ],
        )
        .spawn();
    started_within(&mut main, T);
    let mut proxy = pod
        .container(
            "proxy",
            PROXY,
            &["sh", "-c", "trap 'echo proxy got TERM; exit 0' TERM; echo started; while :; do sleep 0.05; done"],
        )
        .spawn();
    started_within(&mut proxy, T);
    // The kubelet sends both SIGTERM at once when the pod is deleted.
    proxy.signal(libc::SIGTERM);
    main.signal(libc::SIGTERM);
    let term = Instant::now();
    assert_eq!(main.wait(T), 0);
    let main_done = term.elapsed();
    proxy.expect_line("proxy got TERM", T);
    let proxy_done = term.elapsed();
    assert_eq!(proxy.wait(T), 0);
    assert!(
        proxy_done >= main_done && proxy_done < main_done + Duration::from_millis(300),
        "main done after {main_done:?}, proxy told after {proxy_done:?}"
    );
}

#[test]
fn a_stuck_sidecar_is_killed_after_term_timeout_with_137() {
    let pod = LocalPod::new();
    let mut main = pod
        .container(
            "main-container",
            r#"{"name":"main-container"}"#,
            &["sh", "-c", "echo started; exec sleep 1000"],
        )
        .spawn();
    started_within(&mut main, T);
    let mut proxy = pod
        .container(
            "proxy",
            r#"{"stopDeps":["main-container"],"termTimeout":"300ms"}"#,
            &[
                "sh",
                "-c",
                "trap '' TERM; echo started; while :; do sleep 0.05; done",
            ],
        )
        .spawn();
    started_within(&mut proxy, T);
    main.signal(libc::SIGTERM);
    main.wait(T);
    assert_eq!(proxy.wait(T), 137);
}

#[test]
fn a_pod_mixing_api_and_local_containers() {
    // The proxy has API access; main has none and only publishes its state.
    // The API keeps showing main running (the kubelet lags): the proxy still
    // stops on main's exit, learnt from the state directory.
    let f = Fixture::seed_job();
    let pod = LocalPod::new();
    f.set("main", running(true));
    let mut proxy = f
        .koordinator(r#"{"stopDeps":["main"]}"#, STARTED)
        .env("KOORDINATOR_STATE_DIR", pod.state_dir())
        .spawn();
    started_within(&mut proxy, T);
    f.wait_for_watch(1);
    let mut main = pod
        .container(
            "main",
            r#"{"name":"main"}"#,
            &["sh", "-c", "echo started; sleep 0.2"],
        )
        .spawn();
    started_within(&mut main, T);
    assert_eq!(main.wait(T), 0);
    assert_eq!(proxy.wait(T), 0);
    let log = proxy.stderr().join("\n");
    assert!(
        log.contains("following stop dependency main: through the API (API credentials found), and through the state directory"),
        "{log}"
    );
    assert_eq!(
        f.termination_message(),
        "koordinator: stop dependency main exited; stopping the command\n"
    );
}
