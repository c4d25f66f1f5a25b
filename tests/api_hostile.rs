//! What an independent hostile API server and a real node found (issue 9),
//! each as a scenario that failed before its fix: secrets in logs, a
//! trickling watch or list, `Retry-After`, objects of another pod, pod
//! names that are not the hostname, missing credentials, quiet watches.

use koordinator_integration::apiserver::{Access, Fault};
use koordinator_integration::fixture::{started_within, Fixture, NAMESPACE, POD, STARTED};
use koordinator_integration::harness::{require_root, Koordinator};
use koordinator_integration::pods::{self, running};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const SPEC: &str = r#"{"startDeps":["proxy"]}"#;

fn lists(f: &Fixture) -> usize {
    f.requests().iter().filter(|r| !r.is_watch()).count()
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn no_log_level_shows_the_token_in_any_encoding() {
    const SECRET: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LWNsYWltcy1rb29yZGluYXRvcg.U0lHTkFUVVJFLXNpZ25hdHVyZS0xMjM0NTY";
    for (level, format) in [
        ("trace", "text"),
        ("trace", "json"),
        ("debug", "text"),
        ("info", "text"),
        ("warn", "text"),
        ("error", "text"),
    ] {
        let f = Fixture::seed_job();
        f.server.set_token(SECRET, Access::OnePod(POD.into()));
        f.files.write_token(SECRET);
        // A proxy that echoes the request's credentials back in a 403.
        f.server.inject(Fault::Forbidden(format!(
            "User \"system:serviceaccount:jobs:{SECRET}\" cannot list: Authorization: Bearer {SECRET}"
        )));
        let mut k = f
            .koordinator(SPEC, STARTED)
            .env("KOORDINATOR_LOG", level)
            .env("KOORDINATOR_LOG_FORMAT", format)
            .spawn();
        f.wait_for_watch(1);
        f.set("proxy", running(true));
        started_within(&mut k, T);
        k.signal(libc::SIGTERM);
        k.wait(T);
        let log = k.stderr().join("\n");
        for (what, needle) in [
            ("plain", SECRET.to_string()),
            (
                "the signature",
                "U0lHTkFUVVJFLXNpZ25hdHVyZS0xMjM0NTY".to_string(),
            ),
            ("hex", hex(SECRET)),
            (
                "hex of the signature",
                hex("U0lHTkFUVVJFLXNpZ25hdHVyZS0xMjM0NTY"),
            ),
        ] {
            assert!(
                !log.to_lowercase().contains(&needle.to_lowercase()),
                "{level}/{format}: the token ({what}) is in the log:\n{log}"
            );
        }
        if level != "error" && level != "warn" {
            assert!(log.contains("[REDACTED]"), "{level}: {log}");
        }
        if level != "error" || format == "json" {
            continue;
        }
        assert!(log.contains("name: <service-account>"), "{log}");
    }
}

#[test]
fn a_trickling_watch_is_given_up_at_its_deadline() {
    let f = Fixture::seed_job();
    let mut k = f
        .koordinator(SPEC, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", "2s")
        .spawn();
    f.wait_for_watch(1);
    f.server.inject(Fault::Trickle(Duration::from_millis(300)));
    // The current watch ends; the next one trickles a byte every 300 ms.
    f.wait_for_requests(2, |r| r.is_watch(), T);
    let trickle_began = Instant::now();
    f.set("proxy", running(true));
    started_within(&mut k, T);
    let took = trickle_began.elapsed();
    // timeoutSeconds is 1 or 2, the margin 2 s: given up after 4 s at most.
    assert!(took < Duration::from_secs(7), "noticed after {took:?}");
    assert!(took >= Duration::from_millis(800), "noticed after {took:?}");
    assert_eq!(lists(&f), 2, "{:#?}", f.requests());
}

#[test]
fn a_trickling_list_is_given_up_at_its_deadline() {
    let f = Fixture::seed_job();
    f.server
        .inject(Fault::TrickleList(Duration::from_millis(300)));
    f.set("proxy", running(true));
    let began = Instant::now();
    let mut k = f
        .koordinator(SPEC, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", "2s")
        .spawn();
    started_within(&mut k, T);
    let took = began.elapsed();
    // With a 2 s watch, a list gets 5 s.
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(9),
        "{took:?}"
    );
    assert!(
        k.stderr()
            .iter()
            .any(|l| l.contains("the request's deadline passed")),
        "{:?}",
        k.stderr()
    );
}

#[test]
fn retry_after_is_honoured_with_jitter_on_429_and_503() {
    for fault in [Fault::TooManyRequests(3), Fault::Unavailable(2)] {
        let asked = match fault {
            Fault::TooManyRequests(s) | Fault::Unavailable(s) => s,
            _ => unreachable!(),
        };
        let f = Fixture::seed_job();
        f.server.inject(fault);
        f.set("proxy", running(true));
        let mut k = f.koordinator(SPEC, STARTED).spawn();
        started_within(&mut k, T);
        let r = f.requests();
        let gap = r[1].at.duration_since(r[0].at);
        let asked = Duration::from_secs(asked);
        assert!(
            gap >= asked && gap <= asked.mul_f64(1.25) + Duration::from_millis(300),
            "retried {gap:?} after a Retry-After of {asked:?}"
        );
        assert!(
            k.stderr()
                .iter()
                .any(|l| l.contains(&format!("asked to retry in {}s", asked.as_secs()))),
            "{:?}",
            k.stderr()
        );
    }
}

#[test]
fn events_for_another_pod_are_ignored() {
    let f = Fixture::seed_job();
    let mut k = f.koordinator(SPEC, STARTED).spawn();
    f.wait_for_watch(1);
    f.server.inject(Fault::ForeignEvent);
    f.wait_for_requests(2, |r| r.is_watch(), T);
    k.expect_no_line_for(Duration::from_millis(500));
    assert!(
        !k.stdout().contains(&"started"),
        "started on another pod's readiness"
    );
    assert!(
        k.stderr().iter().any(|l| l.contains(
            "ignoring an object from the API server for pod \"other-pod\", not \"job-x7k2p\""
        )),
        "{:?}",
        k.stderr()
    );
    f.set("proxy", running(true));
    started_within(&mut k, T);
}

#[test]
fn a_list_that_returns_another_namespaces_pod_is_ignored() {
    let f = Fixture::seed_job();
    f.server.inject(Fault::ForeignNamespace);
    let mut k = f.koordinator(SPEC, STARTED).spawn();
    f.wait_for_watch(1);
    k.expect_no_line_for(Duration::from_millis(300));
    assert!(!k.stdout().contains(&"started"));
    assert!(
        k.stderr()
            .iter()
            .any(|l| l.contains("namespace \"elsewhere\", not \"jobs\"")),
        "{:?}",
        k.stderr()
    );
    assert_eq!(lists(&f), 2, "the list is repeated");
    f.set("proxy", running(true));
    started_within(&mut k, T);
}

#[test]
fn a_pod_created_again_under_the_same_name_is_not_ours() {
    let f = Fixture::seed_job();
    let mut k = f.koordinator(SPEC, STARTED).spawn();
    f.wait_for_watch(1);
    f.server.modify_pod(NAMESPACE, POD, |pod| {
        pod["metadata"]["uid"] = "uid-new".into();
        pods::set_status(pod, "proxy", running(true));
    });
    k.expect_no_line_for(Duration::from_millis(500));
    assert!(!k.stdout().contains(&"started"));
    assert!(
        k.stderr()
            .iter()
            .any(|l| l.contains("was deleted and created again")),
        "{:?}",
        k.stderr()
    );
}

/// The pod in the fake server, under `name`, holding this container's spec.
fn pod_named(name: &str, host_network: Option<&str>) -> Fixture {
    let mut pod = pods::pod(NAMESPACE, name)
        .container("main", Some(SPEC))
        .container("proxy", Some(r#"{"stopDeps":["main"]}"#))
        .build();
    if let Some(node) = host_network {
        pod["spec"]["hostNetwork"] = true.into();
        pod["spec"]["nodeName"] = node.into();
    }
    let f = Fixture::new(pods::pod(NAMESPACE, "unrelated-pod"));
    f.server
        .set_token(koordinator_integration::fixture::TOKEN, Access::AllPods);
    f.server.create_pod(pod);
    f
}

#[test]
fn a_hostname_cut_at_63_characters_is_resolved_to_the_pod_holding_this_spec() {
    if !require_root("a_hostname_cut_at_63_characters_is_resolved_to_the_pod_holding_this_spec") {
        return;
    }
    let name = "nightly-report-generator-for-the-finance-team-29384756-abcde-xyz12";
    assert!(name.len() > 63);
    let hostname = name[..63].trim_end_matches(['-', '.']);
    let f = pod_named(name, None);
    let k = Koordinator::with_hostname(hostname, STARTED);
    let mut k = f
        .container(k, SPEC)
        .env("KOORDINATOR_PODINFO_DIR", "/nonexistent")
        .spawn();
    f.wait_for_watch(1);
    f.server.modify_pod(NAMESPACE, name, |pod| {
        pods::set_status(pod, "proxy", running(true))
    });
    started_within(&mut k, T);
    let log = k.stderr().join("\n");
    assert!(
        log.contains(&format!("no pod is called {hostname:?} (a hostname of 63 characters is probably a pod name that the kubelet cut at 63); pod {name:?} holds this container's spec")),
        "{log}"
    );
}

#[test]
fn a_host_network_pod_is_found_by_its_node_or_told_what_to_set() {
    if !require_root("a_host_network_pod_is_found_by_its_node_or_told_what_to_set") {
        return;
    }
    let f = pod_named("agent-7xk2p", Some("node-1"));
    let k = Koordinator::with_hostname("node-1", STARTED);
    let mut k = f
        .container(k, SPEC)
        .env("KOORDINATOR_PODINFO_DIR", "/nonexistent")
        .spawn();
    f.wait_for_watch(1);
    f.server.modify_pod(NAMESPACE, "agent-7xk2p", |pod| {
        pods::set_status(pod, "proxy", running(true))
    });
    started_within(&mut k, T);

    // Under a Role limited to the pod's name the namespace cannot be listed:
    // the 403 says at once that the hostname is not always the pod's name.
    let f = pod_named("agent-7xk2p", Some("node-1"));
    f.server.set_token(
        koordinator_integration::fixture::TOKEN,
        Access::OnePod("agent-7xk2p".into()),
    );
    let k = Koordinator::with_hostname("node-1", STARTED);
    let mut k = f
        .container(k, SPEC)
        .env("KOORDINATOR_PODINFO_DIR", "/nonexistent")
        .spawn();
    f.wait_for_requests(1, |r| r.status == 403, T);
    k.expect_no_line_for(Duration::from_millis(300));
    let log = k.stderr().join("\n");
    assert!(
        log.contains("The pod name \"node-1\" came from the hostname")
            && log.contains("a hostNetwork pod has the node's"),
        "{log}"
    );
}

#[test]
fn without_a_token_the_message_leads_with_the_missing_credentials() {
    let f = Fixture::seed_job();
    let mut k = f
        .koordinator(r#"{"stopDeps":["main"]}"#, STARTED)
        .env("KOORDINATOR_SERVICEACCOUNT_DIR", "/nonexistent")
        .spawn();
    assert_eq!(k.wait(T), 2);
    let log = k.stderr().join("\n");
    assert!(
        log.starts_with("koordinator: error: configuration error: no API credentials (there is no service-account token at /nonexistent/token"),
        "{log}"
    );
    assert!(
        log.contains("Mount a service-account token") && log.contains("coordinate without the API"),
        "{log}"
    );
    assert!(f.requests().is_empty());
}

#[test]
fn a_quiet_watch_is_renewed_quietly_with_jittered_timeouts() {
    let f = Fixture::seed_job();
    // Like a real v1.20 server with a quiet pod: no bookmark ever.
    f.server.set_bookmark_interval(Duration::from_secs(3600));
    let mut k = f
        .koordinator(SPEC, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", "4s")
        .spawn();
    k.expect_no_line_for(Duration::from_secs(11));
    let requests = f.requests();
    assert_eq!(lists(&f), 1, "no relist: {requests:#?}");
    let timeouts: Vec<u64> = requests
        .iter()
        .filter(|r| r.is_watch())
        .map(|r| r.query["timeoutSeconds"].parse().unwrap())
        .collect();
    assert!(timeouts.len() >= 3, "{timeouts:?}");
    assert!(timeouts.iter().all(|t| (2..=4).contains(t)), "{timeouts:?}");
    let warnings: Vec<&str> = k
        .stderr()
        .into_iter()
        .filter(|l| l.contains("warn") || l.contains("error"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}
