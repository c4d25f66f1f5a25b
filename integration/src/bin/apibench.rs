//! Coordination benchmarks against the fake API server. Used by `bench/run.sh`.
//!
//! apibench latency RUNS     status change served -> command exec'd, and stop
//!                           dependency terminated -> SIGTERM in the command:
//!                           median and p99 (ms); koordinator's peak RSS
//! apibench quiet SECONDS WATCH_TIMEOUT
//!                           requests a quiet pod makes in SECONDS
//! apibench local RUNS       without the API, through the state directory:
//!                           dependency exited -> SIGTERM in the dependent's
//!                           command; dependency SIGKILLed -> SIGTERM; probe
//!                           endpoint answers -> command exec'd (250 ms period)
//! apibench watchers N       N koordinators watching their own pods on one
//!                           server: private memory (RssAnon), peak RSS
//!                           (VmHWM) and threads of each, median and max

use koordinator_integration::apiserver::{Access, ApiServer, PodFiles};
use koordinator_integration::fixture::{readiness_endpoint, Fixture, LocalPod, NAMESPACE, STARTED};
use koordinator_integration::harness::{monotonic_ns, status_kb, Koordinator};
use koordinator_integration::pods::{self, running, terminated};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn initbench() -> String {
    let me = std::env::current_exe().unwrap();
    me.with_file_name("initbench").display().to_string()
}

fn stats(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    format!("median_ms={:.2} p99_ms={:.2}", at(0.5), at(0.99))
}

fn latency(runs: usize) {
    let bench = initbench();
    let (mut start, mut stop, mut rss) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let f = Fixture::seed_job();
        let mut k = f
            .koordinator(r#"{"startDeps":["proxy"]}"#, &[&bench, "stamp"])
            .spawn();
        f.wait_for_watch(1);
        let t0 = monotonic_ns();
        f.set("proxy", running(true));
        k.expect_line_matching(|l| l.parse::<u64>().is_ok(), T);
        let exec: u64 = k.stdout().last().unwrap().parse().unwrap();
        start.push((exec - t0) as f64 / 1e6);
        rss = rss.max(status_kb(k.pid, "VmHWM"));
        k.signal(libc::SIGTERM); // forwarded: the stamp process goes too
        k.wait(T);

        let f = Fixture::seed_job();
        f.set("main", running(true));
        let mut k = f
            .koordinator(r#"{"stopDeps":["main"]}"#, &[&bench, "term-stamp"])
            .spawn();
        k.expect_line("ready", T);
        f.wait_for_watch(1);
        let t0 = monotonic_ns();
        f.set("main", terminated(0));
        assert_eq!(k.wait(T), 0);
        let got: u64 = k.stdout().last().unwrap().parse().unwrap();
        stop.push((got - t0) as f64 / 1e6);
    }
    println!("start {}", stats(start));
    println!("stop  {}", stats(stop));
    println!("peak_rss_kb={rss}");
}

fn quiet(seconds: u64, watch_timeout: &str) {
    let f = Fixture::seed_job();
    let mut k = f
        .koordinator(r#"{"startDeps":["proxy"]}"#, STARTED)
        .env("KOORDINATOR_WATCH_TIMEOUT", watch_timeout)
        .spawn();
    std::thread::sleep(Duration::from_secs(seconds));
    let requests = f.requests();
    let lists = requests.iter().filter(|r| !r.is_watch()).count();
    println!(
        "seconds={seconds} watch_timeout={watch_timeout} requests={} lists={lists} watches={} peak_rss_kb={}",
        requests.len(),
        requests.len() - lists,
        status_kb(k.pid, "VmHWM")
    );
    k.signal(libc::SIGTERM);
    k.wait(T);
}

/// The pid of `parent`'s first child.
fn child_of(parent: i32) -> i32 {
    let deadline = std::time::Instant::now() + T;
    loop {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "no child of {parent}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn local(runs: usize) {
    let bench = initbench();
    let (mut exited, mut killed, mut probed) = (Vec::new(), Vec::new(), Vec::new());
    let stamp = |k: &koordinator_integration::harness::Running| -> u64 {
        k.stdout().last().unwrap().parse().unwrap()
    };
    for run in 0..runs {
        // main exits; the proxy's command gets SIGTERM.
        let pod = LocalPod::new();
        let mut proxy = pod
            .container("proxy", r#"{"stopDeps":["main"]}"#, &[&bench, "term-stamp"])
            .spawn();
        proxy.expect_line("ready", T);
        let mut main = pod
            .container("main", r#"{"name":"main"}"#, &[&bench, "exit-stamp"])
            .spawn();
        main.expect_line_matching(|l| l.parse::<u64>().is_ok(), T);
        assert_eq!(proxy.wait(T), 0);
        main.wait(T);
        exited.push((stamp(&proxy) - stamp(&main)) as f64 / 1e6);

        // main's koordinator is SIGKILLed (an OOM kill looks the same).
        let pod = LocalPod::new();
        let mut main = pod
            .container(
                "main",
                r#"{"name":"main"}"#,
                &["sh", "-c", "echo started; exec sleep 100"],
            )
            .spawn();
        main.expect_line("started", T);
        let command = child_of(main.pid);
        let mut proxy = pod
            .container("proxy", r#"{"stopDeps":["main"]}"#, &[&bench, "term-stamp"])
            .spawn();
        proxy.expect_line("ready", T);
        let t0 = monotonic_ns();
        main.signal(libc::SIGKILL);
        assert_eq!(proxy.wait(T), 0);
        killed.push((stamp(&proxy) - t0) as f64 / 1e6);
        main.wait(T);
        // SAFETY: the orphaned stand-in command, ours to end.
        unsafe { libc::kill(command, libc::SIGKILL) };

        // The readiness endpoint starts answering 200; the command is exec'd.
        let pod = LocalPod::new();
        // Spread over one probe period, so the figure shows the bound.
        let ready_after = Duration::from_millis(300 + (run as u64 * 97) % 250);
        let port = readiness_endpoint(ready_after);
        let answers_at = monotonic_ns() + ready_after.as_nanos() as u64;
        let spec = format!(r#"{{"startDeps":[{{"http":"http://127.0.0.1:{port}/ready"}}]}}"#);
        let mut k = pod.container("main", &spec, &[&bench, "stamp"]).spawn();
        k.expect_line_matching(|l| l.parse::<u64>().is_ok(), T);
        probed.push((stamp(&k).saturating_sub(answers_at)) as f64 / 1e6);
        k.signal(libc::SIGTERM);
        k.wait(T);
    }
    println!("exited {}", stats(exited));
    println!("killed {}", stats(killed));
    println!("probe  {}", stats(probed));
}

fn watchers(n: usize) {
    let server = ApiServer::start();
    server.set_token("bench", Access::AllPods);
    let files = PodFiles::new(&server, NAMESPACE, "bench");
    let mut running_ones = Vec::new();
    for i in 0..n {
        let name = format!("pod-{i}");
        server.create_pod(
            pods::pod(NAMESPACE, &name)
                .container("main", Some(r#"{"startDeps":["proxy"]}"#))
                .container("proxy", None)
                .build(),
        );
        let k = Koordinator::plain(STARTED)
            .env("KOORDINATOR_SPEC", r#"{"startDeps":["proxy"]}"#)
            .env("KOORDINATOR_POD_NAME", &name)
            .env("KOORDINATOR_SERVICEACCOUNT_DIR", files.serviceaccount())
            .env("KOORDINATOR_STATE_DIR", "")
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", server.port.to_string())
            .spawn();
        running_ones.push((name, k));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while server.requests().iter().filter(|r| r.is_watch()).count() < n {
        assert!(std::time::Instant::now() < deadline, "not all watching");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every pod changes once, as a pod does: each watcher decodes an event.
    for (name, _) in &running_ones {
        server.modify_pod(NAMESPACE, name, |pod| {
            pods::set_status(pod, "proxy", running(false))
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut anon: Vec<u64> = Vec::new();
    let mut hwm: Vec<u64> = Vec::new();
    let mut threads: Vec<u64> = Vec::new();
    for (_, k) in &running_ones {
        anon.push(status_kb(k.pid, "RssAnon"));
        hwm.push(status_kb(k.pid, "VmHWM"));
        let status = std::fs::read_to_string(format!("/proc/{}/status", k.pid)).unwrap_or_default();
        threads.push(
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        );
    }
    let summary = |mut v: Vec<u64>| {
        v.sort_unstable();
        format!("median={} max={}", v[v.len() / 2], v[v.len() - 1])
    };
    println!(
        "watchers={n} rss_anon_kb {} vm_hwm_kb {} threads {} requests={}",
        summary(anon),
        summary(hwm),
        summary(threads),
        server.requests().len()
    );
    for (_, k) in &running_ones {
        k.signal(libc::SIGTERM);
    }
    for (_, mut k) in running_ones {
        k.wait(T);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("latency") => latency(args[1].parse().unwrap()),
        Some("quiet") => quiet(args[1].parse().unwrap(), &args[2]),
        Some("watchers") => watchers(args[1].parse().unwrap()),
        Some("local") => local(args[1].parse().unwrap()),
        _ => {
            eprintln!("usage: apibench latency RUNS | quiet SECONDS WATCH_TIMEOUT | watchers N | local RUNS");
            std::process::exit(2);
        }
    }
}
